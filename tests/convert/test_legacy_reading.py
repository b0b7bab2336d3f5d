"""Legacy names read by what they are (issue 10, items 2-4), through the whole converter.

One real Clara 4.0 config (example 18) is edited the way early 4.0 configs were written: 3.x components next to
MONAI ones, MONAI names removed since, a ``save_dict`` list naming the training config, ``"disabled": "true"``,
an array transform given ``keys``. Each edit must convert with the rewrite reported once, and the file must stay a
4.0 one (its implicit wiring made explicit).
"""

from __future__ import annotations

import copy
import functools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from clara_hydra.convert import Document, convert_documents
from clara_hydra.convert.catalog import resolve_component
from clara_hydra.convert.legacy import pick
from clara_hydra.convert.signatures import load_index
from clara_hydra.errors import ConfigError, Level

EXAMPLE = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "clara_examples"
    / ("18_NVIDIA_clara-train-examples_v40_trn_autoML_Enum.json")
)


def _base() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    return doc


def _edited() -> dict[str, Any]:
    doc = _base()
    train = doc["train"]
    for handler in train["handlers"]:
        if handler["name"] == "CheckpointSaver":
            handler["args"]["save_dict"] = ["model", "optimizer", "train_conf"]
    pre = train["pre_transforms"]
    pre.insert(2, {"name": "AddChannelD", "args": {"keys": ["image"]}})
    pre.insert(
        3, {"name": "ScaleIntensityRange", "args": {"keys": "image", "a_min": 0, "a_max": 9, "b_min": 0, "b_max": 1}}
    )
    pre.insert(4, {"name": "RandomAxisFlip", "args": {"fields": ["image", "label"], "probability": 0.3}})
    pre[5]["disabled"] = "true"
    train["loss"] = {"name": "Dice", "args": {"skip_background": True}}
    train["lr_scheduler"] = {"name": "DecayOnStep", "args": {"decay_ratio": 0.5, "decay_freq": 10}}
    return doc


@functools.cache
def _converted() -> tuple[dict[str, Any], tuple[Any, ...]]:
    conv = convert_documents(Document("edited_4.0.json", json.dumps(_edited()).encode()))
    tree = yaml.safe_load(conv.files["config.yaml"])
    return tree, tuple(conv.diagnostics)


def _rules_at(path: str) -> list[str]:
    return [d.rule for d in _converted()[1] if d.json_path == path]


def test_the_edited_file_stays_a_4_0_one_with_its_wiring() -> None:
    tree, _ = _converted()
    handlers = [h for h in tree["train"]["handlers"].values() if isinstance(h, dict)]
    saver = next(h for h in handlers if h["_target_"] == "monai.handlers.CheckpointSaver")
    assert saver["save_dict"] == {
        "model": {"_ref_": "train.model"},
        "optimizer": {"_ref_": "train.optimizer"},
        "train_conf": {"_config_": True},  # Clara 4.0 stored the training config under this name
    }
    assert tree["train"]["lr_scheduler"]["optimizer"] == {"_ref_": "train.optimizer"}  # 4.0 implicit wiring


def test_3x_components_in_a_4_0_file_are_read_as_3x() -> None:
    tree, _ = _converted()
    assert tree["train"]["loss"]["_target_"] == "monai.losses.DiceLoss"
    assert tree["train"]["loss"]["include_background"] is False
    assert tree["train"]["lr_scheduler"]["_target_"] == "torch.optim.lr_scheduler.StepLR"
    assert (tree["train"]["lr_scheduler"]["gamma"], tree["train"]["lr_scheduler"]["step_size"]) == (0.5, 10)
    assert _rules_at("train.loss") == ["clara-3x-component", "rewrite", "legacy-caveat"]
    assert _rules_at("train.lr_scheduler") == ["clara-3x-component", "rewrite", "legacy-caveat"]


def _pre(tree: dict[str, Any]) -> list[dict[str, Any]]:
    chain = tree["train"]["pre_transforms"]
    return [v for k, v in chain.items() if not k.startswith("_")]


def test_removed_monai_alias_and_array_transform_given_keys() -> None:
    tree, _ = _converted()
    pre = _pre(tree)
    assert pre[2]["_target_"] == "monai.transforms.EnsureChannelFirstd"
    assert pre[2]["channel_dim"] == "no_channel"
    assert pre[3]["_target_"] == "monai.transforms.ScaleIntensityRanged"
    assert pre[4]["_target_"] == "monai.transforms.RandAxisFlipd" and pre[4]["prob"] == 0.3
    assert _rules_at("train.pre_transforms[3]") == ["array-transform-given-keys"]


def test_disabled_string_is_a_boolean_with_one_warning() -> None:
    tree, diags = _converted()
    assert _pre(tree)[5]["_disabled_"] is True
    counts = Counter(d.rule for d in diags if d.level is Level.WARNING)
    assert counts["disabled-string"] == 1


def test_a_removed_monai_class_without_counterpart_is_a_located_error() -> None:
    doc = _base()
    doc["validate"]["handlers"].append({"name": "NiftiSaver", "args": {"output_dir": "/tmp/x"}})
    with pytest.raises(ConfigError) as info:
        convert_documents(Document("saver.json", json.dumps(doc).encode()))
    errors = [d for d in info.value.diagnostics if d.level is Level.ERROR]
    assert [d.rule for d in errors] == ["removed-class"]
    assert "1.2.0" in errors[0].message and "monai.transforms.SaveImage" in errors[0].fix
    assert errors[0].json_path.startswith("validate.handlers[")


# ---------------------------------------------------------------------------------------------- by what a name is

INDEX = load_index()


@pytest.mark.parametrize(
    ("name", "args", "era", "tf"),
    [
        ("SegResnet", {}, "4.1", True),  # only Clara 3.x had it
        ("ReduceOnPlateau", {"plateau_count_trigger": 3}, "4.0", True),
        ("Dice", {"skip_background": True}, "4.0", True),  # a 3.x argument MONAI's DiceLoss does not take
        ("Dice", {"include_background": False}, "3.x", False),  # MONAI's arguments win even in a 3.x file
        ("Dice", {}, "3.x", True),  # nothing said: the file decides
        ("Dice", {}, "4.1", False),
        ("ScaleIntensityRange", {"fields": "image"}, "4.0", True),
        ("ScaleIntensityRange", {"keys": "image"}, "4.0", False),
        ("UNet", {"dimensions": 3}, "3.x", False),  # not a Clara 3.x name at all
    ],
)
def test_is_tf_component(name: str, args: dict[str, Any], era: str, tf: bool) -> None:
    assert pick.is_tf_component(name, args, era, INDEX) is tf


@pytest.mark.parametrize(
    ("name", "args", "target", "rules"),
    [
        ("SplitChannelD", {"keys": "x", "channel_dim": 0}, "monai.transforms.SplitDimd", ["rewrite"]),
        ("TorchVisionFullyConvModel", {}, "monai.networks.nets.TorchVisionFCModel", ["rewrite", "legacy-caveat"]),
        ("unet", {"spatial_dims": 3}, "monai.networks.nets.UNet", ["rewrite"]),
        ("IgniteMetric", {}, "monai.handlers.IgniteMetricHandler", ["rewrite", "legacy-caveat"]),
        ("SegmentationSaver", {"output_dir": "out"}, "clara_hydra.components.SegmentationSaver", ["rewrite"]),
        (
            "NormalizeIntensity",
            {"keys": ["image"]},
            "monai.transforms.NormalizeIntensityd",
            ["array-transform-given-keys"],
        ),
    ],
)
def test_removed_names_follow_the_history(name: str, args: dict[str, Any], target: str, rules: list[str]) -> None:
    res = resolve_component(name, None, args, json_path="train.x", slot="handlers", era="4.1")
    assert res.target == target
    assert [d.rule for d in res.diagnostics if d.level is not Level.ERROR] == rules


def test_removed_argument_is_dropped_with_a_warning() -> None:
    res = resolve_component(
        "Spacingd", None, {"keys": "image", "pixdim": [1, 1, 1], "meta_keys": None}, json_path="t", slot=None, era="4.1"
    )
    assert "meta_keys" not in res.args and "meta_keys" not in res.arg_map
    (diag,) = [d for d in res.diagnostics if d.rule == "removed-argument"]
    assert diag.level is Level.WARNING and "1.2.0" in diag.message and diag.json_path == "t.args.meta_keys"


def test_changed_default_is_reported_for_the_clara_era_only() -> None:
    args = {"keys": "image", "roi_size": [8, 8, 8]}
    notes = resolve_component("RandSpatialCropd", None, args, json_path="t", slot=None, era="4.1").diagnostics
    assert [(d.rule, d.json_path, d.level) for d in notes] == [("changed-default", "t.args.random_size", Level.INFO)]
    assert '"random_size": true' in notes[0].fix
    given = {**args, "random_size": False}
    assert not resolve_component("RandSpatialCropd", None, given, json_path="t", slot=None, era="4.1").diagnostics
    assert not resolve_component("RandSpatialCropd", None, args, json_path="t", slot=None, era="3.x").diagnostics


def test_deprecated_arg_rename_with_a_message_only_warns() -> None:
    # LocalNormalizedCrossCorrelationLoss: MONAI's deprecated_arg named no new_name, only its message does.
    res = resolve_component(
        "LocalNormalizedCrossCorrelationLoss", None, {"ndim": 3}, json_path="t", slot="loss", era="4.1"
    )
    assert res.args == {"spatial_dims": 3}
    (diag,) = [d for d in res.diagnostics if d.rule == "rewrite"]
    assert diag.level is Level.WARNING and "message says" in diag.message


def test_edits_do_not_touch_the_original() -> None:
    before = copy.deepcopy(_base())
    _edited()
    assert _base() == before


@pytest.mark.parametrize("how", ["search", "apply"])
def test_a_search_or_apply_on_a_renamed_argument_follows_the_rename(how: str) -> None:
    doc = _base()
    model = doc["train"]["model"]
    model["args"]["spatial_dims"] = model["args"].pop("dimensions")
    if how == "search":
        model["search"] = [{"domain": "net", "type": "enum", "args": ["dimensions#dims"], "targets": [[3], [2]]}]
    else:
        doc["search"] = [
            *doc.get("search", []),
            {"domain": "net", "type": "enum", "args": ["dims"], "targets": [[3], [2]]},
        ]
        model["apply"] = {"dimensions": "dims"}
    conv = convert_documents(Document(f"{how}.json", json.dumps(doc).encode()))
    tree = yaml.safe_load(conv.files["config.yaml"])
    assert tree["train"]["model"]["spatial_dims"] == "${dims}"
    assert "dimensions" not in tree["train"]["model"]
    assert [d.level for d in conv.diagnostics if d.rule == "renamed-arg"] == [Level.WARNING]


def test_an_unknown_apply_target_still_gets_a_did_you_mean() -> None:
    doc = _base()
    doc["search"] = [
        *doc.get("search", []),
        {"domain": "net", "type": "enum", "args": ["units"], "targets": [[1], [2]]},
    ]
    doc["train"]["model"]["apply"] = {"num_res_unit": "units"}
    with pytest.raises(ConfigError) as info:
        convert_documents(Document("typo.json", json.dumps(doc).encode()))
    (err,) = [d for d in info.value.diagnostics if d.level is Level.ERROR]
    assert err.rule == "unknown-apply-target" and "num_res_units" in err.fix


def test_an_unknown_3x_component_in_a_4x_file_is_reported_not_fatal() -> None:
    res = resolve_component("RandomGammaShift", None, {"fields": ["image"]}, json_path="t", slot=None, era="4.0")
    (diag,) = res.diagnostics
    assert (diag.rule, diag.level, res.target) == ("no-monai-counterpart", Level.WARNING, None)
    typo = resolve_component("RandFlipdd", None, {"keys": ["image"]}, json_path="t", slot=None, era="4.0")
    assert [d.rule for d in typo.diagnostics] == ["unknown-class"]


def test_a_4_0_transform_inverter_handler_inverts_its_sections_pre_transforms() -> None:
    doc = _base()
    doc["validate"]["handlers"].append({"name": "TransformInverter", "args": {"output_keys": "pred"}})
    conv = convert_documents(Document("inverter.json", json.dumps(doc).encode()))
    handlers = yaml.safe_load(conv.files["config.yaml"])["validate"]["handlers"]
    (inverter,) = [h for h in handlers.values() if isinstance(h, dict) and "TransformInverter" in h["_target_"]]
    assert inverter["_target_"] == "clara_hydra.components.TransformInverter"
    assert inverter["transform"] == {"_ref_": "validate.pre_transforms"}
