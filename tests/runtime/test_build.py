"""Unit tests of the builder on small hand-made trees (no data, no training)."""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pytest
from omegaconf import DictConfig, OmegaConf

from clara_hydra.errors import BuildError, RefusedTargetError
from clara_hydra.runtime.build import Builder, build_all, slot_paths


def cfg_of(text: str) -> DictConfig:
    cfg = OmegaConf.create(text)
    assert isinstance(cfg, DictConfig)
    return cfg


NET = """
train:
  model: {_target_: torch.nn.Linear, in_features: 2, out_features: 3}
  optimizer:
    _target_: torch.optim.SGD
    params: {_target_: clara_hydra.expressions.parameters_of, module: {_ref_: train.model}}
    lr: 0.1
  pair:
    - {_ref_: train.model}
    - {_ref_: train.model}
validate:
  net: {_ref_: train.model}
"""


def test_references_share_one_object() -> None:
    builder = Builder(cfg_of(NET))
    model = builder.build("train.model")
    pair = builder.build("train.pair")
    assert pair[0] is model and pair[1] is model
    assert builder.build("validate.net") is model
    params = builder.build("train.optimizer").param_groups[0]["params"]
    assert all(p is q for p, q in zip(params, model.parameters(), strict=True))


def test_build_all_builds_every_slot() -> None:
    built = build_all(cfg_of(NET))
    assert (
        set(built) == set(slot_paths(cfg_of(NET))) == {"train.model", "train.optimizer", "train.pair", "validate.net"}
    )
    assert built["validate.net"] is built["train.model"]


def test_reference_cycle_is_reported() -> None:
    cfg = cfg_of("train: {a: {_target_: builtins.list, _args_: [{_ref_: train.b}]}, b: {x: {_ref_: train.a}}}")
    with pytest.raises(BuildError, match=r"reference cycle: train\.a -> train\.b -> train\.a"):
        Builder(cfg, allow=["builtins"]).build("train.a")


def test_unknown_reference_suggests() -> None:
    with pytest.raises(BuildError, match=r"'train\.modle'.*did you mean 'train\.model'"):
        Builder(cfg_of("train: {model: 1, x: {_ref_: train.modle}}")).build("train.x")


def test_containers_markers_and_partial() -> None:
    cfg = cfg_of(
        """
        flag: true
        train:
          pre_transforms:
            _compose_: true
            b: {_target_: monai.transforms.Identityd, keys: [image]}
            a: {_target_: monai.transforms.Identityd, keys: [label], _disabled_: "${flag}"}
            c: {_target_: monai.transforms.Identity}
            gone: null
          handlers:
            _list_: true
            first: {_target_: clara_hydra.expressions.discard_output, _partial_: true}
            other_rank: {_target_: builtins.print, _rank_: 1}
            second: {_target_: monai.handlers.from_engine, keys: [loss], first: true}
          metrics:
            val_dice: {_target_: monai.handlers.MeanDice}
            off: {_target_: monai.handlers.MeanDice, _disabled_: true}
          plain: {a: null, b: [1, null]}
        """
    )
    builder = Builder(cfg)
    compose = builder.build("train.pre_transforms")
    assert type(compose).__name__ == "Compose"
    assert [type(t).__name__ for t in compose.transforms] == ["Identityd", "Identity"]
    assert compose.transforms[0].keys == ("image",)
    handlers = builder.build("train.handlers")
    assert len(handlers) == 2 and isinstance(handlers[0], functools.partial)
    assert handlers[0]({"x": 1}) is None
    assert handlers[1]([{"loss": 3.0}]) == 3.0
    assert list(builder.build("train.metrics")) == ["val_dice"]
    assert builder.build("train.plain") == {"a": None, "b": [1, None]}  # nulls are values outside member mappings


@pytest.mark.parametrize(("disabled", "count"), [((True, True), 0), ((False, False), 2)])
def test_one_of_needs_exactly_one(disabled: tuple[bool, bool], count: int) -> None:
    cfg = cfg_of(
        f"""
        train:
          loss:
            _one_of_: true
            dice_loss: {{_target_: monai.losses.DiceLoss, _disabled_: {str(disabled[0]).lower()}}}
            focal_loss: {{_target_: monai.losses.FocalLoss, _disabled_: {str(disabled[1]).lower()}}}
        """
    )
    with pytest.raises(
        BuildError, match=rf"train\.loss: exactly one alternative must be enabled, found {count}"
    ) as err:
        Builder(cfg).build("train.loss")
    assert "['dice_loss', 'focal_loss']" in str(err.value)


def test_one_of_picks_the_enabled_member() -> None:
    cfg = cfg_of(
        """
        train:
          loss:
            _one_of_: true
            dice_loss: {_target_: monai.losses.DiceLoss, _disabled_: true}
            focal_loss: {_target_: monai.losses.FocalLoss}
        """
    )
    assert type(Builder(cfg).build("train.loss")).__name__ == "FocalLoss"


def test_refused_target_names_path_target_and_fix() -> None:
    cfg = cfg_of("train: {pre_transforms: {_compose_: true, evil: {_target_: os.system, _args_: [echo hi]}}}")
    with pytest.raises(RefusedTargetError) as err:
        Builder(cfg).build("train.pre_transforms")
    message = str(err.value)
    assert "train.pre_transforms.evil" in message and "'os.system'" in message
    assert "_allow_: [os]" in message and "'+_allow_=[os]'" in message
    assert "fix:" in message and "Traceback" not in message


def test_allow_lets_a_module_through() -> None:
    cfg = cfg_of("_allow_: [collections]\ntrain: {d: {_target_: collections.OrderedDict, a: 1}}")
    assert Builder(cfg).build("train.d") == OrderedDict(a=1)
    cfg = cfg_of("train: {d: {_target_: collections.OrderedDict, a: 1}}")
    assert Builder(cfg, allow=["collections"]).build("train.d") == {"a": 1}


def test_missing_required_value_is_named() -> None:
    cfg = cfg_of(
        "INPUT_CHANNELS: ???\n"
        "train: {model: {_target_: torch.nn.Linear, in_features: '${INPUT_CHANNELS}', out_features: 1}}"
    )
    with pytest.raises(BuildError, match=r"train\.model\.in_features: required value INPUT_CHANNELS is missing") as err:
        Builder(cfg).build("train.model")
    assert "python train.py INPUT_CHANNELS=<value>" in str(err.value)
    cfg = cfg_of("train: {model: {_target_: torch.nn.Linear, in_features: '???', out_features: 1}}")
    with pytest.raises(BuildError, match=r"train\.model\.in_features: required value"):
        Builder(cfg).build("train.model")


def test_bad_target_and_bad_args_name_the_path() -> None:
    with pytest.raises(
        BuildError, match=r"train\.model: cannot import _target_ 'monai.networks.nets.UNett'.*did you mean"
    ):
        Builder(cfg_of("train: {model: {_target_: monai.networks.nets.UNett}}")).build("train.model")
    with pytest.raises(BuildError, match=r"train\.model: torch\.nn\.Linear\(in_featurez\) failed: TypeError"):
        Builder(cfg_of("train: {model: {_target_: torch.nn.Linear, in_featurez: 1}}")).build("train.model")


def test_built_objects_hold_plain_containers(omegaconf_inside: Callable[[Any], list[str]]) -> None:
    cfg = cfg_of(
        """
        channels: [4, 8, 16]
        train:
          model: {_target_: monai.networks.nets.UNet, spatial_dims: 3, in_channels: 1, out_channels: 2,
                  channels: "${channels}", strides: [2, 2]}
          crop: {_target_: monai.transforms.RandSpatialCropd, keys: [image], roi_size: [8, 8, 8]}
          conf: {_config_: true}
        """
    )
    builder = Builder(cfg)
    model = builder.build("train.model")
    assert type(model.channels) is list and model.channels == [4, 8, 16]
    assert omegaconf_inside(builder.build("train.crop")) == []
    conf = builder.build("train.conf")
    assert type(conf) is dict and conf["train"]["model"]["channels"] == [4, 8, 16]
    assert omegaconf_inside(conf) == []


def test_a_failed_call_names_the_key_an_argument_comes_from() -> None:
    cfg = cfg_of(
        "learning_rate: -1\n"
        "train:\n"
        "  model: {_target_: torch.nn.Linear, in_features: 2, out_features: 2}\n"
        "  optimizer: {_target_: torch.optim.Adam, lr: '${learning_rate}',\n"
        "              params: {_target_: clara_hydra.expressions.parameters_of, module: {_ref_: train.model}}}\n"
    )
    with pytest.raises(BuildError, match=r"Invalid learning rate: -1; lr=-1 comes from learning_rate$"):
        Builder(cfg).build("train.optimizer")


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        (  # an item of _args_: the full key down to the list index, the required value named by its key
            "train: {m: {_target_: torch.nn.Linear, _args_: [2, '???']}}",
            "train.m",
            "train.m._args_[1]: required value train.m._args_[1] is missing (???); set it on the command line, "
            "e.g. `python train.py train.m._args_[1]=<value>`",
        ),
        ("train: {m: {_target_: torch.nn.Linear, _args_: 3}}", "train.m", "train.m: _args_ must be a list, got 3"),
        ("train: {m: {_target_: 3}}", "train.m", "train.m: _target_ must be a dotted import path, got 3"),
        (
            "train: {r: {_ref_: train.m, x: 1}, m: {_target_: torch.nn.ReLU}}",
            "train.r",
            "train.r: a {_ref_: ...} node takes no other keys, found ['x']",
        ),
        (  # a failure deep inside a collection: its own key, once, not its parents' in front of it
            "train: {t: {_list_: true, a: [{_target_: torch.nn.Linear, in_featurez: 1}]}}",
            "train.t",
            "train.t.a[0]: torch.nn.Linear(in_featurez) failed: TypeError",
        ),
        (
            "train: {m: {_target_: torch.nn.Linear, in_features: '${nope}', out_features: 1}}",
            "train.m",
            "train.m.in_features: cannot resolve its value: ",
        ),
        ("train: {l: [1, '???']}", "train.l", "train.l[1]: required value train.l[1] is missing (???)"),
        (  # a placement marker of a member, read by the parent's walk
            "train: {m: {_target_: torch.nn.ReLU, _disabled_: '${nope}'}}",
            "train",
            "train.m._disabled_: cannot resolve its value: ",
        ),
        ("_allow_: 3\ntrain: {}", None, "_allow_: expected a list of packages or names, got 3"),
        ("train: {}", "train.nope", "reference to 'train.nope', which is not in the config"),
    ],
)
def test_every_build_error_starts_with_its_full_key_once(text: str, path: str | None, message: str) -> None:
    """One wrapper (Hydra's _with_full_key) puts the config key in front of every error of the walk."""
    with pytest.raises(BuildError) as err:
        Builder(cfg_of(text)).build(path) if path else Builder(cfg_of(text))
    assert str(err.value).startswith(message)
    key = message.split(":", 1)[0]
    assert " " in key or str(err.value).count(f"{key}:") == 1, "the key is added once"


def test_the_key_wrapper_keeps_the_cause_of_a_failed_call() -> None:
    with pytest.raises(BuildError) as err:
        Builder(cfg_of("train: {m: {_target_: torch.nn.Linear, in_featurez: 1}}")).build("train.m")
    assert isinstance(err.value.__cause__, TypeError), "the constructor's error stays the cause (full error mode)"
    with pytest.raises(BuildError) as missing:
        Builder(cfg_of("train: {m: {_target_: torch.nn.Linear, in_features: '???'}}")).build("train.m")
    assert missing.value.__cause__ is None and missing.value.__suppress_context__, "OmegaConf's error is noise"
