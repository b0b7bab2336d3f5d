"""Clara 3.x learning-rate policies torch has no scheduler for."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


class ReduceCosineLR(LRScheduler):
    """Clara 3.x's ``ReduceCosine(rate)`` policy as a torch scheduler, stepped once per epoch.

    Source: NVIDIA Clara Train 3.1 docs, pages "ai4med.components.lr_policies package" (``ReduceCosine(rate=0.5)``:
    the LR from the initial LR, the current epoch and the total number of epochs) and "ai4med.libs.lr_policies
    package" (``CosineReducer``). We read it as the cosine reduction
    ``lr(e) = lr0 * rate * (1 + cos(pi * e / total_iters))``; with the default ``rate=0.5`` this is exactly torch's
    ``CosineAnnealingLR(T_max=total_iters, eta_min=0)``, which the tests check.

    Args:
        optimizer: the wrapped optimizer.
        total_iters: the number of epochs over which the LR falls (Clara: the run's total epochs).
        rate: the factor of the cosine term (Clara's default 0.5).
        last_epoch: index of the last epoch when resuming (torch convention).

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> sched = ReduceCosineLR(opt, total_iters=4)
        >>> [round(g["lr"], 3) for g in opt.param_groups]
        [1.0]
    """

    def __init__(self, optimizer: Optimizer, total_iters: int, rate: float = 0.5, last_epoch: int = -1) -> None:
        if total_iters < 1:
            raise ValueError(f"ReduceCosineLR needs total_iters >= 1, got {total_iters}")
        self.total_iters = total_iters
        self.rate = rate
        super().__init__(optimizer, last_epoch)

    def factor(self, epoch: int) -> float:
        """The LR multiplier at ``epoch`` (held at its last value after ``total_iters``)."""
        e = min(max(epoch, 0), self.total_iters)
        return self.rate * (1.0 + math.cos(math.pi * e / self.total_iters))

    def get_lr(self) -> list[float]:  # type: ignore[override]  # torch types it as list[float | Tensor]
        """The LR of each parameter group at the current epoch (closed form, no drift)."""
        return [float(base) * self.factor(self.last_epoch) for base in self.base_lrs]
