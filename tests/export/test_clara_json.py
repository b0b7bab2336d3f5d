"""``--to clara``: the trial as a Clara 4.1 config; ``clara-hydra convert`` gives back the same composed config."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import clara_hydra.resolvers  # noqa: F401  (registers the resolvers the trial config uses)
from clara_hydra.cli import main
from clara_hydra.errors import ExportError
from clara_hydra.export.clara_json import export_clara
from clara_hydra.export.select import select_trial
from tests.export.conftest import Sweep

pytestmark = pytest.mark.slow


def _ordered(node: Any) -> Any:
    """Dicts as lists of items, so that equality also checks key order (transform order matters)."""
    if isinstance(node, dict):
        return [(k, _ordered(v)) for k, v in node.items()]
    if isinstance(node, list):
        return [_ordered(v) for v in node]
    return node


def _keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for v in node.values() for k in _keys(v)}
    if isinstance(node, list):
        return {k for v in node for k in _keys(v)}
    return set()


@pytest.mark.parametrize("number", [0, 1])
def test_round_trip_gives_the_trials_composed_config(sweep: Sweep, tmp_path: Path, number: int) -> None:
    trial = select_trial(sweep.dir, trial=number)
    out = tmp_path / "config_train.json"
    assert main(["export", str(sweep.dir), "--trial", str(number), "--to", "clara", str(out)]) == 0
    document = json.loads(out.read_text())
    assert "search" not in _keys(document) and "apply" not in _keys(document)  # remove_search_augs
    assert document["train"]["optimizer"]["args"] == {"params": "#@model.parameters()", "lr": "{learning_rate}"}
    assert document["train"]["handlers"][1]["args"]["validator"] == "@evaluator"
    assert document["validate"]["key_metric"]["log_label"] == "val_mean_dice"
    assert document["train"]["dataset"]["data_list_key"] == "{TRAIN_DATALIST_KEY}"
    if number == 1:  # a sampled trial: its searched values are the first-level values
        assert document["learning_rate"] == pytest.approx(float(trial.params["learning_rate"]))

    assert main(["convert", str(out), "-o", str(tmp_path / "conf"), "-q"]) == 0
    original = OmegaConf.load(trial.config_file)
    here = os.getcwd()
    os.chdir(sweep.cwd)  # relative data paths and the job-folder resolver as the trial saw them
    try:
        before = OmegaConf.to_container(original, resolve=True)
        with initialize_config_dir(config_dir=str(tmp_path / "conf"), version_base=None):
            after = OmegaConf.to_container(compose("config"), resolve=True)
    finally:
        os.chdir(here)
    assert isinstance(before, dict) and isinstance(after, dict)
    after.pop("hydra", None)
    assert _ordered(after) == _ordered(before)


def test_an_existing_file_is_kept(sweep: Sweep, tmp_path: Path) -> None:
    out = tmp_path / "x.json"
    out.write_text("{}")
    with pytest.raises(ExportError, match="exists"):
        export_clara(select_trial(sweep.dir), out)
    assert main(["export", str(sweep.dir), "--to", "clara", str(out)]) == 2
    assert main(["export", str(sweep.dir), "--to", "onnx", str(out)]) == 2
