"""``--to validation``: a converted Clara validation config evaluates the sweep's best checkpoint with one command."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from clara_hydra.cli import main
from clara_hydra.errors import ExportError
from clara_hydra.export.checkpoint import find_checkpoint
from clara_hydra.export.select import select_trial
from clara_hydra.export.validation import export_validation
from tests.export.conftest import REPO, TRAIN, VALIDATION_EXAMPLE, Sweep, run

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
    proc = run([sys.executable, str(TRAIN), "-cd", str(conf), "experiment=sweep_best", "hydra.run.dir=run"], tmp_path)
    assert f"Restored all variables from {checkpoint}" in proc.stdout + proc.stderr
    summary = json.loads((tmp_path / "run" / "trial_summary.json").read_text())
    assert summary["status"] == "completed" and summary["objective"]["name"] == "val_mean_dice"
    assert 0.0 <= summary["best_value"] <= 1.0


def test_a_training_tree_is_refused(sweep: Sweep, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    with pytest.raises(ExportError, match="no checkpoint model"):
        export_validation(select_trial(sweep.dir), conf)
