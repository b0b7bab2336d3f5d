"""Choosing the trial to export: from a sweep folder or from its Optuna storage, best or given."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from clara_hydra.errors import ExportError, InputFileError
from clara_hydra.export.select import select_trial
from tests.export.conftest import Sweep

pytestmark = pytest.mark.slow


def test_the_best_trial_of_a_sweep_folder(sweep: Sweep) -> None:
    results = yaml.safe_load((sweep.dir / "optimization_results.yaml").read_text())
    trial = select_trial(sweep.dir)
    assert trial.number == results["best_trial"]
    assert trial.value == pytest.approx(results["best_value"])
    assert trial.study_name == "quickstart"
    assert trial.config_file.is_file()
    assert "epochs=1" in trial.overrides


def test_a_given_trial_and_the_storage_give_the_same_trial(sweep: Sweep) -> None:
    from_folder = select_trial(sweep.dir, trial=1)
    journal = sweep.dir / "optuna" / "quickstart.journal"
    from_storage = select_trial(f"journal://{journal}", study="quickstart", trial=1)
    assert from_folder.job_dir == from_storage.job_dir == sweep.dir / "1"
    assert from_folder.overrides == from_storage.overrides
    assert from_storage.params["learning_rate"] == pytest.approx(float(from_folder.params["learning_rate"]))
    # A bare journal path, the only study in it, the best trial.
    assert select_trial(str(journal)).number == select_trial(sweep.dir).number


def test_errors_name_what_exists(sweep: Sweep, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"(?s)no trial 7.*choose one of \[0, 1\]"):
        select_trial(sweep.dir, trial=7)
    with pytest.raises(ExportError, match=r"holds study 'quickstart', not 'other'"):
        select_trial(sweep.dir, study="other")
    with pytest.raises(ExportError, match=r"(?s)no study 'other'.*\['quickstart'\]"):
        select_trial(str(sweep.dir / "optuna" / "quickstart.journal"), study="other")
    with pytest.raises(InputFileError, match="not a sweep folder"):
        select_trial(tmp_path)
    with pytest.raises(InputFileError, match="no sweep folder or storage file at"):
        select_trial(tmp_path / "missing.journal")


def test_a_failed_trial_is_refused_and_a_moved_folder_is_found(sweep: Sweep, tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(sweep.dir, moved, ignore=shutil.ignore_patterns("*.pt", "events.*"))
    # Moved: trials.csv still names the old job folders; the copy's own 0/ and 1/ are used.
    assert select_trial(moved, trial=1).job_dir == moved / "1"
    csv_file = moved / "trials.csv"
    lines = csv_file.read_text().splitlines()
    lines[2] = lines[2].replace(",COMPLETE,", ",FAIL,", 1)
    csv_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(ExportError, match="trial 1 is FAIL: only COMPLETE or PRUNED trials"):
        select_trial(moved, trial=1)


def _study(storage: str, name: str, directions: list[str], job_dir: Path) -> None:
    import optuna

    study = optuna.create_study(storage=storage, study_name=name, directions=directions)
    for i, values in enumerate([[0.5, 2.0], [0.7, 3.0]]):
        study.add_trial(
            optuna.trial.create_trial(
                values=values[: len(directions)],
                params={"lr": 0.1 * (i + 1)},
                distributions={"lr": optuna.distributions.FloatDistribution(0.0, 1.0)},
                user_attrs={"job_dir": str(job_dir), "overrides": [f"lr={0.1 * (i + 1)}"]},
            )
        )


def test_storages_with_several_or_multi_objective_studies(sweep: Sweep, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    _study(storage, "single", ["maximize"], sweep.dir / "0")
    _study(storage, "pareto", ["maximize", "minimize"], sweep.dir / "1")
    with pytest.raises(ExportError, match=r"(?s)2 studies in .*--study"):
        select_trial(storage)
    best = select_trial(storage, study="single")
    assert (best.number, best.value, best.job_dir) == (1, 0.7, sweep.dir / "0")
    with pytest.raises(ExportError, match=r"(?s)multi-objective.*--trial \[0, 1\]"):
        select_trial(storage, study="pareto")
    assert select_trial(storage, study="pareto", trial=0).job_dir == sweep.dir / "1"
