"""The node translation into MONAI bundle syntax, built by MONAI's own ConfigParser (no training, no sweep)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from clara_hydra.errors import ExportError
from clara_hydra.export.bundle_syntax import BundleTranslator
from clara_hydra.export.trial_config import TrialConfig

RAW: dict[str, Any] = {
    "keys": ["image"],
    "prob": 0.25,
    "train": {
        "model": {"_target_": "monai.networks.nets.BasicUNet", "spatial_dims": 2, "features": [4, 4, 8, 8, 16, 4]},
        "optimizer": {
            "_target_": "torch.optim.SGD",
            "params": {"_target_": "clara_hydra.expressions.parameters_of", "module": {"_ref_": "train.model"}},
            "lr": 0.1,
        },
        "pre_transforms": {
            "_compose_": True,
            "rand_flipd": {"_target_": "monai.transforms.RandFlipd", "keys": "${keys}", "prob": "${prob}"},
            "gone": None,
            "off": {"_target_": "monai.transforms.RandRotate90d", "keys": "${keys}", "_disabled_": True},
            "scale_intensityd": {"_target_": "monai.transforms.ScaleIntensityd", "keys": "${keys}"},
        },
        "loss": {
            "_one_of_": True,
            "dice": {"_target_": "monai.losses.DiceLoss", "_disabled_": True},
            "focal": {"_target_": "monai.losses.FocalLoss", "_disabled_": False},
        },
        "handlers": {
            "_list_": True,
            "stats": {"_target_": "monai.handlers.StatsHandler", "_rank_": 0, "tag_name": "loss"},
            "other_rank": {"_target_": "monai.handlers.StatsHandler", "_rank_": 1},
            "saver": {
                "_target_": "monai.handlers.CheckpointSaver",
                "save_dir": "/tmp/x",
                "save_dict": {"model": {"_ref_": "train.model"}, "train_conf": {"_config_": True}},
            },
        },
        "output": {"_target_": "monai.handlers.from_engine", "keys": ["pred"], "first": True},
        "ignore": {"_target_": "clara_hydra.expressions.discard_output", "_partial_": True},
    },
}


def _translator(raw: dict[str, Any]) -> BundleTranslator:
    resolved = OmegaConf.to_container(OmegaConf.create(raw), resolve=True)
    assert isinstance(resolved, dict)
    tc = TrialConfig(raw, resolved, Path.cwd(), Path.cwd())
    return BundleTranslator(tc, tc.variables())


def test_markers_become_bundle_syntax_that_monai_builds() -> None:
    t = _translator(RAW)
    nodes = {slot: t.node(f"train.{slot}") for slot in RAW["train"] if slot != "model"}
    assert nodes["optimizer"]["params"] == {"_target_": "torch.nn.Module.parameters", "self": "@network_def"}
    flip, _ = nodes["pre_transforms"]["transforms"]
    assert flip == {"_target_": "monai.transforms.RandFlipd", "keys": "@keys", "prob": "@prob"}
    assert nodes["loss"] == {"_target_": "monai.losses.FocalLoss"}
    assert [h["_target_"].rsplit(".", 1)[-1] for h in nodes["handlers"]] == ["StatsHandler", "CheckpointSaver"]
    assert nodes["handlers"][1]["save_dict"] == {"model": "@network_def"}
    assert nodes["ignore"] == {"_target_": "clara_hydra.expressions.discard_output", "_mode_": "callable"}

    from monai.bundle import ConfigParser

    parser = ConfigParser({"keys": ["image"], "prob": 0.25, "network_def": t.node("train.model"), "train": nodes})
    network = parser.get_parsed_content("network_def")
    assert parser.get_parsed_content("train::optimizer").param_groups[0]["params"][0] is next(network.parameters())
    compose = parser.get_parsed_content("train::pre_transforms")
    assert [type(x).__name__ for x in compose.transforms] == ["RandFlipd", "ScaleIntensityd"]
    assert compose.transforms[0].prob == 0.25
    assert parser.get_parsed_content("train::output")([{"pred": 1}]) == 1
    assert parser.get_parsed_content("train::ignore")("anything") is None  # the function itself, not its result


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"_target_": "monai.losses.DiceLoss", "_args_": [1]}, "positional arguments"),
        ({"_target_": "monai.losses.DiceLoss", "reduction": "$mean"}, "starts with '\\$'"),
        ({"_target_": "monai.losses.DiceLoss", "reduction": "???"}, "required value is missing"),
        ({"_one_of_": True, "a": {"_target_": "monai.losses.DiceLoss"}, "b": {"_target_": "x.Y"}}, "2 alternatives"),
    ],
)
def test_nodes_without_a_bundle_form_are_refused(node: dict[str, Any], message: str) -> None:
    with pytest.raises(ExportError, match=message):
        _translator({"train": {"loss": node}}).node("train.loss")
