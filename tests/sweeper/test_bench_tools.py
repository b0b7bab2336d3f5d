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
    subprocess.run(["bash", "-n", str(REPO / "tools" / "bench" / "gpu_check.sh")], check=True)


def test_gpu_report_summarises_phases_and_runs(tools: tuple[ModuleType, ModuleType], tmp_path: Path) -> None:
    gpu_report, _ = tools
    (tmp_path / "phases.txt").write_text(
        "start_amp 1000\nend_amp 1010\nstart_fp32 1010\nend_fp32 1030\nstart_sweep 1030\nend_sweep 1060\n"
    )
    from datetime import datetime

    def stamp(t: float) -> str:
        return datetime.fromtimestamp(t).strftime("%Y/%m/%d %H:%M:%S.%f")[:-3]

    lines = [f"{stamp(1000 + i)}, {u}, {100 * u}" for i, u in enumerate([50, 70, 0, 0, 0] + [0] * 10 + [90] * 40)]
    (tmp_path / "util.csv").write_text("\n".join([*lines, "garbage"]) + "\n")
    for mode, seconds in (("amp", 4.0), ("fp32", 8.0)):
        (tmp_path / mode).mkdir()
        summary = {"device": "cuda", "amp": mode == "amp", "best_value": 0.9, "epochs_validated": 8,
                   "seconds": {"training": seconds * 0.75, "validating": seconds * 0.25}}  # fmt: skip
        (tmp_path / mode / "trial_summary.json").write_text(json.dumps(summary))
    for n in (1, 0):
        (tmp_path / "sweep" / str(n)).mkdir(parents=True)
        s = {"status": "completed", "device": "cuda", "devices": {"worker": f"w{n + 1}@h"}, "best_value": 0.5}
        (tmp_path / "sweep" / str(n) / "trial_summary.json").write_text(json.dumps(s))
    result = gpu_report.report(tmp_path, epochs=8)
    assert (result["amp"]["s_per_epoch"], result["fp32"]["s_per_epoch"], result["amp_over_fp32"]) == (0.5, 1.0, 0.5)
    assert result["amp"]["gpu"]["util_max"] == 70 and result["sweep_2_workers"]["gpu"]["util_mean"] == 90
    assert [t["trial"] for t in result["sweep_2_workers"]["trials"]] == [0, 1]


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
