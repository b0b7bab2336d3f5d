"""Tracked sweeps and runs end to end (real ``train.py``, real MLflow SQLite stores), read back with MlflowClient.

Trainings use the tiny demo set (2 training volumes of 32^3, 2 epochs); the toy app stands in where only the
sweeper's side matters (several workers).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from clara_hydra.sweep_record import TrialAttr
from clara_hydra.sweeper.storage import open_storage
from tests.runtime.conftest import TINY
from tests.tracking.conftest import store_at

pytestmark = pytest.mark.slow
PROBE = Path(__file__).parent / "apps" / "probe_train.py"
EPOCHS = 2


def tiny(data: Path) -> list[str]:
    return [*(a for a in TINY if not a.startswith("epochs=")), f"epochs={EPOCHS}", f"DATA_ROOT={data}"]


def train(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """``train.py ARGS`` in ``cwd`` (through the probe); returns the process and the MLflow modules it imported."""
    record = cwd / "mlflow_modules.json"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CLARA_HYDRA_OPTUNA", "MLFLOW_"))}
    full = {**base, "OMP_NUM_THREADS": "1", "CLARA_HYDRA_THREADS": "1", **(env or {})}
    cmd = [sys.executable, str(PROBE), str(record), *args]
    proc = subprocess.run(cmd, cwd=cwd, env=full, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-4000:]
    return proc, json.loads(record.read_text()) if record.exists() else []


def load_study(sweep_dir: Path) -> optuna.Study:
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    return optuna.load_study(study_name=results["study_name"], storage=open_storage(results["storage"]))


def test_a_tracked_sweep_leaves_one_parent_and_a_child_per_trial_equal_to_the_study(
    demo_root: Path, tmp_path: Path
) -> None:
    sweep_dir = tmp_path / "sweep"
    proc, modules = train(
        tmp_path, "-m", "experiment=quickstart", "+tracking=mlflow", "hydra.sweeper.n_trials=3",
        f"hydra.sweep.dir={sweep_dir}", *tiny(demo_root),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "mlflow" in modules  # the probe sees MLflow when tracking is on (the control of the off test)
    assert "MLflow: study 'quickstart' is run" in proc.stdout + proc.stderr
    study = load_study(sweep_dir)
    store = store_at(sweep_dir)  # the default store: beside the sweep (its folder has no timestamp here)
    [parent] = store.parents("quickstart")
    assert parent.info.run_name == "quickstart" and parent.info.status == "FINISHED"
    children = store.children("quickstart", parent.info.run_id)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 3 and sorted(children) == [t.number for t in trials]
    assert len(store.runs("quickstart")) == 4  # nothing else was logged
    for t in trials:
        run = children[t.number]
        assert run.info.run_id == t.user_attrs[TrialAttr.MLFLOW_RUN_ID]
        assert run.data.params == {k: str(v) for k, v in t.params.items()}
        assert run.data.tags["clara_hydra.state"] == t.state.name == "COMPLETE"
        assert run.info.status == "FINISHED"
        assert run.data.metrics["objective"] == t.value
        # Every validation value by epoch: what the pruner was told, step = epoch.
        assert store.history(run.info.run_id, "val_mean_dice") == t.intermediate_values
        assert sorted(store.history(run.info.run_id, "val_mean_dice")) == list(range(1, EPOCHS + 1))
        assert run.data.tags["clara_hydra.job_dir"] == str(sweep_dir / str(t.number))
        assert run.data.tags["clara_hydra.objective"] == "val_mean_dice"
        artifacts = {a.path for a in store.client.list_artifacts(run.info.run_id)}
        assert {"config.yaml", "overrides.yaml", "trial_summary.json"} <= artifacts
        local = store.client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path))
        config = yaml.safe_load(Path(local).read_text())
        assert config["epochs"] == EPOCHS and config["learning_rate"] == t.params["learning_rate"]
        assert config["tracking"]["backend"] == "mlflow"
    # The tracking node is a run option: an exported trial does not carry it.
    from clara_hydra.cli import main as cli

    assert cli(["export", str(sweep_dir), "--to", "clara", str(tmp_path / "best.json")]) == 0
    assert "tracking" not in json.loads((tmp_path / "best.json").read_text())


def test_a_tracked_single_run_logs_one_run_beside_the_runs(demo_root: Path, tmp_path: Path) -> None:
    proc, _ = train(tmp_path, "experiment=quickstart", "+tracking=mlflow", "+tracking.tags.team=ct", *tiny(demo_root))
    assert proc.returncode == 0, proc.stderr[-4000:]
    store = store_at(tmp_path / "outputs")  # hydra.run.dir = outputs/<date>/<time>: the store is outputs/mlflow.db
    [run] = store.runs("quickstart")
    job_dir = Path(run.data.tags["clara_hydra.job_dir"])
    assert (
        job_dir.parent.parent == tmp_path / "outputs" and run.info.run_name == f"{job_dir.parent.name}/{job_dir.name}"
    )
    summary = json.loads((job_dir / "trial_summary.json").read_text())
    assert run.info.status == "FINISHED" and run.data.tags["clara_hydra.state"] == "completed"
    assert run.data.tags["team"] == "ct" and "mlflow.parentRunId" not in run.data.tags
    assert run.data.metrics["objective"] == summary["best_value"]
    assert store.history(run.info.run_id, "val_mean_dice") == {h["epoch"]: h["value"] for h in summary["history"]}
    assert run.data.params["epochs"] == str(EPOCHS) and run.data.params["learning_rate"] == "0.003"
    assert {"config.yaml", "overrides.yaml", "trial_summary.json"} <= {
        a.path for a in store.client.list_artifacts(run.info.run_id)
    }


def test_tracking_off_imports_no_mlflow(demo_root: Path, tmp_path: Path) -> None:
    proc, modules = train(
        tmp_path, "-m", "experiment=quickstart", "hydra.sweeper.n_trials=1", f"hydra.sweep.dir={tmp_path / 's'}",
        *tiny(demo_root),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "mlflow_modules.json").exists() and modules == []
    assert not list(tmp_path.rglob("mlflow.db"))


@pytest.mark.parametrize("sweep", [False, True], ids=["single run", "sweep"])
def test_tracking_without_mlflow_installed_says_how_to_install(demo_root: Path, tmp_path: Path, sweep: bool) -> None:
    args = ["-m", f"hydra.sweep.dir={tmp_path / 's'}"] if sweep else []
    proc, _ = train(
        tmp_path, *args, "experiment=quickstart", "+tracking=mlflow", *tiny(demo_root), env={"PROBE_NO_MLFLOW": "1"}
    )
    assert proc.returncode == 2
    assert "MLflow is not installed" in proc.stderr and "pip install -e '.[mlflow]'" in proc.stderr
    assert not list(tmp_path.rglob("trial_summary.json"))  # stopped before training
    journal = tmp_path / "s" / "optuna" / "quickstart.journal"  # a sweep that cannot start leaves no study
    assert not journal.exists() or not optuna.get_all_study_names(storage=open_storage(f"journal://{journal}"))


def test_a_tracked_2_rank_run_logs_once_from_rank_0(tmp_path: Path) -> None:
    from clara_hydra.runtime.demo import make_demo_data

    data = make_demo_data(tmp_path / "demo", n_train=4, n_val=2, size=32, seed=1)  # a validation volume per rank
    proc, _ = train(tmp_path, "experiment=quickstart", "+tracking=mlflow", *tiny(data), "multi_gpu=true",
                    "++nproc_per_node=2", "hydra.run.dir=run")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    [run] = store_at(tmp_path / "run").runs("quickstart")
    summary = json.loads((tmp_path / "run" / "trial_summary.json").read_text())
    assert summary["world_size"] == 2 and run.info.status == "FINISHED"
    # One value per epoch: rank 1 logged nothing (2 ranks logging would leave 2 entries per step).
    history = store_at(tmp_path / "run").client.get_metric_history(run.info.run_id, "val_mean_dice")
    assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1))
    assert {m.step: m.value for m in history} == {h["epoch"]: h["value"] for h in summary["history"]}
    assert run.data.metrics["objective"] == summary["best_value"]
