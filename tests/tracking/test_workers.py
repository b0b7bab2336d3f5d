"""Several sweep processes on one study log into one MLflow store: one parent run, one child per trial.

The toy app stands in for training (the sweeper's side owns the runs' lifecycle); its trials sleep a little
so the workers' trials overlap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from clara_hydra.sweep_record import TrialAttr
from clara_hydra.sweeper.storage import open_storage
from tests.sweeper.test_workers import SEED, Workers
from tests.tracking.conftest import Store, store_at

pytestmark = pytest.mark.slow


def check_one_parent(store: Store, trials: list[optuna.trial.FrozenTrial]) -> None:
    """One parent (and no deleted duplicate), one finished child per trial, each linked from the study."""
    [parent] = store.parents("toy")
    assert len(store.runs("toy", deleted=True)) == len(store.runs("toy")) == len(trials) + 1
    children = store.children("toy", parent.info.run_id)
    assert sorted(children) == sorted(t.number for t in trials)
    for t in trials:
        run = children[t.number]
        assert run.info.run_id == t.user_attrs[TrialAttr.MLFLOW_RUN_ID]
        assert run.data.tags["clara_hydra.state"] == t.state.name and run.info.status == "FINISHED"
        assert run.data.metrics["objective"] == t.value
        assert run.data.params == {k: str(v) for k, v in t.params.items()}
    assert parent.info.status == "FINISHED"


def test_workers_2_in_one_command_share_one_parent(run_toy: Any) -> None:
    sweep = run_toy(
        "x=interval(0,1)", *SEED, "+tracking=mlflow", "hydra.sweeper.n_trials=6", "hydra.sweeper.workers=2",
        env={"TOY_SLEEP": "2.5"},  # long enough for the second worker to start (MLflow's import) and take trials
    )  # fmt: skip
    study = optuna.load_study(study_name="toy", storage=open_storage(sweep.results()["storage"]))
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 6 and {t.user_attrs[TrialAttr.WORKER].split("@")[0] for t in trials} == {"w1", "w2"}
    check_one_parent(store_at(sweep.sweep_dir), trials)


def test_three_processes_started_together_create_one_parent(tmp_path: Path) -> None:
    # The same command on three machines: no coordinator; the parent is found or created under the study's lock.
    w = Workers(tmp_path, f"journal://{tmp_path / 'study.journal'}")
    for _ in range(3):
        w.start("x=interval(0,1)", *SEED, "+tracking=mlflow", "hydra.sweeper.n_trials=6", env={"TOY_SLEEP": "2"})
    for code, out in w.wait():
        assert code == 0, out[-3000:]
    trials = w.study_trials()
    assert len(trials) == 6 and len({t.user_attrs[TrialAttr.WORKER] for t in trials}) >= 2
    check_one_parent(store_at(tmp_path / "sweep"), trials)
