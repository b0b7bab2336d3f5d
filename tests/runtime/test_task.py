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


def test_divergence_guard_stops_at_the_first_nan_loss() -> None:
    import torch
    from ignite.engine import Engine

    from clara_hydra.errors import DivergedError
    from clara_hydra.runtime.divergence import DivergenceGuard

    def step(engine: Engine, batch: int) -> list[dict[str, torch.Tensor]]:
        loss = float("nan") if engine.state.epoch == 2 and batch == 1 else 0.5
        return [{"loss": torch.tensor(loss)}]  # MONAI's decollated trainer output

    engine = Engine(step)
    guard = DivergenceGuard()
    guard.attach(engine)
    engine.run([0, 1, 2], max_epochs=4)
    assert engine.state.epoch == 2 and engine.state.iteration == 5
    with pytest.raises(DivergedError, match=r"^diverged at epoch 2: the training loss is nan at iteration 5"):
        guard.raise_if_diverged("lower learning_rate (now 1e9)")
    fine = DivergenceGuard()
    fine.raise_if_diverged()  # never fired: nothing to say


def test_error_contract_exit_codes(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from clara_hydra.errors import DataError, exit_code_for, run_and_report, with_fix

    monkeypatch.delenv("CLARA_HYDRA_FULL_ERROR", raising=False)
    assert exit_code_for(DataError(with_fix("x.nii.gz: cannot read", "copy it again"))) == 2
    assert "clara-hydra: x.nii.gz: cannot read\n    fix: copy it again\n" in capsys.readouterr().err
    assert exit_code_for(KeyboardInterrupt()) == 130
    assert exit_code_for(ValueError("a bug")) is None  # keeps its traceback

    def interrupted() -> int:
        raise KeyboardInterrupt

    assert run_and_report(interrupted) == 130
    monkeypatch.setenv("CLARA_HYDRA_FULL_ERROR", "1")
    assert exit_code_for(DataError("x")) is None


def test_epochs_are_checked_and_named(compose_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    from clara_hydra.errors import BuildError

    for value in ("-1", "abc", "0", "2.5"):
        with pytest.raises(BuildError, match=r"^epochs=.* \(used as train\.trainer\.max_epochs\): must be a whole"):
            task.run(compose_cfg(f"epochs={value}"), job_dir=tmp_path / "job")
