"""The GPU-resident data cache's memory, measured: build a config's training dataset through the runtime's
``DataCache`` on the run's device and print one JSON line (a step of ``tools/bench/gpu_check.py``).

    python tools/bench/gpu_cache_probe.py [OVERRIDE ...]     # the overrides of ``train.py``, e.g. experiment=quickstart

Prints ``{"device", "on_device", "items", "items_gb", "allocated_before_mib", "allocated_after_mib",
"reserved_after_mib", "free_gb", "total_gb", "seconds"}``: the items' size as the cache counts it, and what
``torch.cuda.memory_allocated`` says it took (zero on the CPU).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the package from this checkout also where it is not installed (a device machine)
    sys.path.insert(0, str(REPO))


def main(overrides: list[str]) -> dict[str, object]:
    import torch
    from hydra import compose, initialize_config_dir

    import clara_hydra.runtime  # noqa: F401  (registers the config's resolvers)
    from clara_hydra.runtime.build import Builder
    from clara_hydra.runtime.cache import ON_DEVICE_ATTR, DataCache, build_dataset, nbytes_of
    from clara_hydra.runtime.cache_settings import CacheSettings
    from clara_hydra.runtime.device import DevicePolicy

    overrides = [o for o in overrides if not o.startswith(("hydra.", "-"))]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose("config", overrides=overrides)
    policy = DevicePolicy()
    cuda = policy.device.startswith("cuda")
    before = torch.cuda.memory_allocated() if cuda else 0
    t0 = time.perf_counter()
    builder = Builder(cfg, kwargs_policy=policy.adjust)
    dataset = build_dataset(builder, "train.dataset", CacheSettings.from_config(cfg), DataCache(), policy.device)
    if cuda:
        torch.cuda.synchronize()
    items = list(getattr(dataset, "_cache", []) or [])
    free, total = torch.cuda.mem_get_info() if cuda else (0, 0)
    mib, gib = 1024**2, 1024**3
    return {
        "device": policy.device,
        "on_device": bool(getattr(dataset, ON_DEVICE_ATTR, False)),
        "items": len(items),
        "items_gb": round(nbytes_of(items) / gib, 3) if items else 0.0,
        "allocated_before_mib": round(before / mib, 1),
        "allocated_after_mib": round((torch.cuda.memory_allocated() if cuda else 0) / mib, 1),
        "reserved_after_mib": round((torch.cuda.memory_reserved() if cuda else 0) / mib, 1),
        "free_gb": round(free / gib, 2),
        "total_gb": round(total / gib, 2),
        "seconds": round(time.perf_counter() - t0, 2),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])), flush=True)
