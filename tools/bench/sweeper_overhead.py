"""The sweeper's own cost per trial (issue 15): a trivial Hydra app swept by ours and by Hydra's basic sweeper.

    python tools/bench/sweeper_overhead.py                  # 1,000 trials each (a few minutes)
    python tools/bench/sweeper_overhead.py --trials 200     # quicker
    python tools/bench/sweeper_overhead.py --only clara     # one side only

The app's task returns a number at once, so what is measured is the machinery around a job: Hydra
composing and launching it (both sides) plus, on ours, ask/tell, the journal, the result files and the
report. Each job appends its start time to a file; the cost of a trial is the time between two job
starts. Printed: ms per trial over the first and the last 100 trials, last/first (growth with the study)
and ours/basic, in wall-clock time and in the sweep process's CPU time (both launchers run the jobs in
that process; CPU time is the steadier figure on a shared machine), and the whole command's wall and CPU
time per trial (Hydra's basic sweeper composes every job's config once more up front, to check the batch,
before the first job starts: the intervals between job starts leave that out, the whole command does not).
Both sweeps use Hydra's basic launcher; ours uses the random sampler (the sampler's own
cost is Optuna's, not the sweeper's) and its default storage, a journal file next to the sweep folder.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APP = """
import atexit, os, time
import hydra

# Where the time between job starts goes: Hydra composing a job's config and running the job (the same
# functions on both sides; wrapped here, in the benchmark's app, not in the product).
import hydra.core.utils as hydra_utils
from hydra._internal import config_loader_impl
from hydra._internal.core_plugins import basic_launcher

_spent = {"compose": [0.0, 0], "run_job": [0.0, 0]}

def _timed(function, key):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            _spent[key][0] += time.perf_counter() - start
            _spent[key][1] += 1
    return wrapper

config_loader_impl.ConfigLoaderImpl.load_sweep_config = _timed(
    config_loader_impl.ConfigLoaderImpl.load_sweep_config, "compose"
)
# Hydra's plugin discovery executes basic_launcher again, and that copy imports run_job from hydra.core.utils.
hydra_utils.run_job = basic_launcher.run_job = _timed(hydra_utils.run_job, "run_job")

@atexit.register
def _save():
    with open(os.environ["BENCH_STAMPS"] + ".hydra", "w") as f:
        for key, (seconds, calls) in _spent.items():
            f.write(f"{key} {seconds} {calls}\\n")

@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg):
    with open(os.environ["BENCH_STAMPS"], "a") as f:
        f.write(f"{time.time()} {time.process_time()}\\n")
    return (float(cfg.x) - 0.3) ** 2

if __name__ == "__main__":
    main()
"""


def run(
    side: str, trials: int, work: Path
) -> tuple[list[float], list[float], float, float, dict[str, tuple[float, int]]]:
    """Sweep the app ``trials`` times with one sweeper.

    Returns:
        The job start times (wall clock, the process's CPU time), the whole command's wall and CPU seconds,
        and Hydra's own work in the sweep process: name -> (seconds, calls) of composing a job's config
        (``load_sweep_config``) and running a job (``run_job``).
    """
    stamps = work / f"{side}.stamps"
    stamps.unlink(missing_ok=True)
    shutil.rmtree(work / side, ignore_errors=True)  # a fresh study (the journal lives in the sweep folder)
    app = work / "app.py"
    app.write_text(APP)
    where = [f"hydra.sweep.dir={work / side}", "hydra.job.chdir=false"]
    if side == "clara":
        sweep = [
            "+x=interval(0,1)",
            "hydra/sweeper=clara_optuna",
            "hydra/sweeper/sampler=random",
            "hydra.sweeper.sampler.seed=0",
            "hydra.sweeper.baseline_trial=false",  # the app has no default x to run
            f"hydra.sweeper.n_trials={trials}",
        ]
    else:
        sweep = [f"+x=range(0,{trials})"]  # the basic sweeper: one job per value, in one batch
    cmd = [sys.executable, str(app), "-m", *sweep, *where]
    env = {**os.environ, "BENCH_STAMPS": str(stamps)}
    start, before = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{side} sweep failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    wall = time.time() - start
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"{side}: {trials} trials in {wall:.1f} s ({cpu:.1f} s CPU)", flush=True)
    rows = [line.split() for line in stamps.read_text().splitlines()]
    hydra_work = {
        k: (float(s), int(n)) for k, s, n in (line.split() for line in Path(f"{stamps}.hydra").read_text().splitlines())
    }
    return [float(r[0]) for r in rows], [float(r[1]) for r in rows], wall, cpu, hydra_work


def per_trial(times: list[float], first: bool, window: int = 100) -> float:
    """ms per trial over the first (or last) ``window`` job starts."""
    w = min(window, len(times) - 1)
    part = times[: w + 1] if first else times[-(w + 1) :]
    return (part[-1] - part[0]) / w * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--only", choices=("clara", "basic"))
    parser.add_argument("--work", type=Path, help="folder for the apps and sweeps (default: a temporary one)")
    a = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sweeper_overhead_") as tmp:
        work = (a.work or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        figures: dict[tuple[str, str], tuple[float, float]] = {}
        whole: dict[tuple[str, str], float] = {}
        hydra_work: dict[str, dict[str, tuple[float, int]]] = {}
        means: dict[str, float] = {}
        for side in ("clara", "basic"):
            if a.only in (None, side):
                wall, cpu, wall_s, cpu_s, hydra_work[side] = run(side, a.trials, work)
                means[side] = (wall[-1] - wall[0]) / (len(wall) - 1) * 1000
                for clock, times in (("wall", wall), ("cpu", cpu)):
                    figures[side, clock] = (per_trial(times, True), per_trial(times, False))
                whole[side, "wall"], whole[side, "cpu"] = wall_s / a.trials * 1000, cpu_s / a.trials * 1000
    print(f"\n{'sweeper':8} {'clock':5} {'first 100':>12} {'last 100':>12} {'last/first':>11}")
    for (side, clock), (first, last) in figures.items():
        print(f"{side:8} {clock:5} {first:9.1f} ms {last:9.1f} ms {last / first:10.2f}x")
    print("\nwhole command (start-up, checks and writes included) per trial:")
    for (side, clock), ms in whole.items():
        print(f"{side:8} {clock:5} {ms:9.1f} ms")
    for clock in ("wall", "cpu"):
        if ("clara", clock) in whole and ("basic", clock) in whole:
            print(f"clara/basic ({clock}, whole command): {whole['clara', clock] / whole['basic', clock]:.2f}x")
    for clock in ("wall", "cpu"):
        if ("clara", clock) in figures and ("basic", clock) in figures:
            (cf, cl), (bf, bl) = figures["clara", clock], figures["basic", clock]
            print(f"clara/basic ({clock}): first 100 {cf / bf:.2f}x, last 100 {cl / bl:.2f}x")
    breakdown(means, hydra_work)


def breakdown(means: dict[str, float], hydra_work: dict[str, dict[str, tuple[float, int]]]) -> None:
    """Where a trial's time between job starts goes (wall clock, mean over the whole sweep): Hydra composing
    the job's config, Hydra running the job, and the rest (the sweeper's own ask, tell, journal, result files).

    Hydra's share grows with the size of the composed ``hydra`` node: ours carries the sweeper's settings
    and its ``sampler``/``pruner`` config groups (upstream's grammar), the basic sweeper's node has 2 keys.
    """
    print("\nbetween job starts, per trial (mean over the sweep, wall):")
    print(f"{'sweeper':8} {'total':>9} {'compose':>15} {'run_job':>9} {'rest':>9}")
    rows = {}
    for side, work in hydra_work.items():
        compose_s, composes = work["compose"]
        run_s, runs = work["run_job"]
        per_compose = compose_s / max(composes, 1) * 1000
        per_run = run_s / max(runs, 1) * 1000
        total = means[side]
        # The basic sweeper composes every job twice (once up front, once in the launcher): between two job
        # starts there is one composition on either side.
        rest = total - per_compose - per_run
        rows[side] = (total, per_compose, per_run, rest)
        print(f"{side:8} {total:6.1f} ms {per_compose:6.1f} ms ({composes}x) {per_run:6.1f} ms {rest:6.1f} ms")
    if len(rows) == 2:
        diff = [c - b for c, b in zip(rows["clara"], rows["basic"], strict=True)]
        print(
            f"clara - basic: {diff[0]:+.1f} ms = compose {diff[1]:+.1f} ms + run_job {diff[2]:+.1f} ms"
            f" + rest {diff[3]:+.1f} ms"
        )


if __name__ == "__main__":
    main()
