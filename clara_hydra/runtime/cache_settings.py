"""Settings of the data cache (:mod:`clara_hydra.runtime.cache`): an optional ``clara_cache`` node, env wins.

``clara_cache`` at the top of a config (or ``+clara_cache.max_gb=2`` on the command line)::

    clara_cache:
      enabled: true      # CLARA_HYDRA_CACHE=0 turns it off
      max_gb: null       # CLARA_HYDRA_CACHE_MAX_GB; null = half of the RAM available when the first trial starts
      disk: auto         # CLARA_HYDRA_CACHE_DISK=1/0; auto = on when the trial runs outside the sweeper's process
      dir: null          # CLARA_HYDRA_CACHE_DIR; null = <stable sweep root>/cache in a sweep, else ~/.cache/...
      on_device: true    # CUDA only: keep cached items on the GPU when they fit (CLARA_HYDRA_CACHE_ON_DEVICE)
      stages: auto       # CLARA_HYDRA_CACHE_STAGES=1/0; auto = on in a sweep: keep the loaded, resampled data before
                         # the first intensity transform, so trials that differ only after it load nothing
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clara_hydra.errors import BuildError

CONFIG_KEY = "clara_cache"
ENV_ENABLED = "CLARA_HYDRA_CACHE"
ENV_MAX_GB = "CLARA_HYDRA_CACHE_MAX_GB"
ENV_DISK = "CLARA_HYDRA_CACHE_DISK"
ENV_DIR = "CLARA_HYDRA_CACHE_DIR"
ENV_ON_DEVICE = "CLARA_HYDRA_CACHE_ON_DEVICE"
ENV_STAGES = "CLARA_HYDRA_CACHE_STAGES"
GB = 1024**3
DEFAULT_RAM_FRACTION = 0.5  # of MemAvailable: the trial itself (model, activations, batches) needs the rest
_FALLBACK_AVAILABLE = 4 * GB  # no /proc/meminfo (macOS): assume a small machine
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def available_memory() -> int:
    """Bytes of RAM available now (``MemAvailable`` of /proc/meminfo; 4 GiB when it cannot be read)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return _FALLBACK_AVAILABLE


def _flag(name: str, value: Any) -> bool | None:
    """``True``/``False`` for a boolean-ish setting, ``None`` for ``auto``/unset."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("", "auto", "none", "null"):
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BuildError(f"{name}={value!r}: expected true, false or auto")


@dataclass(frozen=True)
class CacheSettings:
    """How the data cache behaves in this process.

    Args:
        enabled: reuse preprocessed data across trials at all.
        max_bytes: memory bound of the in-process cache (least recently used entries are evicted).
        disk: also keep a disk copy (``None`` = auto: when trials run in other processes than the sweeper).
        dir: root of the disk cache (``None`` = default place, see the module docstring).
        on_device: on CUDA, move cached items to the GPU when they fit.
        stages: also keep a stage of the deterministic prefix (loading and resampling, before its intensity
            transforms) for trials whose prefix differs only after it (``None`` = auto: in a sweep).
    """

    enabled: bool = True
    max_bytes: int = int(DEFAULT_RAM_FRACTION * _FALLBACK_AVAILABLE)
    disk: bool | None = None
    dir: Path | None = None
    on_device: bool = True
    stages: bool | None = None

    @classmethod
    def from_config(cls, cfg: Any) -> CacheSettings:
        """Read ``clara_cache`` from ``cfg`` (a mapping or ``DictConfig``), then the environment variables.

        Raises:
            BuildError: a value that is not a number/flag, naming the key or variable.
        """
        found = cfg.get(CONFIG_KEY) if hasattr(cfg, "get") else None
        node: Any = found if hasattr(found, "get") else {}

        def pick(key: str, env: str) -> tuple[str, Any]:
            if os.environ.get(env, "") != "":
                return env, os.environ[env]
            return f"{CONFIG_KEY}.{key}", node.get(key)

        name, value = pick("enabled", ENV_ENABLED)
        enabled = _flag(name, value) is not False
        name, value = pick("max_gb", ENV_MAX_GB)
        if value is None:
            max_bytes = int(DEFAULT_RAM_FRACTION * available_memory())
        else:
            try:
                max_bytes = int(float(value) * GB)
            except (TypeError, ValueError):
                raise BuildError(f"{name}={value!r}: expected a number of GiB, e.g. {name}=4") from None
        name, value = pick("disk", ENV_DISK)
        disk = _flag(name, value)
        _, folder = pick("dir", ENV_DIR)
        name, value = pick("on_device", ENV_ON_DEVICE)
        on_device = _flag(name, value) is not False
        name, value = pick("stages", ENV_STAGES)
        stages = _flag(name, value)
        return cls(
            enabled=enabled,
            max_bytes=max(max_bytes, 0),
            disk=disk,
            dir=Path(os.path.expanduser(str(folder))) if folder else None,
            on_device=on_device,
            stages=stages,
        )
