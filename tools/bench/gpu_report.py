"""Summarise a ``tools/bench/gpu_check.sh`` run: s/epoch with AMP and fp32, GPU utilisation per phase.

    python tools/bench/gpu_report.py OUT_DIR EPOCHS

Reads ``phases.txt`` (phase start/end times), ``util.csv`` (nvidia-smi samples: timestamp, utilisation
%, memory MiB), the quickstart runs' ``trial_summary.json`` (``amp/``, ``fp32/``) and the 2-worker
sweep's trial folders (``sweep/N/``); writes and prints ``gpu_check.json``.
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


def phase_gpu(phases: dict[str, str], util: list[tuple[float, float, float]], phase: str) -> dict[str, Any]:
    """Mean/max utilisation and peak memory of the samples taken during one phase."""
    a, b = float(phases[f"start_{phase}"]), float(phases[f"end_{phase}"])
    xs = [u for t, u, _ in util if a <= t <= b]
    mem = [m for t, _, m in util if a <= t <= b]
    return {
        "samples": len(xs),
        "util_mean": round(sum(xs) / len(xs), 1) if xs else None,
        "util_max": max(xs, default=None),
        "mem_max_mib": max(mem, default=None),
    }


def report(out: Path, epochs: int) -> dict[str, Any]:
    """The content of ``gpu_check.json``."""
    phases = dict(line.split() for line in (out / "phases.txt").read_text().splitlines() if line.strip())
    util = read_util(out / "util.csv")
    result: dict[str, Any] = {}
    for mode in ("amp", "fp32"):
        path = out / mode / "trial_summary.json"
        if not path.exists():
            result[mode] = {"error": "no trial_summary.json (see the run's log)"}
            continue
        s = json.loads(path.read_text())
        train = s["seconds"].get("training", 0.0) + s["seconds"].get("validating", 0.0)
        result[mode] = {
            "device": s["device"],
            "amp": s["amp"],
            "best": s["best_value"],
            "s_per_epoch": round(train / epochs, 3),
            "seconds": s["seconds"],
            "gpu": phase_gpu(phases, util, mode),
        }
    if "s_per_epoch" in result["amp"] and "s_per_epoch" in result["fp32"]:
        result["amp_over_fp32"] = round(result["amp"]["s_per_epoch"] / result["fp32"]["s_per_epoch"], 3)
    trials = []
    for summary in sorted((out / "sweep").glob("[0-9]*/trial_summary.json"), key=lambda p: int(p.parent.name)):
        s = json.loads(summary.read_text())
        trials.append(
            {
                "trial": int(summary.parent.name),
                "status": s["status"],
                "device": s["device"],
                "devices": s.get("devices"),
                "best": s["best_value"],
            }
        )
    result["sweep_2_workers"] = {"gpu": phase_gpu(phases, util, "sweep"), "trials": trials}
    return result


def main() -> None:
    out, epochs = Path(sys.argv[1]), int(sys.argv[2])
    result = report(out, epochs)
    (out / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
