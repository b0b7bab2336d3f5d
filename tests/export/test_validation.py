"""``--to validation``: a converted Clara validation config evaluates the sweep's best checkpoint with one command."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from clara_hydra.cli import main
from clara_hydra.errors import ExportError
from clara_hydra.export.checkpoint import find_checkpoint
from clara_hydra.export.select import select_trial
from clara_hydra.export.validation import export_validation
from tests.export.conftest import REPO, TRAIN, VALIDATION_EXAMPLE, Sweep, quiet_env, run

pytestmark = pytest.mark.slow


def test_the_validation_config_evaluates_the_best_checkpoint(sweep: Sweep, tmp_path: Path) -> None:
    conf = tmp_path / "conf_val"
    assert main(["convert", str(VALIDATION_EXAMPLE), "-o", str(conf), "-q"]) == 0
    assert main(["export", str(sweep.dir), "--to", "validation", str(conf)]) == 0
    option = yaml.safe_load((conf / "experiment" / "sweep_best.yaml").read_text())
    checkpoint = find_checkpoint(select_trial(sweep.dir).job_dir).resolve()
    assert option["MMAR_CKPT"] == str(checkpoint)  # its name holds '=': no quoting on a command line needed
    assert option["dont_load_ckpt_model"] is False and option["dont_load_ts_model"] is True
    assert option["DATA_ROOT"] == str(sweep.data)
    # The one documented command.
    best = _evaluate(conf, tmp_path, "best")
    assert best["status"] == "completed" and best["objective"]["name"] == "val_mean_dice"
    # The value depends on the checkpoint: the other trial's network scores otherwise; no checkpoint is an error.
    other_trial = select_trial(sweep.dir, trial=1 - select_trial(sweep.dir).number)
    assert (
        main(["export", str(sweep.dir), "--trial", str(other_trial.number), "--to", "validation", str(conf), "--force"])
        == 0
    )
    other = _evaluate(conf, tmp_path, "other")
    assert other["best_value"] != pytest.approx(best["best_value"], abs=1e-6)
    option_file = conf / "experiment" / "sweep_best.yaml"
    other_models = find_checkpoint(other_trial.job_dir).resolve().parent
    option_file.write_text(option_file.read_text().replace(str(other_models), str(tmp_path / "nowhere")))
    proc = subprocess.run(_command(conf, "gone"), cwd=tmp_path, env=quiet_env(), capture_output=True, text=True)
    assert proc.returncode == 2 and "no such checkpoint" in proc.stderr


def _command(conf: Path, run_dir: str) -> list[str]:
    return [sys.executable, str(TRAIN), "-cd", str(conf), "experiment=sweep_best", f"hydra.run.dir={run_dir}"]


def _evaluate(conf: Path, cwd: Path, run_dir: str) -> dict[str, Any]:
    run(_command(conf, run_dir), cwd)
    summary: dict[str, Any] = json.loads((cwd / run_dir / "trial_summary.json").read_text())
    return summary


def test_a_training_tree_is_refused(sweep: Sweep, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    with pytest.raises(ExportError, match="no checkpoint model"):
        export_validation(select_trial(sweep.dir), conf)
