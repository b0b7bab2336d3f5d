"""Every shipped converted example, as a trial would have composed it (its defaults), written as Clara 4.1 and
converted back: the same composed config. No training: the job folder holds only the composed config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from clara_hydra.cli import main
from clara_hydra.errors import ExportError
from clara_hydra.export.clara_json import export_clara
from clara_hydra.export.select import SelectedTrial
from clara_hydra.keywords import Emitted
from tests.export.conftest import REPO

GOLDEN = REPO / "tests" / "golden"
TREES = sorted(p.name for p in GOLDEN.iterdir() if (p / "config.yaml").is_file())
# 3.x (TensorFlow-era) trees and the NVFlare fixture keep components the converter could not carry over (???).
NOT_EXPORTABLE = ("_v3x_", "63_NVIDIA_NVFlare")
_ORDERED = (Emitted.COMPOSE, Emitted.LIST, Emitted.ONE_OF)


def _canonical(node: Any) -> Any:
    """Member order counts (transforms, handlers, alternatives) and list order counts; keyword order does not."""
    if isinstance(node, dict):
        items = [(str(k), _canonical(v)) for k, v in node.items()]
        return items if any(k in node for k in _ORDERED) else sorted(items)
    if isinstance(node, list):
        return [_canonical(v) for v in node]
    return node


def _composed(conf: Path) -> DictConfig:
    with initialize_config_dir(config_dir=str(conf), version_base=None):
        return compose("config")


@pytest.mark.parametrize("tree", TREES)
def test_example_round_trip(tree: str, tmp_path: Path) -> None:
    composed = _composed(GOLDEN / tree)
    job = tmp_path / "job"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(composed))
    trial = SelectedTrial(number=0, state="COMPLETE", value=None, study_name=tree, job_dir=job)
    out = tmp_path / "config_train.json"
    if any(marker in tree for marker in NOT_EXPORTABLE):
        with pytest.raises(ExportError, match=r"could not carry over \(_target_: \?\?\?\)"):
            export_clara(trial, out)
        return
    export_clara(trial, out)
    assert main(["convert", str(out), "-o", str(tmp_path / "conf"), "-q"]) == 0
    before = OmegaConf.to_container(composed, resolve=False)
    after = OmegaConf.to_container(_composed(tmp_path / "conf"), resolve=False)
    assert isinstance(before, dict) and isinstance(after, dict)
    before.pop("hydra", None)
    after.pop("hydra", None)
    assert _canonical(after) == _canonical(before)
