"""Device and numerics policy: Clara configs say ``"device": "cuda"`` and ``"amp": true``; a laptop has neither."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (imports torch)."""
    import torch

    return bool(torch.cuda.is_available())


class DevicePolicy:
    """Rewrites constructor arguments so a CUDA config runs on the CPU, saying so once per run.

    - ``device="cuda"``/``"cuda:N"`` becomes ``"cpu"`` when CUDA is unavailable (one warning per run).
    - ``amp=True`` becomes ``False`` without CUDA (AMP is a CUDA feature here; one log line per run).

    Args:
        cuda: whether CUDA is available; ``None`` asks torch.
    """

    def __init__(self, cuda: bool | None = None) -> None:
        self.cuda = cuda_available() if cuda is None else cuda
        self.device = "cuda" if self.cuda else "cpu"
        self.amp_disabled = False
        self._warned_device = False

    def adjust(self, path: str, func: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Return ``kwargs`` for calling ``func`` at ``path``, with the device and AMP rules applied.

        A required ``device`` argument that the config leaves out (Clara engines chose it themselves, e.g. the
        evaluators of the AutoML examples) gets this run's device.
        """
        if "device" not in kwargs and _requires(func, "device"):
            kwargs["device"] = self.device
        if self.cuda:
            return kwargs
        device = kwargs.get("device")
        if isinstance(device, str) and device.startswith("cuda"):
            kwargs["device"] = "cpu"
            if not self._warned_device:
                log.warning("CUDA is not available: running on the CPU (config asks for device=%r at %s)", device, path)
                self._warned_device = True
        if kwargs.get("amp") is True:
            kwargs["amp"] = False
            if not self.amp_disabled:
                log.info("AMP is only used on CUDA: amp=false on the CPU (at %s)", path)
                self.amp_disabled = True
        return kwargs


def _requires(func: Any, name: str) -> bool:
    """Whether calling ``func`` needs the argument ``name`` (no default)."""
    import inspect

    try:
        param = inspect.signature(func).parameters.get(name)
    except (TypeError, ValueError):
        return False
    return param is not None and param.default is inspect.Parameter.empty


def apply_determinism(cfg: Any) -> int | None:
    """Honour ``determinism.random_seed`` (MONAI's set_determinism) and ``cudnn_benchmark``; return the seed."""
    import torch
    from monai.utils import set_determinism

    determinism = cfg.get("determinism") or {}
    seed = determinism.get("random_seed") if hasattr(determinism, "get") else None
    if seed is not None:
        set_determinism(seed=int(seed))
    # set_determinism turns cudnn benchmarking off; the config's flag decides last.
    torch.backends.cudnn.benchmark = bool(cfg.get("cudnn_benchmark", False))
    return None if seed is None else int(seed)
