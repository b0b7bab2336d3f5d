"""The sweeper's side on a real Optuna study and a real MLflow store (SQLite), without training.

One store per module (a new MLflow SQLite store runs ~100 schema migrations: seconds); each test uses its
own experiment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from clara_hydra.sweep_record import TrialAttr
from clara_hydra.sweeper.storage import StorageSpec, open_storage
from clara_hydra.tracking import store as store_module
from clara_hydra.tracking.settings import TrackingError
from clara_hydra.tracking.sweep import SweepTracker, _oldest, _settle, study_key
from tests.tracking.conftest import Store


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


def sweep_config(tmp_path: Path, uri: str, experiment: str) -> Any:
    return OmegaConf.create(
        {
            "tracking": {"backend": "mlflow", "uri": uri, "experiment_name": experiment, "tags": {"team": "ct"}},
            "hydra": {
                "runtime": {"cwd": str(tmp_path)},
                "sweep": {"dir": str(tmp_path / "sweep")},
                "sweeper": {"params": {"x": "interval(0, 1)"}},
            },
        }
    )


def open_study(tmp_path: Path) -> tuple[optuna.Study, StorageSpec, Any]:
    spec = StorageSpec(f"journal://{tmp_path / 'study.journal'}")
    storage = open_storage(spec.url)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize", load_if_exists=True)
    return study, spec, storage


def test_children_hold_the_study_s_parameters_states_values_and_reasons(tmp_path: Path, uri: str) -> None:
    study, spec, storage = open_study(tmp_path)
    tracker = SweepTracker.start(sweep_config(tmp_path, uri, "states"), study, spec, storage, tmp_path / "sweep")
    assert tracker is not None
    outcomes: list[tuple[TrialState, float | None, dict[str, str]]] = [
        (TrialState.COMPLETE, 0.8, {}),
        (TrialState.PRUNED, 0.3, {"prune_reason": "pruned at step 2 (value 0.3)"}),
        (TrialState.FAIL, None, {"fail_reason": "ValueError: bad"}),
    ]
    for state, value, attrs in outcomes:
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        job = tracker.for_job(trial._trial_id, trial.number, trial.params)
        assert job == {"uri": uri, "run_id": tracker.runs[trial._trial_id]}
        for key, text in attrs.items():
            trial.set_user_attr(key, text)
        trial.report(0.5, 1)
        if state == TrialState.PRUNED:
            trial.report(0.3, 2)  # Optuna keeps a pruned trial's last reported value as its value
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
        tracker.trial_told(trial._trial_id, job_dir=str(tmp_path / "sweep" / str(trial.number)))
    tracker.end(study)

    store = Store(uri)
    [parent] = store.parents("states")
    assert parent.info.run_name == "s" and parent.info.status == "FINISHED"
    assert parent.data.params == {"search.x": "interval(0, 1)"} and parent.data.tags["team"] == "ct"
    children = store.children("states", parent.info.run_id)
    trials = study.get_trials(deepcopy=False)
    assert sorted(children) == [t.number for t in trials]
    for t in trials:
        run = children[t.number]
        assert run.info.run_id == t.user_attrs[TrialAttr.MLFLOW_RUN_ID]  # the study links each trial to its run
        assert run.data.params == {k: str(v) for k, v in t.params.items()}
        assert run.data.tags["clara_hydra.state"] == t.state.name
        assert run.data.metrics.get("objective") == t.value
        assert run.data.tags["clara_hydra.job_dir"] == str(tmp_path / "sweep" / str(t.number))
    status = {n: r.info.status for n, r in children.items()}
    assert status == {0: "FINISHED", 1: "KILLED", 2: "FAILED"}
    assert children[1].data.tags["clara_hydra.prune_reason"] == "pruned at step 2 (value 0.3)"
    assert children[2].data.tags["clara_hydra.fail_reason"] == "ValueError: bad"
    assert store.history(parent.info.run_id, "best_objective") == {0: 0.8}


def test_a_rerun_of_the_study_finds_its_parent_and_runs_it_again(tmp_path: Path, uri: str) -> None:
    study, spec, storage = open_study(tmp_path)
    config = sweep_config(tmp_path, uri, "resume")
    first = SweepTracker.start(config, study, spec, storage, tmp_path / "sweep")
    assert first is not None
    first.end(study, interrupted=True)
    assert Store(uri).client.get_run(first.parent).info.status == "KILLED"
    again = SweepTracker.start(config, study, spec, storage, tmp_path / "sweep")
    assert again is not None and again.parent == first.parent
    assert Store(uri).client.get_run(first.parent).info.status == "RUNNING"
    # Another study instance (a new sweep folder) gets its own parent.
    other = SweepTracker.start(config, study, spec, storage, tmp_path / "sweep2")
    assert other is not None and other.parent != first.parent


def test_a_child_left_running_by_a_dead_process_is_closed_from_the_study(tmp_path: Path, uri: str) -> None:
    study, spec, storage = open_study(tmp_path)
    config = sweep_config(tmp_path, uri, "dead")
    dead = SweepTracker.start(config, study, spec, storage, tmp_path / "sweep")
    assert dead is not None
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    run_id = dead.for_job(trial._trial_id, trial.number, trial.params)["run_id"]
    # The process dies; another worker fails its stale trial (heartbeat), then a rerun starts.
    trial.set_user_attr("fail_reason", "stale: the worker stopped sending heartbeats")
    study.tell(trial, state=TrialState.FAIL)
    assert Store(uri).client.get_run(run_id).info.status == "RUNNING"
    SweepTracker.start(config, study, spec, storage, tmp_path / "sweep")
    run = Store(uri).client.get_run(run_id)
    assert run.info.status == "FAILED" and run.data.tags["clara_hydra.state"] == "FAIL"
    assert run.data.tags["clara_hydra.fail_reason"] == "stale: the worker stopped sending heartbeats"


def test_processes_that_created_a_parent_at_once_keep_the_oldest_and_delete_the_other(uri: str) -> None:
    client = Store(uri).client
    experiment = client.create_experiment("race")
    key = study_key("redis://h", "s", "/sweep")
    # Two processes found no parent and created one each (the second a moment later).
    a = client.create_run(experiment, tags={"clara_hydra.study_key": key}).info.run_id
    b = client.create_run(experiment, tags={"clara_hydra.study_key": key}).info.run_id
    assert _oldest(client, experiment, key) in (a, b)
    chosen_by_b = _settle(client, experiment, key, b)
    chosen_by_a = _settle(client, experiment, key, a)
    assert chosen_by_a == chosen_by_b
    loser = b if chosen_by_a == a else a
    assert client.get_run(loser).info.lifecycle_stage == "deleted"
    assert _oldest(client, experiment, key) == chosen_by_a


def test_mlflow_missing_is_a_compact_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "mlflow", None)  # what `import mlflow` meets when absent
    with pytest.raises(TrackingError, match=r"MLflow is not installed.*\n    fix: pip install -e '\.\[mlflow\]'"):
        store_module.open_client("sqlite:////nowhere/mlflow.db")


def test_passwords_never_reach_the_store_or_a_job_s_config() -> None:
    text = "storage: postgresql://user:s3cret@db/optuna and mysql://u:p@h/x"
    assert store_module.mask(text) == "storage: postgresql://user:***@db/optuna and mysql://u:***@h/x"
    assert store_module.param_values({"uri": "postgresql://u:pw@h/db"}) == {"uri": "postgresql://u:***@h/db"}
    # A store URI with a password reaches jobs as a reference they resolve themselves (hydra.job.env_set is
    # written into every job's .hydra/hydra.yaml).
    assert store_module.for_jobs("postgresql://u:pw@h/mlflow") == store_module.URI_REF
    assert store_module.for_jobs("sqlite:////abs/mlflow.db") == "sqlite:////abs/mlflow.db"


def test_the_option_composes_with_any_converted_tree() -> None:
    from hydra import compose, initialize_config_dir

    tree = Path(__file__).resolve().parents[1] / "golden" / "seed_full_automl_example"
    with initialize_config_dir(config_dir=str(tree), version_base=None):
        cfg = compose("config", overrides=["+tracking=mlflow", "tracking.experiment_name=seed"])
    assert cfg.tracking == {"backend": "mlflow", "uri": None, "experiment_name": "seed", "run_name": None, "tags": {}}
