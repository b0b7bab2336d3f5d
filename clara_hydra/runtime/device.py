"""Device and numerics policy: Clara configs say ``"device": "cuda"`` and ``"amp": true``; a laptop has neither."""

from __future__ import annotations

import logging
import os
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

    - on CUDA, a ``device="cuda"`` argument becomes this process's device (``cuda:1`` on rank 1 of a
      distributed trial), and a trainer's or evaluator's ``network`` is moved there (MONAI's engines move
      the batches, not the network).

    Args:
        cuda: whether CUDA is available; ``None`` asks torch.
        device: this process's device (a rank's ``cuda:N``); default ``cuda`` or ``cpu``.
    """

    def __init__(self, cuda: bool | None = None, device: str | None = None) -> None:
        self.cuda = cuda_available() if cuda is None else cuda
        fits = device is not None and self.cuda == device.startswith("cuda")
        self.device: str = device if device is not None and fits else ("cuda" if self.cuda else "cpu")
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
            device = kwargs.get("device")
            if isinstance(device, str) and device == "cuda" and self.device != "cuda":
                kwargs["device"] = self.device
            network = kwargs.get("network")
            if network is not None and hasattr(network, "to") and hasattr(network, "parameters"):
                kwargs["network"] = network.to(kwargs.get("device") or self.device)
            dataset = kwargs.get("dataset")
            if getattr(dataset, "_clara_on_device", False) and kwargs.get("num_workers"):
                # The data cache put this dataset's items on the GPU: worker processes cannot hold CUDA tensors.
                log.info("%s: num_workers=0, its cached data is on the GPU", path)
                kwargs["num_workers"] = 0
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


ENV_THREADS = "CLARA_HYDRA_THREADS"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's or a Slurm job's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def configure_threads(concurrent: int = 1) -> int:
    """Give torch ``cores // concurrent`` intra-op threads so parallel trials do not oversubscribe the CPU.

    Four trials at once with torch's default thread count (one per core each) ran ~4x slower on two cores
    (``shared/notes/hydra-monai-pitfalls.md``); one trial at a time keeps every core. ``CLARA_HYDRA_THREADS``
    sets the number directly. Inter-op threads follow when torch still allows it (only before any parallel
    work; later calls raise, and the first setting stays).

    Args:
        concurrent: trials running at once on this machine (the sweep's ``n_jobs`` under a parallel launcher).

    Returns:
        The intra-op thread count now in effect.
    """
    import torch

    wanted = os.environ.get(ENV_THREADS, "")
    threads = int(wanted) if wanted.isdigit() and int(wanted) > 0 else max(usable_cores() // max(concurrent, 1), 1)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
        log.info("torch threads: %d (%d usable cores, %d trial(s) at once)", threads, usable_cores(), concurrent)
    try:
        if torch.get_num_interop_threads() != threads:
            torch.set_num_interop_threads(threads)
    except RuntimeError:
        pass  # inter-op pool already started in this process: torch keeps its first setting
    return threads


ENV_VISIBLE = "CUDA_VISIBLE_DEVICES"


def visible_devices_env(gpus: list[str] | None) -> dict[str, str]:
    """The environment that pins a process to ``gpus`` (``{"CUDA_VISIBLE_DEVICES": "2,3"}``; empty for None).

    CUDA reads the variable once, when it initialises, so it must be in the environment a process
    *starts* with (the sweep workers get it that way), never set after torch touched the GPU.
    """
    return {} if gpus is None else {ENV_VISIBLE: ",".join(str(g) for g in gpus)}


def pin_devices(gpus: list[str] | None) -> bool:
    """Pin this process to ``gpus`` if CUDA is not initialised yet; return whether the pin holds.

    Args:
        gpus: GPU ids, or ``None`` to leave the environment alone.

    Returns:
        True when ``CUDA_VISIBLE_DEVICES`` now names exactly ``gpus`` and CUDA had not started.
    """
    import sys

    if gpus is None:
        return True
    wanted = visible_devices_env(gpus)[ENV_VISIBLE]
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        ok = os.environ.get(ENV_VISIBLE) == wanted
        if not ok:
            log.warning("CUDA is already initialised: cannot pin this process to GPU(s) %s", wanted)
        return ok
    os.environ[ENV_VISIBLE] = wanted
    return True


_warned_multi_gpu = False


def warn_multi_gpu(cfg: Any) -> bool:
    """Say once per process when ``multi_gpu: true`` cannot use several processes: no GPU is visible and
    ``nproc_per_node`` is not set (the trial then trains in one process on the CPU).

    Returns:
        Whether the warning was given now.
    """
    global _warned_multi_gpu
    flag = cfg.get("multi_gpu", False) if hasattr(cfg, "get") else False
    if flag is not True or _warned_multi_gpu or cfg.get("nproc_per_node") is not None or cuda_available():
        return False
    _warned_multi_gpu = True
    log.warning(
        "multi_gpu: true but no GPU is visible: each trial trains in one process on the CPU "
        "(++nproc_per_node=2 trains on 2 CPU processes with the gloo backend)"
    )
    return True
