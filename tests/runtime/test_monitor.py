"""A tiny real sweep of the seed example: a quiet console, each validation logged once, no progress bars in
logs, every epoch's detail in the trial's ``train.log``, and each trial's hyperparameters and final metric in
TensorBoard's HParams tab."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.conftest import TINY

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    from clara_hydra.runtime.demo import make_demo_data

    tmp = tmp_path_factory.mktemp("sweep")
    demo = make_demo_data(tmp / "demo", n_train=2, n_val=1, size=32, seed=1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARA_HYDRA_OPTUNA")}
    run = subprocess.run(
        [
            sys.executable, str(REPO / "train.py"), "-m", *TINY, "epochs=2",
            f"DATA_ROOT={demo}", f"DATASET_JSON={demo / 'dataset.json'}",
            "hydra.sweeper.n_trials=2", "hydra/sweeper/pruner=nop", "hydra.sweeper.study_name=monitor",
            "hydra.sweeper.sampler.seed=0", f"hydra.sweep.dir={tmp / 'sweep'}",
        ],
        cwd=tmp, env={**env, "OMP_NUM_THREADS": "1", "CLARA_HYDRA_THREADS": "1"},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run, tmp / "sweep"


@pytest.mark.slow
def test_the_console_shows_no_job_log_and_train_log_has_every_epoch(sweep: Any) -> None:
    run, folder = sweep
    console = run.stdout + run.stderr
    for source in (
        "][clara_hydra.train]",
        "][monai.handlers.StatsHandler]",
        "][ignite.engine",
        "][clara_hydra.runtime",
    ):
        assert source not in console, source
    # Hydra's launcher announces no job after the first (the first is announced before any job code runs:
    # clara_hydra.runtime.console.quiet_launcher() called at the sweep's start silences that one too).
    assert "\t#1 : " not in console
    assert "%|" not in console  # no tqdm bar
    for trial in ("0", "1"):
        log = (folder / trial / "train.log").read_text()
        assert "epoch 1/2: loss" in log and "epoch 2/2: loss" in log  # the detail is in the trial's log
        assert "%|" not in log


@pytest.mark.slow
def test_each_validation_is_logged_once(sweep: Any) -> None:
    _, folder = sweep
    log = (folder / "0" / "train.log").read_text()
    mentions = [line for line in log.splitlines() if "val_mean_dice" in line]
    ours = [line for line in mentions if "][clara_hydra.train][INFO] - validation at epoch " in line]
    assert [line.split("validation at epoch ")[1][:2] for line in ours] == ["1:", "2:"]
    assert len(mentions) == len(ours) + 1, mentions  # + the run's closing summary (best value and epoch)
    # the repeats that used to follow each validation (ignite, MONAI's StatsHandler)
    assert "Got new best metric of val_mean_dice" not in log
    assert "Key metric: val_mean_dice" not in log and "Metrics -- val_" not in log
    assert "SupervisedEvaluator][INFO]" not in log


@pytest.mark.slow
def test_hparams_of_each_trial_reach_tensorboard(sweep: Any) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    _, folder = sweep
    seen = []
    for trial in ("0", "1"):
        runs = {p.parent for p in (folder / trial).rglob("events.out.tfevents.*")}
        assert runs, f"no TensorBoard events in trial {trial}"
        found: dict[str, Any] = {}
        for run_dir in runs:
            acc = EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
            acc.Reload()
            content = acc.PluginTagToContent("hparams")
            start = content.get("_hparams_/session_start_info")
            if start is not None:
                data = plugin_data_pb2.HParamsPluginData.FromString(start)
                found = {k: v for k, v in data.session_start_info.hparams.items()}
                assert "val_mean_dice" in acc.Tags()["scalars"]
        assert found, f"no HParams session in trial {trial}"
        assert "learning_rate" in found
        seen.append(found["learning_rate"].number_value)
    assert seen[0] != seen[1]  # each trial its own searched value
