"""Constant cost: report.html and the result files are rewritten on a timer during a sweep, always at its end."""

from __future__ import annotations

import csv
from typing import Any

import optuna
import pytest
import yaml
from optuna.storages.journal import JournalFileBackend, JournalStorage

from clara_hydra.errors import SweepError
from clara_hydra.sweeper.settings import Settings


def _check_files_match_the_study(sweep: Any) -> list[optuna.trial.FrozenTrial]:
    storage = JournalStorage(JournalFileBackend(str(sweep.sweep_dir / "optuna" / "toy.journal")))
    trials = optuna.load_study(study_name="toy", storage=storage).trials
    with open(sweep.sweep_dir / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["number"]), r["state"]) for r in rows] == [(t.number, t.state.name) for t in trials]
    results = yaml.safe_load((sweep.sweep_dir / "optimization_results.yaml").read_text())
    assert results["n_trials"] == len(trials)
    assert sum(results["states"].values()) == len(trials)
    assert (sweep.sweep_dir / "report.html").is_file()
    return trials


@pytest.mark.slow
def test_report_is_throttled_during_a_sweep_and_written_at_the_end(run_toy: Any) -> None:
    sweep = run_toy("x=range(0,1,step=0.1)", "hydra.sweeper.n_trials=4", "hydra.sweeper.report_interval=3600")
    seen = [r["files"] for r in sweep.trainings()]
    assert len(seen) >= 3
    # Written after the first batch, then not again while the sweep ran ...
    assert seen[0]["report_mtime"] is None
    assert len({f["report_mtime"] for f in seen[1:]}) == 1 and seen[1]["report_mtime"] is not None
    # ... and at the end, with every trial.
    final = (sweep.sweep_dir / "report.html").stat().st_mtime_ns
    assert final > seen[-1]["report_mtime"]
    assert len(_check_files_match_the_study(sweep)) == 4


@pytest.mark.slow
def test_report_interval_0_rewrites_everything_after_every_batch(run_toy: Any) -> None:
    sweep = run_toy("x=range(0,1,step=0.1)", "hydra.sweeper.n_trials=4", "hydra.sweeper.report_interval=0")
    runs = sweep.trainings()
    mtimes = [r["files"]["report_mtime"] for r in runs]
    assert None not in mtimes[1:] and len(set(mtimes[1:])) == len(mtimes) - 1
    for r in runs[1:]:  # trials.csv lists every earlier trial when the next job starts
        assert r["files"]["csv_rows"] == r["trial"]


@pytest.mark.slow
def test_result_files_are_whole_after_an_interrupt(run_toy: Any) -> None:
    sweep = run_toy("x=range(0,1,step=0.1)", "hydra.sweeper.n_trials=6", env={"TOY_INTERRUPT_AT": "3"}, check=False)
    assert sweep.proc.returncode == 130, sweep.output[-2000:]
    trials = _check_files_match_the_study(sweep)
    assert [t.state.name for t in trials][:4] == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"]


@pytest.mark.parametrize("value", [-1, "soon", float("nan")])
def test_report_interval_must_be_seconds(value: Any) -> None:
    with pytest.raises(SweepError, match="report_interval: expected seconds >= 0"):
        Settings.from_node({"n_trials": 2, "report_interval": value})
