"""The non-GPU pieces of tools/bench/gpu_check.sh and tools/bench/workers.py (no timing asserted)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import optuna
import pytest
from optuna.trial import TrialState

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def tools() -> Iterator[tuple[ModuleType, ModuleType]]:
    sys.path.insert(0, str(REPO / "tools" / "bench"))
    try:
        yield importlib.import_module("gpu_report"), importlib.import_module("workers")
    finally:
        sys.path.remove(str(REPO / "tools" / "bench"))


def test_gpu_check_script_parses() -> None:
    for script in ("gpu_check.sh", "gpu_wheels.sh"):
        subprocess.run(["bash", "-n", str(REPO / "tools" / "bench" / script)], check=True)


def test_gpu_report_summarises_a_steps_window(tools: tuple[ModuleType, ModuleType], tmp_path: Path) -> None:
    gpu_report, _ = tools
    from datetime import datetime

    def stamp(t: float) -> str:
        return datetime.fromtimestamp(t).strftime("%Y/%m/%d %H:%M:%S.%f")[:-3]

    lines = [f"{stamp(1000 + i)}, {u}, {100 * u}" for i, u in enumerate([50, 70, 0, 0, 0] + [0] * 10 + [90] * 40)]
    (tmp_path / "util.csv").write_text("\n".join([*lines, "garbage"]) + "\n")
    util = gpu_report.read_util(tmp_path / "util.csv")
    assert len(util) == 55
    assert gpu_report.phase_gpu(1000, 1010, util) == {"samples": 11, "util_mean": 10.9, "util_max": 70.0,
                                                      "mem_max_mib": 7000.0}  # fmt: skip
    assert gpu_report.phase_gpu(1030, 1060, util)["util_mean"] == 90.0
    assert gpu_report.phase_gpu(2000, 2010, util)["util_mean"] is None


@pytest.fixture()
def gpu_check(tools: tuple[ModuleType, ModuleType]) -> ModuleType:
    return importlib.import_module("gpu_check")


def test_a_step_past_its_timeout_is_stopped_with_its_children(gpu_check: ModuleType, tmp_path: Path) -> None:
    import os
    import time

    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time; p = subprocess.Popen(['sleep', '300']); "
        "open(sys.argv[1], 'w').write(str(p.pid)); print('started', flush=True); time.sleep(300)"
    )
    t0 = time.time()
    run = gpu_check.run_step([sys.executable, "-c", code, str(pid_file)], 3.0, tmp_path / "step.log")
    assert run["timed_out"] and run["rc"] != 0 and time.time() - t0 < 20
    assert "started" in (tmp_path / "step.log").read_text()
    child = int(pid_file.read_text())
    for _ in range(50):  # the sleep (same process group) is gone too
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"child {child} of the timed-out step is still alive")
    ok = gpu_check.run_step([sys.executable, "-c", "print('hi')"], 30.0, tmp_path / "ok.log")
    assert (ok["rc"], ok["timed_out"]) == (0, False)


def _trial(folder: Path, summary: dict[str, object], started: float, ended: float) -> None:
    import os

    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("{}")
    (folder / "trial_summary.json").write_text(json.dumps(summary))
    os.utime(folder / ".hydra" / "config.yaml", (started, started))
    os.utime(folder / "trial_summary.json", (ended, ended))


def test_the_oom_step_reads_which_trial_ran_out_and_whether_its_worker_went_on(
    gpu_check: ModuleType, tmp_path: Path
) -> None:
    oom = "OutOfMemoryError: CUDA out of memory on GPU 0: asked for 14.06 GiB, 9.50 GiB free of 139.70 GiB"
    seconds = {"training": 6.0, "validating": 2.0}
    w = {"worker": "w1@host", "gpus": ["0"]}
    _trial(tmp_path / "0", {"status": "failed", "error": oom, "devices": w, "device": "cuda"}, 100, 110)
    _trial(tmp_path / "1", {"status": "completed", "devices": w, "device": "cuda", "best_value": 0.8,
                            "seconds": seconds}, 111, 130)  # fmt: skip
    (tmp_path / "sweep_log").mkdir()  # not a trial folder
    trials = gpu_check.sweep_trials(tmp_path, epochs=2)
    assert [t["trial"] for t in trials] == [0, 1] and trials[1]["s_per_epoch"] == 4.0
    outcome = gpu_check.oom_outcome(trials)
    assert outcome["oom_trials"] == [0] and outcome["completed_trials"] == [1] and outcome["worker_went_on"]
    assert outcome["oom_messages"] == [oom]
    trials[1]["worker"] = "w2@host"  # another worker ran the next trial: this worker's going on is not shown
    assert not gpu_check.oom_outcome(trials)["worker_went_on"]


def test_cache_lines_are_read_from_the_runs_log(gpu_check: ModuleType) -> None:
    text = "x\ncached data on cuda (0.27 GB)\n2.10 GB of cached data stays in host memory (GPU has 5.00 GB free)\n"
    assert gpu_check.cache_lines(text) == {
        "on_device": [{"device": "cuda", "gb": 0.27}],
        "in_host_memory": [{"gb": 2.1, "gpu_free_gb": 5.0}],
    }


def test_a_spent_budget_still_writes_the_summary_and_fails(gpu_check: ModuleType, tmp_path: Path) -> None:
    assert gpu_check.main(["--dry-run", "--budget", "0", str(tmp_path)]) == 1
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert list(result["steps"]) == list(gpu_check.STEPS) and not result["ok"]
    assert {s["status"] for s in result["steps"].values()} == {"not_run"}
    assert "| oom | not_run | budget spent" in (tmp_path / "gpu_check.md").read_text()
    import tarfile

    with tarfile.open(tmp_path / "logs.tar.gz") as tar:  # what a device machine's $OUT gives back: a few files
        assert tar.getnames() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu_check.json", "gpu_check.md", "logs.tar.gz"]
    with pytest.raises(SystemExit):
        gpu_check.main(["--dry-run", "--steps", "amp,warp", str(tmp_path)])


def test_busy_fraction(tools: tuple[ModuleType, ModuleType], tmp_path: Path) -> None:
    from datetime import datetime, timedelta

    from clara_hydra.sweeper.storage import open_storage

    _, workers = tools
    t0 = datetime(2026, 1, 1)

    def trial(start: float, end: float, state: str = "COMPLETE", number: int = 0) -> optuna.trial.FrozenTrial:
        t = optuna.trial.create_trial(value=1.0 if state == "COMPLETE" else None, state=getattr(TrialState, state))
        t.number = number
        t.datetime_start, t.datetime_complete = t0 + timedelta(seconds=start), t0 + timedelta(seconds=end)
        return t

    # Two slots over 10 s: asynchronous workers keep both busy; a batch idles one slot for 6 s.
    full = workers.fraction([trial(0, 10), trial(0, 4), trial(4, 10)], slots=2)
    assert full["in_trials"] == full["in_jobs"] == 1.0 and full["span_s"] == 10
    batch = workers.fraction([trial(0, 10), trial(0, 4, "PRUNED")], slots=2)
    assert batch["in_jobs"] == 0.7 and batch["states"] == {"COMPLETE": 1, "PRUNED": 1}
    # Work from the jobs' summaries wins over the storage's durations (a batch tells its trials late).
    assert workers.fraction([trial(0, 10), trial(0, 10, number=1)], slots=2, work={0: 10.0, 1: 4.0})["in_jobs"] == 0.7
    journal = tmp_path / "s.journal"
    study = optuna.create_study(study_name="s", storage=open_storage(f"journal://{journal}"))
    study.optimize(lambda t: 1.0, n_trials=2)
    assert workers.busy_fraction(journal, "s", slots=1)["trials"] == 2
