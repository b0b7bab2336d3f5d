"""Benchmark: batch-synchronous ``n_jobs=2`` (joblib launcher) vs 2 asynchronous workers, same search.

    python tools/bench/workers.py [--trials 16] [--epochs 8] [--out runs/bench/workers]

Runs the demo search (``experiment=quickstart`` with its pruner) twice, each in its own study and
folder, on the same 16 trainings: the grid sampler over the demo's discrete dimensions (loss, channels,
num_res_units, a_min/a_max: 2 x 2 x 2 x 2 points, seed 0), its two continuous ones fixed
(``learning_rate=0.003 myProb=0.5``), no baseline trial. A sampler that learns (TPE) would draw other
trials when it sees results in another order, and the two runs would time different trainings.

(a) ``hydra/launcher=joblib hydra.launcher.n_jobs=2 hydra.sweeper.n_jobs=2``: batches of two trials, a
    batch ends when its slowest trial ends (a pruned trial's slot idles meanwhile);
(b) ``hydra.sweeper.workers=2``: two worker processes, each asking its next trial as soon as its last
    one ended.

It prints each run's wall time, the ratio b/a, and two fractions of slot time (2 slots x the span from
the first trial's start to the last one's end): ``in_trials``, the trials' Optuna durations (ask to
tell: what a worker spends inside a trial; in a synchronous batch this includes a finished trial's wait
for the slowest one, so it reads ~1 for (a) and says nothing there), and ``in_jobs``, the seconds the
trials' jobs worked (their ``trial_summary.json``: imports, caching, training, validating; the rest is
idle slots and each job's launch by Hydra). Results go to ``<out>/<time>/results.json``. Which trials the pruner
stops depends on the order results arrive in, so the two runs may prune different trials.
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
# The same 16 trainings in both runs: a grid over the demo's discrete dimensions (see the docstring).
SEARCH = [
    "hydra/sweeper/sampler=grid",
    "hydra.sweeper.sampler.seed=0",
    "learning_rate=0.003",
    "myProb=0.5",
    "hydra.sweeper.baseline_trial=false",
]


def run(label: str, extra: list[str], out: Path, trials: int, epochs: int) -> dict[str, Any]:
    sweep_dir = out / label
    journal = out / f"{label}.journal"
    cmd = [
        sys.executable, str(REPO / "train.py"), "-m", "experiment=quickstart", f"epochs={epochs}", *SEARCH,
        f"hydra.sweeper.n_trials={trials}", f"hydra.sweeper.study_name=bench_{label}",
        f"hydra.sweeper.storage=journal://{journal}", f"hydra.sweep.dir={sweep_dir}", *extra,
    ]  # fmt: skip
    print(f"({label}) {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    load = os.getloadavg()[0]  # the 1-minute load at the end: other jobs on the machine skew the comparison
    (out / f"{label}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"({label}) failed with code {proc.returncode}; see {out / f'{label}.log'}")
    fractions = busy_fraction(journal, f"bench_{label}", slots=2)
    return {"label": label, "wall_s": round(wall, 2), "load_1min_at_end": round(load, 2), **fractions}


def busy_fraction(journal: Path, study_name: str, slots: int) -> dict[str, Any]:
    """:func:`fraction` of a study in a journal file, trial work read from each job's ``trial_summary.json``."""
    import optuna

    from clara_hydra.sweeper.storage import open_storage

    study = optuna.load_study(study_name=study_name, storage=open_storage(f"journal://{journal}"))
    trials = study.get_trials(deepcopy=False)
    return fraction(trials, slots, {t.number: job_seconds(t.user_attrs.get("job_dir")) for t in trials})


def job_seconds(job_dir: str | None) -> float | None:
    """The seconds a job worked (imports, caching, training, validating), from its ``trial_summary.json``.

    Not the trial's storage duration: in a synchronous batch a trial is told only when the batch ends,
    so its duration includes the time its slot sat idle waiting for the slowest trial.
    """
    if not job_dir:
        return None
    try:
        data = json.loads((Path(job_dir) / "trial_summary.json").read_text())
    except (OSError, ValueError):
        return None
    return float(sum(data.get("seconds", {}).values()))


def fraction(trials: list[Any], slots: int, work: dict[int, float | None] | None = None) -> dict[str, Any]:
    """Slot time spent in trials (Optuna's durations) and in the jobs' own work (see the module docstring).

    Args:
        trials: the study's trials.
        slots: trials that can run at once (2 here).
        work: seconds each trial's job worked; a trial without an entry counts its Optuna duration.
    """
    done = [t for t in trials if t.datetime_start and t.datetime_complete]
    start = min(t.datetime_start for t in done)
    end = max(t.datetime_complete for t in done)
    work = work or {}
    durations = [(t.number, (t.datetime_complete - t.datetime_start).total_seconds()) for t in done]
    in_trials = sum(d for _, d in durations)
    in_jobs = sum(w if (w := work.get(n)) is not None else d for n, d in durations)
    span = (end - start).total_seconds()
    states: dict[str, int] = {}
    for t in done:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    best = max((t.value for t in done if t.value is not None and t.state.name == "COMPLETE"), default=None)
    return {
        "trials": len(done),
        "states": states,
        "trial_seconds": round(in_trials, 2),
        "job_seconds": round(in_jobs, 2),
        "span_s": round(span, 2),
        "in_trials": round(in_trials / (slots * span), 3) if span > 0 else None,
        "in_jobs": round(in_jobs / (slots * span), 3) if span > 0 else None,
        "best_value": best,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=16)
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
            f"({r['label']}) wall {r['wall_s']:.1f} s (load {r['load_1min_at_end']}), "
            f"{r['trials']} trials {r['states']}, "
            f"slot time in trials {r['in_trials']}, in the jobs' own work {r['in_jobs']}, best {r['best_value']}"
        )
    print(
        f"wall-time ratio b/a = {ratio:.3f}; worker time in trials (b) = {workers['in_trials']} "
        f"(in the jobs' own work: b {workers['in_jobs']}, a {batch['in_jobs']})"
    )
    print(f"results: {out / 'results.json'}")


if __name__ == "__main__":
    main()
