"""End-to-end runs of the task function on the tiny synthetic set (CPU, seconds each)."""

from __future__ import annotations

import json
import logging
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from clara_hydra.runtime import task

Composer = Callable[..., DictConfig]


@pytest.mark.slow
def test_one_epoch_training_writes_summary_and_checkpoints(compose_cfg: Composer, tmp_path: Path) -> None:
    best = task.run(compose_cfg(), job_dir=tmp_path / "job")
    assert 0.0 <= best <= 1.0
    summary = json.loads((tmp_path / "job" / "trial_summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["objective"] == {"name": "val_mean_dice", "direction": "maximize"}
    assert summary["best_value"] == pytest.approx(best) and summary["best_epoch"] == 1
    assert summary["device"] == "cpu" and summary["amp"] is False
    assert set(summary["seconds"]) >= {"importing", "caching_data", "training", "validating"}
    # MMAR_CKPT_DIR = ${clara.job_dir:models}: <cwd>/models outside Hydra (the Hydra job folder inside it).
    assert list((tmp_path / "models").glob("*final*.pt")), "final checkpoint saved"
    assert list((tmp_path / "models").glob("events.out.tfevents*")), "TensorBoard log written"


@pytest.mark.slow
def test_pruned_trial_stops_cleanly(
    compose_cfg: Composer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    optuna = pytest.importorskip("optuna")
    reports: list[tuple[float, int]] = []

    def report(value: float, step: int) -> None:
        reports.append((value, step))
        raise optuna.TrialPruned(f"pruned at step {step}")

    # Compose first: Hydra's plugin discovery imports the sweeper plugin, which needs the real trial_report module.
    cfg = compose_cfg("epochs=3")
    fake = types.ModuleType("clara_hydra.sweeper.trial_report")
    fake.report = report  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "clara_hydra.sweeper.trial_report", fake)
    with pytest.raises(optuna.TrialPruned):
        task.run(cfg, job_dir=tmp_path / "job")
    assert [step for _, step in reports] == [1], "the trainer stopped after the first validation"
    summary = json.loads((tmp_path / "job" / "trial_summary.json").read_text())
    assert summary["status"] == "pruned" and summary["epochs_validated"] == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "pruning is not logged as an error"


@pytest.mark.slow
def test_validation_only_config_runs_the_evaluator(compose_cfg: Composer, tmp_path: Path) -> None:
    cfg = compose_cfg()
    OmegaConf.set_struct(cfg, False)
    for slot in ("trainer", "handlers", "dataset", "dataloader"):
        del cfg.train[slot]
    value = task.run(cfg, job_dir=tmp_path / "job")
    assert 0.0 <= value <= 1.0
    summary = json.loads((tmp_path / "job" / "trial_summary.json").read_text())
    assert summary["status"] == "completed" and summary["best_value"] == pytest.approx(value)
