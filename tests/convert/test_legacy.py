"""The legacy rewrite tables: every entry is consistent with the installed MONAI 1.6 signatures, and each rewrite does
what its table says (renames, folds, added defaults, drops, each reported)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clara_hydra.convert import legacy
from clara_hydra.convert.catalog import resolve_component
from clara_hydra.convert.model import Era
from clara_hydra.convert.sigils import decode
from clara_hydra.convert.signatures import load_index
from clara_hydra.errors import Level

ALL_RULES = legacy.MONAI_RULES + legacy.TF_RULES + legacy.CLARA_RULES

# Sample args for each rule, so that every fold runs at least once in the consistency check below.
SAMPLES: dict[str, dict[str, Any]] = {
    "AsDiscreted": {"keys": "pred", "to_onehot": True, "n_classes": 2, "threshold_values": True, "logit_thresh": 0.5},
    "AsDiscrete": {"to_onehot": True, "num_classes": 3, "threshold_values": False},
    "ScaleByResolution": {"fields": "label", "is_label": True, "target_resolution": [1, 1, 1]},
    "FastCropByPosNegRatio": {"fields": "image", "label_field": "label", "size": [8, 8, 8], "batch_size": 2},
    "FastPosNegRatioCropROI": {"image_field": "image", "label_field": "label", "size": [8, 8, 8]},
    "Dice": {"skip_background": True, "is_onehot_targets": False, "squared_pred": True},
    "Focal": {"skip_background": False},
    "SegResnet": {
        "blocks_down": "1,2",
        "blocks_up": "1",
        "use_group_norm": True,
        "use_group_normG": 4,
        "num_classes": 3,
    },
    "ReducePoly": {"poly_power": 0.9},
    "ReduceOnPlateau": {"plateau_count_trigger": 3, "reduction_rate": 0.5},
    "DecayOnStep": {"decay_ratio": 0.5, "decay_freq": 2},
    "WeightedMulticlassClassificationLoss": {"class_weights": [1.0, 2.0]},
}


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.old)
def test_rule_targets_and_args_exist_in_the_installed_api(rule: legacy.Rule) -> None:
    assert rule.new is not None
    sig = load_index().lookup(rule.new)
    assert sig is not None, f"{rule.old}: target {rule.new} is not in the signature index"
    out = legacy.apply_rule(rule, SAMPLES.get(rule.old, {}), "x").args
    produced = set(rule.add) | set(out) | {d for d in rule.renames.values()}
    unknown = {a for a in produced if a not in sig.names and a not in rule.drop}
    assert sig.accepts_var_kwargs or not unknown, f"{rule.old} -> {rule.new} writes unknown args {unknown}"
    assert rule.why


@pytest.mark.parametrize("rule", legacy.MONAI_RULES, ids=lambda r: r.old)
def test_monai_rules_rename_only_removed_names(rule: legacy.Rule) -> None:
    # A current name is rewritten only by a slot-bound rule (Accuracy) or a fold on the class itself (AsDiscreted).
    assert rule.new is not None
    if rule.slots is None and legacy.short(rule.new) != rule.old:
        assert rule.old not in load_index().names, f"{rule.old} still exists in the installed MONAI"


def test_generic_arg_renames_point_at_real_parameters() -> None:
    everywhere = set().union(*(s.names for s in load_index().objects.values()))
    for old, (new, why) in legacy.ARG_RENAMES.items():
        assert new in everywhere and old != new and why


def test_tables_do_not_overlap() -> None:
    assert not set(legacy.TF_BY_NAME) & set(legacy.TF_NO_COUNTERPART)
    assert len(legacy.TF_BY_NAME) == len(legacy.TF_RULES)
    assert len(legacy.MONAI_BY_NAME) == len(legacy.MONAI_RULES) + len(legacy.CLARA_RULES)
    # Clara's own classes are no MONAI names; each is reachable by the dotted path Clara configs give.
    assert not {r.old for r in legacy.CLARA_RULES} & set(load_index().names)
    for path, rule in legacy.CLARA_PATHS.items():
        assert path.endswith("." + rule.old) and legacy.clara_path_rule("medl.apps." + path) is rule


# (rule, args) -> (args, arg_map, value_rewritten, diagnostic rules)
CASES: list[tuple[str, str, dict[str, Any], dict[str, Any], dict[str, str], set[str], list[str]]] = [
    (
        "monai",
        "AddChanneld",
        {"keys": ["image", "label"]},
        {"keys": ["image", "label"], "channel_dim": "no_channel"},
        {"keys": "keys"},
        set(),
        ["rewrite"],
    ),
    (
        "monai",
        "AsChannelFirstd",
        {"keys": "image", "channel_dim": 2},
        {"keys": "image", "channel_dim": 2},
        {"keys": "keys", "channel_dim": "channel_dim"},
        set(),
        ["rewrite"],
    ),
    ("monai", "NovoGrad", {"lr": 0.1}, {"lr": 0.1}, {"lr": "lr"}, set(), ["rewrite"]),
    (
        "monai",
        "AsDiscreted",
        {"keys": ["pred", "label"], "to_onehot": [True, True], "n_classes": 2},
        {"keys": ["pred", "label"], "to_onehot": [2, 2]},
        {"keys": "keys", "to_onehot": "to_onehot"},
        {"to_onehot", "n_classes"},
        ["rewrite"],
    ),
    (
        "monai",
        "AsDiscreted",
        {"keys": "pred", "to_onehot": 2, "n_classes": 2},
        {"keys": "pred", "to_onehot": 2},
        {"keys": "keys", "to_onehot": "to_onehot"},
        {"to_onehot", "n_classes"},
        ["rewrite"],
    ),
    (
        "monai",
        "AsDiscrete",
        {"threshold_values": [True, False], "logit_thresh": 0.3},
        {"threshold": [0.3, None]},
        {},
        {"threshold_values", "logit_thresh"},
        ["rewrite"],
    ),
    ("monai", "AsDiscreted", {"keys": "pred", "argmax": True}, {"keys": "pred", "argmax": True}, None, set(), []),
    (
        "monai",
        "Accuracy",
        {"output_transform": "#f", "is_multilabel": False},
        {"output_transform": "#f", "metric_name": "accuracy"},
        {"output_transform": "output_transform"},
        set(),
        ["rewrite", "dropped-argument"],
    ),
    (
        "tf",
        "RandomAxisFlip",
        {"fields": ["image", "label"], "probability": 0.2},
        {"keys": ["image", "label"], "prob": 0.2},
        {"fields": "keys", "probability": "prob"},
        set(),
        ["rewrite"],
    ),
    (
        "tf",
        "CropFixedSizeRandomCenter",
        {"fields": ["image"], "size": [64, 64, 64]},
        {"keys": ["image"], "roi_size": [64, 64, 64], "random_size": False},
        {"fields": "keys", "size": "roi_size"},
        set(),
        ["rewrite"],
    ),
    (
        "tf",
        "ScaleByResolution",
        {"fields": ["image"], "target_resolution": [1.0, 1.0, 1.0]},
        {"keys": ["image"], "pixdim": [1.0, 1.0, 1.0]},
        {"fields": "keys", "target_resolution": "pixdim"},
        set(),
        ["rewrite"],
    ),
    (
        "tf",
        "ScaleByResolution",
        {"fields": ["label"], "target_resolution": [1.0, 1.0, 1.0], "is_label": True},
        {"mode": "nearest", "keys": ["label"], "pixdim": [1.0, 1.0, 1.0]},
        {"fields": "keys", "target_resolution": "pixdim", "is_label": "mode"},
        {"is_label"},
        ["rewrite"],
    ),
    (
        "tf",
        "FastCropByPosNegRatio",
        {"fields": "image", "label_field": "label", "size": [96] * 3, "pos": 1, "neg": 1, "batch_size": 3},
        {
            "keys": ["image", "label"],
            "label_key": "label",
            "spatial_size": [96] * 3,
            "pos": 1,
            "neg": 1,
            "num_samples": 3,
        },
        {
            "fields": "keys",
            "label_field": "label_key",
            "size": "spatial_size",
            "pos": "pos",
            "neg": "neg",
            "batch_size": "num_samples",
        },
        {"fields", "label_field"},
        ["rewrite"],
    ),
    (
        "tf",
        "Dice",
        {"skip_background": True, "is_onehot_targets": False, "squared_pred": True},
        {"include_background": False, "to_onehot_y": True, "squared_pred": True},
        {"skip_background": "include_background", "is_onehot_targets": "to_onehot_y", "squared_pred": "squared_pred"},
        {"skip_background", "is_onehot_targets"},
        ["rewrite", "legacy-caveat"],
    ),
    (
        "tf",
        "SegResnet",
        {"init_filters": 8, "blocks_down": "1,2,2,4", "final_activation": "softmax", "num_classes": 3},
        {"blocks_down": [1, 2, 2, 4], "init_filters": 8, "out_channels": 3},
        {"init_filters": "init_filters", "blocks_down": "blocks_down", "num_classes": "out_channels"},
        {"blocks_down"},
        ["rewrite", "dropped-argument"],
    ),
    (
        "tf",
        "SegResnet",
        {"use_group_norm": False},
        {"norm": "BATCH"},
        {"use_group_norm": "norm"},
        {"use_group_norm"},
        ["rewrite"],
    ),
    (
        "tf",
        "ReducePoly",
        {"poly_power": 0.9},
        {"power": 0.9, "total_iters": "{epochs}"},
        {"poly_power": "power"},
        set(),
        ["rewrite", "legacy-caveat"],
    ),
    # Already today's spelling, or a placeholder with nothing to fold: untouched, not reported.
    ("monai", "AsDiscreted", {"keys": "pred", "to_onehot": 2}, {"keys": "pred", "to_onehot": 2}, None, set(), []),
    (
        "monai",
        "AsDiscreted",
        {"keys": "pred", "to_onehot": "{N}"},
        {"keys": "pred", "to_onehot": "{N}"},
        None,
        set(),
        [],
    ),
    # A fold never computes with a placeholder: a located error (the conversion fails) instead of a guess or a drop.
    (
        "tf",
        "Dice",
        {"skip_background": "{SKIP}"},
        {},
        {},
        {"skip_background"},
        ["rewrite", "unfoldable-legacy-value", "legacy-caveat"],
    ),
    (
        "monai",
        "AsDiscreted",
        {"keys": "pred", "to_onehot": True},
        {"keys": "pred"},
        {"keys": "keys"},
        {"to_onehot"},
        ["unfoldable-legacy-value"],
    ),
]


@pytest.mark.parametrize(("table", "old", "args", "out", "arg_map", "rewritten", "rules"), CASES)
def test_apply_rule(
    table: str,
    old: str,
    args: dict[str, Any],
    out: dict[str, Any],
    arg_map: dict[str, str] | None,
    rewritten: set[str],
    rules: list[str],
) -> None:
    rule = (legacy.MONAI_BY_NAME if table == "monai" else legacy.TF_BY_NAME)[old]
    args, out = decode(args, Era.V41), decode(out, Era.V41)  # the rules read what the parser decoded
    result = legacy.apply_rule(rule, args, "train.x")
    assert result.args == out
    assert result.arg_map == (arg_map if arg_map is not None else {a: a for a in args})
    assert result.value_rewritten == rewritten
    assert [d.rule for d in result.diagnostics] == rules
    for d in result.diagnostics:
        expected = {"rewrite": Level.INFO, "unfoldable-legacy-value": Level.ERROR}.get(d.rule, Level.WARNING)
        assert d.level is expected
        assert d.json_path.startswith("train.x")


def test_rewrite_message_names_old_new_and_why() -> None:
    (info,) = legacy.apply_rule(legacy.MONAI_BY_NAME["AddChanneld"], {"keys": "image"}, "p").diagnostics
    assert info.message == (
        "AddChanneld -> monai.transforms.EnsureChannelFirstd: removed in MONAI 1.3; added channel_dim='no_channel'"
    )


def test_dropped_argument_lists_the_value_and_the_reason() -> None:
    rule = legacy.TF_BY_NAME["SegResnet"]
    diags = legacy.apply_rule(rule, {"final_activation": "sigmoid"}, "train.model").diagnostics
    (drop,) = [d for d in diags if d.rule == "dropped-argument"]
    assert drop.json_path == "train.model.args.final_activation"
    assert "'sigmoid'" in drop.message and "logits" in drop.message


@pytest.mark.parametrize(
    ("value", "concrete"),
    [
        (1, True),
        ("image", True),
        ([1, "a"], True),
        ("{VAR}", False),
        ("@model", False),
        ("#expr", False),
        ({"name": "X"}, False),
        (["{A}", 1], False),
    ],
)
def test_is_concrete(value: Any, concrete: bool) -> None:
    assert legacy.is_concrete(decode(value, Era.V41)) is concrete


# Any JSON value in any argument a rule reads: a rewrite is reported or refused with a warning, never a crash.
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.old)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_rules_never_crash_on_any_json_value(rule: legacy.Rule, data: st.DataObject) -> None:
    read = sorted({a for f in rule.folds for a in f.reads} | set(rule.renames) | set(rule.drop) | {"keys"})
    args = data.draw(st.dictionaries(st.sampled_from(read), _JSON, max_size=len(read)))
    res = resolve_component(rule.old, None, args, json_path="train.x", slot="handlers", era="3.x")
    assert all(d.json_path.startswith("train.x") for d in res.diagnostics)
