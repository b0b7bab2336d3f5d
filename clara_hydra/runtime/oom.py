"""A trial that runs out of GPU memory: one clear failure that says how much it asked for and what was free.

Several trials may share a GPU (``hydra.sweeper.gpus="0:0"``); when one of them asks for more than is
left, torch raises ``torch.OutOfMemoryError`` with a long message. The trial fails with
:class:`OutOfMemoryError` instead (the sweep records FAIL ``out of memory: ...``), its cached blocks go
back to the GPU for the other trials, and the worker goes on with its next trial.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from clara_hydra.errors import UserError, with_fix

_SIZE = r"([\d.]+ [KMGT]?i?B)"
_ASKED = re.compile(rf"Tried to allocate {_SIZE}")
_GPU = re.compile(rf"GPU (\d+) has a total capacity of {_SIZE} of which {_SIZE} is free")
_OLD_GPU = re.compile(rf"GPU (\d+); {_SIZE} total capacity; .*?{_SIZE} free")  # torch < 2.1 wording


class OutOfMemoryError(UserError, RuntimeError):
    """Raised by a trial whose training ran out of GPU memory (the name is the one the sweeper recognises)."""


@dataclass(frozen=True)
class MemoryReport:
    """What torch's out-of-memory message says (each ``None`` when the message does not say it)."""

    asked: str | None
    free: str | None
    total: str | None
    gpu: str | None


def parse(message: str) -> MemoryReport:
    """The amounts in a ``torch.OutOfMemoryError`` message (``Tried to allocate 2.00 GiB. GPU 0 has ...``)."""
    asked = _ASKED.search(message)
    gpu = _GPU.search(message) or _OLD_GPU.search(message)
    if gpu is None:
        return MemoryReport(asked.group(1) if asked else None, None, None, None)
    index, first, second = gpu.groups()
    total, free = (first, second)
    return MemoryReport(asked.group(1) if asked else None, free, total, index)


def is_cuda_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is torch's out-of-memory error (without importing torch)."""
    torch = sys.modules.get("torch")
    cls = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    return cls is not None and isinstance(exc, cls)


def describe(exc: BaseException, where: str = "") -> OutOfMemoryError:
    """The trial's failure for a ``torch.OutOfMemoryError``: the memory asked for, what was free, the fix.

    Example:
        >>> str(describe(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total "
        ...     "capacity of 79.14 GiB of which 1.06 GiB is free.")))  # doctest: +ELLIPSIS
        'CUDA out of memory on GPU 0: asked for 2.00 GiB, 1.06 GiB free of 79.14 GiB...'
    """
    report = parse(str(exc))
    on = f" on GPU {report.gpu}" if report.gpu is not None else ""
    parts = []
    if report.asked:
        parts.append(f"asked for {report.asked}")
    if report.free:
        parts.append(f"{report.free} free" + (f" of {report.total}" if report.total else ""))
    detail = ", ".join(parts) if parts else " ".join(str(exc).split())[:200]
    place = f" ({where})" if where else ""
    return OutOfMemoryError(
        with_fix(
            f"CUDA out of memory{on}: {detail}{place}",
            "lower the batch size or the crop/ROI size, turn on amp, or give this trial a GPU of its own "
            "(fewer workers per GPU in hydra.sweeper.gpus)",
        )
    )


def release_cached_memory() -> None:
    """Give the blocks torch's allocator keeps back to the GPU, for the trials that share it."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
