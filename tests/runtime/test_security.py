"""Nothing runs that the user did not allow (issue 9): one row per way in, each with a sentinel file.

Every code-execution row hands the would-be payload ``touch <sentinel>`` to the place it could run, expects a
refusal with its message, and then checks that the sentinel file never appeared. The end-to-end rows (the
same payloads through ``python train.py``) are in ``test_error_contract.py``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from clara_hydra.errors import RefusedTargetError
from clara_hydra.runtime.build import Builder
from clara_hydra.runtime.diskcache import DiskCache, decode, encode
from clara_hydra.sweeper.optuna_objects import check_targets, instantiate_dropping_nulls, user_allowed
from clara_hydra.targets import Permissions, home_of


@pytest.fixture()
def sentinel(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "SENTINEL"
    yield path
    assert not path.exists(), "the payload ran"


def cfg_of(text: str) -> DictConfig:
    cfg = OmegaConf.create(text)
    assert isinstance(cfg, DictConfig)
    return cfg


# (id, _allow_ entries, target, message fragment). Each target gets `_args_: [touch <sentinel>]`.
REFUSED = [
    ("re-export through torch", [], "torch.os.system", "it is os.system (posix.system)"),
    ("os itself", [], "os.system", "outside the allowed packages"),
    ("MONAI's instantiate", [], "monai.utils.instantiate", "builds other targets by name"),
    ("MONAI's instantiate, full path", [], "monai.utils.module.instantiate", "builds other targets by name"),
    ("MONAI's locate", [], "monai.utils.module.locate", "builds other targets by name"),
    ("MONAI's optional_import", [], "monai.utils.optional_import", "imports any module by name"),
    ("MONAI's run_cmd", [], "monai.utils.misc.run_cmd", "runs commands"),
    ("MONAI bundle parser", [], "monai.bundle.ConfigParser", "evaluates '$' expressions"),
    ("torch.load (full unpickling)", [], "torch.load", "unpickles data"),
    ("torch.hub", [], "torch.hub.load", "downloads and runs code"),
    ("torch.ops.load_library", [], "torch.ops.load_library", "loads or compiles code"),
    ("C++ extension", [], "torch.utils.cpp_extension.load_inline", "loads or compiles code"),
    ("numpy.load through MONAI", [], "monai.transforms.utils.np.load", "it is numpy.load"),
    ("eval", [], "builtins.eval", "outside the allowed packages"),
    ("eval re-exported by torch", [], "torch.__builtins__", "a dunder name is never a target"),
    ("a module as target", [], "monai.utils", "it is a module"),
    ("Hydra's instantiate", ["hydra"], "hydra.utils.instantiate", "builds other targets by name"),
    ("clara_hydra's own builder", [], "clara_hydra.runtime.build.build_all", "builds other targets by name"),
    ("an allowed package's re-export", ["logging"], "logging.os.system", "it is os.system"),
    ("a wide entry does not lift a denied one", ["monai"], "monai.utils.instantiate", "builds other targets"),
    ("pickle", ["pickle"], "pickle.loads", None),  # named by the user: allowed (not called here)
]


@pytest.mark.parametrize(("allow", "target", "fragment"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused_targets_never_run(allow: list[str], target: str, fragment: str | None, sentinel: Path) -> None:
    cfg = OmegaConf.create({"_allow_": allow, "train": {"x": {"_target_": target, "_args_": [f"touch {sentinel}"]}}})
    assert isinstance(cfg, DictConfig)
    if fragment is None:
        assert Builder(cfg).locate(target, "train.x") is not None
        return
    with pytest.raises(RefusedTargetError) as err:
        Builder(cfg).build("train.x")
    message = str(err.value)
    assert fragment in message and "train.x" in message and f"'{target}'" in message
    assert "\n    fix: " in message


def test_the_user_can_allow_a_denied_callable_by_naming_it() -> None:
    import os as os_module

    assert Permissions.of(["os.system"]).locate("torch.os.system", "k") is os_module.system
    assert Permissions.of(["os"]).locate("os.system", "k") is os_module.system
    assert Permissions.of(["monai.utils.instantiate"]).locate("monai.utils.instantiate", "k") is not None
    with pytest.raises(RefusedTargetError, match=r"fix: only if you trust it, add `_allow_: \[os.system\]`"):
        Permissions().locate("torch.os.system", "k")


def test_allowed_targets_are_judged_by_their_defining_module() -> None:
    assert home_of(torch.nn.Linear) == "torch.nn.modules.linear.Linear"
    assert home_of(torch.float32) == "torch.dtype"
    p = Permissions()
    for target in ("torch.nn.Linear", "torch.float32", "monai.handlers.from_engine", "torch.jit.load", "torch.add"):
        p.locate(target, "k")


def test_a_name_outside_the_allowed_packages_is_not_even_imported(tmp_path: Path) -> None:
    with pytest.raises(RefusedTargetError, match="outside the allowed packages"):
        Permissions().locate("clara_hydra_evil_module.x", "train.model")
    assert "clara_hydra_evil_module" not in __import__("sys").modules


def test_a_checkpoints_train_conf_grants_nothing(tmp_path: Path, sentinel: Path) -> None:
    # A crafted checkpoint: its train_conf allows os and builds os.system as the network.
    train_conf = {"_allow_": ["os"], "train": {"model": {"_target_": "os.system", "_args_": [f"touch {sentinel}"]}}}
    torch.save({"model": {}, "train_conf": train_conf}, tmp_path / "model.pt")
    cfg = cfg_of(
        f"validate: {{model: {{_target_: clara_hydra.expressions.model_from_checkpoint, "
        f"ckpt_path: '{tmp_path / 'model.pt'}'}}}}"
    )
    with pytest.raises(RefusedTargetError, match=r"train\.model: refusing to build _target_ 'os\.system'"):
        Builder(cfg).build("validate.model")


def test_a_nested_builder_keeps_the_users_permissions_only() -> None:
    outer = Builder(cfg_of("_allow_: [collections]\ntrain: {d: 1}"))
    inner_cfg = cfg_of("_allow_: [os]\ntrain: {d: {_target_: collections.OrderedDict}}")
    assert Builder(inner_cfg, trusted=False).permissions.user == ()
    assert outer.permissions.user == ("collections",)


SAMPLERS = [
    ("sampler os.abort", {"_target_": "os.abort"}, "outside the allowed packages ['optuna']"),
    ("re-export through optuna", {"_target_": "optuna._warnings.os.system"}, "it is os.system"),
    ("nested pruner", {"_target_": "optuna.pruners.PatientPruner", "wrapped_pruner": {"_target_": "os.abort"}}, "os"),
]


@pytest.mark.parametrize(("node", "fragment"), [r[1:] for r in SAMPLERS], ids=[r[0] for r in SAMPLERS])
def test_sampler_and_pruner_targets_are_optunas_only(node: dict[str, object], fragment: str) -> None:
    with pytest.raises(RefusedTargetError, match="refusing to build _target_") as err:
        instantiate_dropping_nulls(node, "hydra.sweeper.sampler")
    assert fragment in str(err.value)


def test_sampler_targets_the_user_allows() -> None:
    check_targets({"_target_": "optuna.samplers.TPESampler"}, "hydra.sweeper.sampler")
    with pytest.raises(RefusedTargetError):
        check_targets({"_target_": "collections.OrderedDict"}, "hydra.sweeper.sampler")
    with user_allowed(["collections"]):
        check_targets({"_target_": "collections.OrderedDict"}, "hydra.sweeper.sampler")


class _Payload:
    """What a crafted pickle carries: unpickling it calls os.system."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


@pytest.mark.parametrize("payload", ["bare", "in_format_2_wrapper"])
def test_a_crafted_disk_cache_file_never_runs(
    payload: str, tmp_path: Path, sentinel: Path, caplog: pytest.LogCaptureFixture
) -> None:
    disk = DiskCache(tmp_path)
    evil = _Payload(f"touch {sentinel}")
    torch.save(evil if payload == "bare" else {"format": 2, "item": evil}, disk.item_path(0))
    with caplog.at_level(logging.WARNING):
        assert disk.load(0) is None
    assert "disk cache: not using" in caplog.text and "recomputing it" in caplog.text


def test_an_encoded_enum_outside_monai_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RefusedTargetError):
        decode({"__clara_cache__": "enum", "cls": "signal.Signals", "value": 2})
    from monai.utils.enums import SpaceKeys

    assert decode(encode(SpaceKeys.RAS)) is SpaceKeys.RAS
