"""nvidia-smi samples of a ``tools/bench/gpu_check.sh`` run: parse ``util.csv``, summarise one step's window.

    python tools/bench/gpu_report.py OUT_DIR START END   # mean/max utilisation and peak memory in [START, END]

``util.csv`` holds ``nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits``
lines (one per GPU per sample); ``tools/bench/gpu_check.py`` calls :func:`phase_gpu` for each of its steps.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any


def read_util(path: Path) -> list[tuple[float, float, float]]:
    """(unix time, utilisation %, memory MiB) per nvidia-smi sample; unparsable lines are skipped."""
    samples = []
    for line in path.read_text().splitlines() if path.exists() else []:
        parts = [p.strip() for p in line.split(",")]
        try:
            t = datetime.strptime(parts[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
            samples.append((t, float(parts[1]), float(parts[2])))
        except (ValueError, IndexError):
            continue
    return samples


def phase_gpu(start: float, end: float, util: list[tuple[float, float, float]]) -> dict[str, Any]:
    """Mean/max utilisation and peak memory of the samples taken between ``start`` and ``end`` (unix times)."""
    xs = [u for t, u, _ in util if start <= t <= end]
    mem = [m for t, _, m in util if start <= t <= end]
    return {
        "samples": len(xs),
        "util_mean": round(sum(xs) / len(xs), 1) if xs else None,
        "util_max": max(xs, default=None),
        "mem_max_mib": max(mem, default=None),
    }


def main() -> None:
    out, start, end = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    print(json.dumps(phase_gpu(start, end, read_util(out / "util.csv")), indent=2))


if __name__ == "__main__":
    main()
