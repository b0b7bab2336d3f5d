"""Benchmark: batch-synchronous ``n_jobs=2`` (joblib launcher) vs 2 asynchronous workers, same search.

    python tools/bench/workers.py [--trials 8] [--epochs 8] [--out runs/bench/workers]

Runs the demo search (``experiment=quickstart``: TPE seed 0, the quickstart pruner) twice, each in its
own study and folder:

(a) ``hydra/launcher=joblib hydra.launcher.n_jobs=2 hydra.sweeper.n_jobs=2``: batches of two trials, a
    batch ends when its slowest trial ends (a pruned trial's slot idles meanwhile);
(b) ``hydra.sweeper.workers=2``: two worker processes, each asking its next trial as soon as its last
    one ended.

It prints each run's wall time, the ratio b/a, and the fraction of worker time spent in trials: the
sum of the trials' durations over (2 slots x the span from the first trial's start to the last one's
end). Results go to ``<out>/<time>/results.json``. The two runs see the same seed, but the sampler sees
results in another order, so the trials differ after the first few: compare the times, not the values.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run(label: str, extra: list[str], out: Path, trials: int, epochs: int) -> dict[str, Any]:
    sweep_dir = out / label
    journal = out / f"{label}.journal"
    cmd = [
        sys.executable, str(REPO / "train.py"), "-m", "experiment=quickstart", f"epochs={epochs}",
        f"hydra.sweeper.n_trials={trials}", f"hydra.sweeper.study_name=bench_{label}",
        f"hydra.sweeper.storage=journal://{journal}", f"hydra.sweep.dir={sweep_dir}", *extra,
    ]  # fmt: skip
    print(f"({label}) {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (out / f"{label}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"({label}) failed with code {proc.returncode}; see {out / f'{label}.log'}")
    return {"label": label, "wall_s": round(wall, 2), **busy_fraction(journal, f"bench_{label}", slots=2)}


def busy_fraction(journal: Path, study_name: str, slots: int) -> dict[str, Any]:
    """:func:`fraction` of a study in a journal file."""
    import optuna

    from clara_hydra.sweeper.storage import open_storage

    study = optuna.load_study(study_name=study_name, storage=open_storage(f"journal://{journal}"))
    return fraction(study.get_trials(deepcopy=False), slots)


def fraction(trials: list[Any], slots: int) -> dict[str, Any]:
    """Trial time over slot time between the first trial's start and the last trial's end."""
    done = [t for t in trials if t.datetime_start and t.datetime_complete]
    start = min(t.datetime_start for t in done)
    end = max(t.datetime_complete for t in done)
    busy = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done)
    span = (end - start).total_seconds()
    states: dict[str, int] = {}
    for t in done:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    best = max((t.value for t in done if t.value is not None and t.state.name == "COMPLETE"), default=None)
    return {
        "trials": len(done),
        "states": states,
        "trial_seconds": round(busy, 2),
        "span_s": round(span, 2),
        "busy_fraction": round(busy / (slots * span), 3) if span > 0 else None,
        "best_value": best,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench" / "workers")
    args = parser.parse_args()
    out = args.out / time.strftime("%Y-%m-%d_%H-%M-%S")
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    batch = run(
        "a_batch_joblib",
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2"],
        out,
        args.trials,
        args.epochs,
    )
    workers = run("b_workers", ["hydra.sweeper.workers=2"], out, args.trials, args.epochs)
    ratio = workers["wall_s"] / batch["wall_s"]
    results = {"a": batch, "b": workers, "ratio_b_over_a": round(ratio, 3), "cores": os.cpu_count()}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    for r in (batch, workers):
        print(
            f"({r['label']}) wall {r['wall_s']:.1f} s, {r['trials']} trials {r['states']}, "
            f"busy fraction {r['busy_fraction']}, best {r['best_value']}"
        )
    print(f"wall-time ratio b/a = {ratio:.3f}; worker time in trials (b) = {workers['busy_fraction']}")
    print(f"results: {out / 'results.json'}")


if __name__ == "__main__":
    main()
