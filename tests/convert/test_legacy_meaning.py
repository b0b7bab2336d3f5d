"""Every legacy rewrite means the same for a literal, a ``{VAR}``, an ``apply``-ed name and a searched value (issue 16,
item 1), or it is a located error saying what could not be carried over; it never drops.

The known case first, in all four forms: Clara 4.0's ``AsDiscreted(to_onehot=true, n_classes=N)`` is MONAI 1.x's
``AsDiscreted(to_onehot=N)``; converted, composed with Hydra at a point of the search space, built, and compared with
the rule applied by hand. Then a hypothesis property over every rule of the tables: one argument at a time is given
as a variable, an applied name or a searched value; the tree composed at a point (OmegaConf, as Hydra resolves it)
gives the component exactly the arguments of the literal config at that value, or the conversion fails with a
located ``unfoldable-legacy-value`` (or ``search-on-rewritten-arg``) error at that component.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf

from clara_hydra.convert import Document, convert_documents, legacy, write_tree
from clara_hydra.convert.model import Era
from clara_hydra.convert.sigils import decode_text
from clara_hydra.errors import ConfigError, Level

NAME = "config_train.json"
REFUSALS = {"unfoldable-legacy-value", "search-on-rewritten-arg"}

# Literal args for every rule of the tables (each convert on their own; every fold runs).
SAMPLES: dict[str, dict[str, Any]] = {
    "AddChanneld": {"keys": ["image", "label"]},
    "AddChannel": {},
    "AsChannelFirstd": {"keys": "image"},
    "AsChannelFirst": {"channel_dim": -1},
    "SplitChanneld": {"keys": "pred", "channel_dim": 0},
    "SplitChannel": {"channel_dim": 0},
    "LoadNiftid": {"keys": ["image", "label"]},
    "LoadNifti": {"image_only": True},
    "LoadPNGd": {"keys": "image"},
    "LoadPNG": {"image_only": True},
    "NiftiDataset": {"image_files": ["a.nii"]},
    "NovoGrad": {"params": [], "lr": 0.01},
    "AsDiscreted": {"keys": ["pred", "label"], "argmax": [True, False], "to_onehot": True, "n_classes": 2},
    "AsDiscrete": {"to_onehot": True, "num_classes": 3, "threshold_values": True, "logit_thresh": 0.4},
    "SegmentationSaver": {"output_dir": "out", "output_postfix": "seg"},
    "TransformInverter": {"transform": [], "output_keys": "pred", "batch_keys": "image"},
    "Accuracy": {"is_multilabel": False},
    "ConvertToChannelsFirst": {"fields": ["image", "label"]},
    "ScaleIntensityRange": {"fields": "image", "a_min": -57, "a_max": 164, "b_min": 0.0, "b_max": 1.0},
    "ScaleByResolution": {"fields": "label", "is_label": True, "target_resolution": [1.0, 1.0, 1.0]},
    "CropFixedSizeRandomCenter": {"fields": ["image", "label"], "size": [8, 8, 8]},
    "FastCropByPosNegRatio": {"fields": "image", "label_field": "label", "size": [8, 8, 8], "batch_size": 2},
    "FastPosNegRatioCropROI": {"image_field": "image", "label_field": "label", "size": [8, 8, 8]},
    "RandomAxisFlip": {"fields": ["image", "label"], "probability": 0.3},
    "RandomSpatialFlip": {"fields": "image", "probability": 0.2},
    "AddGaussianNoise": {"fields": "image", "probability": 0.3, "variance": 0.04},
    "Dice": {"skip_background": True, "is_onehot_targets": False, "squared_pred": True},
    "Focal": {"skip_background": False},
    "SegResnet": {"blocks_down": "1,2", "blocks_up": "1", "use_group_norm": True, "use_group_normG": 4},
    "ReducePoly": {"poly_power": 0.9},
    "DecayOnStep": {"decay_ratio": 0.5, "decay_freq": 2},
    "ReduceCosine": {},
    "ReduceOnPlateau": {"plateau_count_trigger": 3, "reduction_rate": 0.5},
    "MulticlassClassificationLoss": {"reduction": "mean"},
    "BinaryClassificationLoss": {"reduction": "sum"},
    "WeightedMulticlassClassificationLoss": {"class_weights": [1.0, 2.0]},
    "ClickInteraction": {"transforms": [], "max_interactions": 3, "train": True},
}
# A name in both tables (MONAI's and Clara 3.x's LoadNifti): the 3.x one is read as such by its 3.x arguments.
TF_SAMPLES: dict[str, dict[str, Any]] = {"LoadNifti": {"fields": ["image", "label"]}}


def sample(rule: legacy.Rule) -> dict[str, Any]:
    if rule in legacy.TF_RULES and rule.old in TF_SAMPLES:
        return TF_SAMPLES[rule.old]
    return SAMPLES[rule.old]


RULES = [r for r in legacy.MONAI_RULES + legacy.TF_RULES + legacy.CLARA_RULES if sample(r)]


def slot_of(rule: legacy.Rule) -> tuple[str, bool]:
    """A slot the rule's component sits in, and whether it is a list slot."""
    if rule.slots is not None:
        slot = sorted(rule.slots)[0]
        return slot, slot in ("handlers", "additional_metrics", "metrics")
    target = rule.new or ""
    for prefix, slot, is_list in (
        ("monai.transforms.", "pre_transforms", True),
        ("monai.losses.", "loss", False),
        ("torch.nn.", "loss", False),
        ("clara_hydra.components.WeightedCrossEntropyLoss", "loss", False),
        ("monai.networks.", "model", False),
        ("monai.optimizers.", "optimizer", False),
        ("monai.data.", "dataset", False),
        ("monai.apps.deepgrow.interaction.", "iteration_update", False),  # a slot of its own: any name works
    ):
        if target.startswith(prefix):
            return slot, is_list
    return "lr_scheduler", False


def _doc(rule: legacy.Rule, args: dict[str, Any], extra: dict[str, Any] | None = None, **first: Any) -> dict[str, Any]:
    slot, is_list = slot_of(rule)
    comp = {"name": rule.old, "args": args, **(extra or {})}
    return {"epochs": 1, **first, "train": {slot: [comp] if is_list else comp}}


def _convert(doc: dict[str, Any]) -> Any:
    return convert_documents(Document(NAME, json.dumps(doc).encode()))


def _node(conv: Any, rule: legacy.Rule, point: dict[str, Any]) -> dict[str, Any]:
    """The component's node, composed at ``point`` (top-level key -> value) and resolved."""
    cfg = OmegaConf.create(conv.files["config.yaml"])
    assert isinstance(cfg, DictConfig)
    for key, value in point.items():
        OmegaConf.update(cfg, key, value, force_add=True)
    slot, is_list = slot_of(rule)
    node = cfg.train[slot]
    if is_list:
        (member,) = [v for k, v in node.items() if not str(k).startswith("_")]
        node = member
    out = OmegaConf.to_container(node, resolve=True)
    assert isinstance(out, dict)
    return out


def _new_keys(conv: Any, literal: Any) -> list[str]:
    a = OmegaConf.create(conv.files["config.yaml"])
    b = OmegaConf.create(literal.files["config.yaml"])
    return [k for k in a if k not in b and k not in ("defaults", "hydra")]


def _other(value: Any) -> Any:
    """Another literal of the same kind (the second point of a search)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return round(value / 2, 6)
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list) and value:
        return [_other(value[0]), *value[1:]]
    return value


def _refused(exc: ConfigError, rule: legacy.Rule) -> bool:
    slot, is_list = slot_of(rule)
    where = f"train.{slot}" + ("[0]" if is_list else "")
    errors = [d for d in exc.diagnostics if d.level is Level.ERROR]
    return bool(errors) and all(d.rule in REFUSALS and d.json_path.startswith(where) for d in errors)


def _forms(rule: legacy.Rule, arg: str, value: Any) -> dict[str, tuple[dict[str, Any], str | None]]:
    """form -> (document, the top-level key that holds the value; None: found after conversion)."""
    args = sample(rule)
    var = {**args, arg: "{pv}"}
    search = {"search": [{"domain": "net", "type": "enum", "args": [arg], "targets": [[value], [_other(value)]]}]}
    return {
        "var": (_doc(rule, var, pv=value), "pv"),
        "apply": (_doc(rule, dict(args), {"apply": {arg: "pv"}}, pv=value), "pv"),
        "search": (_doc(rule, dict(args), search), None),
    }


def _check_form(rule: legacy.Rule, arg: str, form: str, use_other: bool) -> None:
    args = sample(rule)
    value = args[arg]
    doc, key = _forms(rule, arg, value)[form]
    at = _other(value) if use_other else value
    literal_doc = _doc(rule, {**args, arg: at})
    try:
        literal = _convert(literal_doc)
    except ConfigError:
        return  # the other value is not a valid literal for this rule: nothing to compare
    try:
        conv = _convert(doc)
    except ConfigError as exc:
        assert _refused(exc, rule), [d.render() for d in exc.diagnostics]
        return
    if key is None:
        keys = _new_keys(conv, _convert(_doc(rule, dict(args))))
        assert len(keys) <= 1, keys
        key = keys[0] if keys else None
    point = {key: at} if key else {}
    if key is None and use_other:
        return  # the searched value has no effect on this component (reported as such): nothing to move
    expected = _node(literal, rule, {})
    assert _node(conv, rule, point) == expected, (form, arg, at)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.old)
def test_every_sample_converts_as_a_literal(rule: legacy.Rule) -> None:
    conv = _convert(_doc(rule, sample(rule)))
    node = _node(conv, rule, {})
    assert node["_target_"] == rule.new or node["_target_"].endswith("." + (rule.new or "").rsplit(".", 1)[-1])


# Every rule x every argument it reads x three forms x two points: a rewrite means the same, or refuses loudly.
_CASES = [(r, a) for r in RULES for a in sample(r)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=st.sampled_from(_CASES),
    form=st.sampled_from(["var", "apply", "search"]),
    use_other=st.booleans(),
)
def test_every_rule_means_the_same_for_a_variable_an_applied_name_and_a_searched_value(
    case: tuple[legacy.Rule, str], form: str, use_other: bool
) -> None:
    rule, arg = case
    _check_form(rule, arg, form, use_other)


@pytest.mark.parametrize("rule", [r for r in RULES if r.folds], ids=lambda r: r.old)
@pytest.mark.parametrize("form", ["var", "apply", "search"])
def test_every_fold_argument_in_every_form(rule: legacy.Rule, form: str) -> None:
    # The property samples; the folds (the rules that compute with values) are checked exhaustively too.
    for arg in sorted({a for f in rule.folds for a in f.reads} & set(sample(rule))):
        _check_form(rule, arg, form, use_other=True)


# ---------------------------------------------------------------------------------------------- the known case


def _onehot_config(form: str) -> dict[str, Any]:
    """A 4.1 training config whose AsDiscreted has ``to_onehot: true`` and ``n_classes`` in the given form."""
    post: dict[str, Any] = {
        "name": "AsDiscreted",
        "args": {"keys": ["pred", "label"], "argmax": [True, False], "to_onehot": True, "n_classes": 2},
    }
    doc: dict[str, Any] = {
        "epochs": 1,
        "out_classes": 2,
        "train": {
            "model": {
                "name": "UNet",
                "args": {
                    "spatial_dims": 3,
                    "in_channels": 1,
                    "out_channels": 2,
                    "channels": [4, 8],
                    "strides": [2],
                },
            },
            "post_transforms": [post],
        },
    }
    if form == "var":
        post["args"]["n_classes"] = "{out_classes}"
    elif form == "alias":  # the model's searched out_channels, named `classes` and applied to n_classes
        doc["train"]["model"]["search"] = [
            {"domain": "net", "type": "enum", "args": ["out_channels#classes"], "targets": [[2], [3]]}
        ]
        post["apply"] = {"n_classes": "classes"}
    elif form == "search":
        post["search"] = [{"domain": "net", "type": "enum", "args": ["n_classes"], "targets": [[2], [3]]}]
    return doc


ONEHOT_POINTS = {"literal": {}, "var": {"out_classes": 3}, "alias": {"classes": 3}, "search": {"n_classes": 3}}


@pytest.mark.parametrize("form", list(ONEHOT_POINTS))
def test_onehot_with_n_classes_in_every_form_builds_the_same_transform(form: str, tmp_path: Path) -> None:
    from monai.transforms import AsDiscreted

    from clara_hydra.runtime.build import Builder

    conv = _convert(_onehot_config(form))
    assert not [d for d in conv.diagnostics if d.rule in {"unfoldable-legacy-value", "dropped-argument"}]
    write_tree(conv.files, tmp_path)
    point = ONEHOT_POINTS[form]
    with initialize_config_dir(config_dir=str(tmp_path), version_base=None):
        cfg = compose("config", overrides=[f"{k}={v}" for k, v in point.items()])
    built = Builder(cfg).build("train.post_transforms")
    (got,) = [t for t in built.transforms if isinstance(t, AsDiscreted)]
    n = next(iter(point.values()), 2)
    # The rule applied by hand: MONAI 0.8 folded `to_onehot: true` + `n_classes: n` into `to_onehot: n`.
    by_hand = legacy.apply_rule(
        legacy.MONAI_BY_NAME["AsDiscreted"],
        {"keys": ["pred", "label"], "argmax": [True, False], "to_onehot": True, "n_classes": n},
        "x",
    ).args
    assert by_hand["to_onehot"] == n
    want = AsDiscreted(**by_hand)
    assert list(got.to_onehot) == list(want.to_onehot) == [n, n]
    assert list(got.argmax) == list(want.argmax) and list(got.keys) == list(want.keys)
    node = cfg.train.post_transforms.as_discreted
    assert "n_classes" not in node and OmegaConf.to_container(node, resolve=True)["to_onehot"] == n


def test_onehot_refuses_what_it_cannot_carry_over() -> None:
    # A searched flag would have to be computed with; a per-key flag list would hold a variable that may be a list.
    searched_flag = _onehot_config("literal")
    post = searched_flag["train"]["post_transforms"][0]
    post["search"] = [{"domain": "net", "type": "enum", "args": ["to_onehot"], "targets": [[True], [False]]}]
    per_key = _onehot_config("var")
    per_key["train"]["post_transforms"][0]["args"]["to_onehot"] = [True, False]
    for doc in (searched_flag, per_key):
        with pytest.raises(ConfigError) as info:
            _convert(copy.deepcopy(doc))
        (refusal,) = [d for d in info.value.diagnostics if d.rule == "unfoldable-legacy-value"]
        assert refusal.json_path.startswith("train.post_transforms[0].args.")
        assert "cannot be carried over" in refusal.message and refusal.fix
        # reported once: the search on the refused value adds nothing of its own
        about = [d for d in info.value.diagnostics if d.json_path.startswith("train.post_transforms[0]")]
        assert [d.rule for d in about if d.level is not Level.INFO] == ["unfoldable-legacy-value"], about


@pytest.mark.parametrize("form", ["alias", "search"])
def test_a_searched_or_applied_count_not_written_in_args_moves_too(form: str) -> None:
    doc = _onehot_config(form)
    del doc["train"]["post_transforms"][0]["args"]["n_classes"]
    conv = _convert(doc)
    cfg = OmegaConf.create(conv.files["config.yaml"])
    key = "classes" if form == "alias" else "n_classes"
    OmegaConf.update(cfg, key, 3)
    node = OmegaConf.to_container(cfg.train.post_transforms.as_discreted, resolve=True)
    assert node["to_onehot"] == 3 and "n_classes" not in node


def test_per_key_flags_all_on_move_a_variable_whole() -> None:
    # `to_onehot: [true, true]` with `n_classes: "{N}"`: MONAI repeated n_classes per key as it repeats to_onehot now.
    rule = legacy.MONAI_BY_NAME["AsDiscreted"]
    n, t = decode_text("{N}", Era.V41), decode_text("{T}", Era.V41)
    args = {"keys": ["pred", "label"], "to_onehot": [True, True], "n_classes": n}
    res = legacy.apply_rule(rule, args, "x", ())
    assert res.args["to_onehot"] == n and res.arg_map["n_classes"] == "to_onehot"
    searched = legacy.apply_rule(rule, {**args, "n_classes": 2}, "x", ("n_classes",))
    assert searched.args["to_onehot"] == 2 and searched.arg_map["n_classes"] == "to_onehot"
    thresh = {"keys": ["a", "b"], "threshold_values": [True, True], "logit_thresh": t}
    assert legacy.apply_rule(rule, thresh, "x").args["threshold"] == t


def test_no_advice_to_set_a_boolean_to_onehot() -> None:
    # MONAI 1.x rejects `to_onehot: false`; None means what False meant, so no changed-default note advises it.
    doc = _onehot_config("literal")
    doc["train"]["post_transforms"][0]["args"] = {"keys": "pred", "argmax": True}
    conv = _convert(doc)
    assert not [d for d in conv.diagnostics if "to_onehot" in d.message]
    from clara_hydra.convert.legacy.pick import default_notes

    assert not default_notes("monai.transforms.AsDiscreted", {"keys": "pred"}, "4.0", "x")
