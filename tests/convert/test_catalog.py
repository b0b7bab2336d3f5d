"""Class resolution: short names, slots, ambiguity, legacy rewrites, paths, argument checks, the signature index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clara_hydra.convert import catalog, signatures
from clara_hydra.convert.catalog import accepts_arg, known_short_names, preference, resolve_component
from clara_hydra.errors import Level

REPO = Path(__file__).resolve().parents[2]

# (name, slot, era, args) -> (target, args after rewrites, diagnostic rules in order)
CASES: list[tuple[str, str | None, str, dict[str, Any], str | None, dict[str, Any], list[str]]] = [
    # Plain 4.x components.
    ("UNet", "model", "4.1", {"spatial_dims": 3}, "monai.networks.nets.UNet", {"spatial_dims": 3}, []),
    ("Unet", "model", "4.1", {}, "monai.networks.nets.UNet", {}, []),  # alias of one class: no ambiguity
    ("DiceLoss", "loss", "4.1", {"to_onehot_y": True}, "monai.losses.DiceLoss", {"to_onehot_y": True}, []),
    ("Adam", "optimizer", "4.1", {"lr": "{learning_rate}"}, "torch.optim.Adam", {"lr": "{learning_rate}"}, []),
    ("StepLR", "lr_scheduler", "4.0", {"step_size": 5}, "torch.optim.lr_scheduler.StepLR", {"step_size": 5}, []),
    ("CacheDataset", "dataset", "4.1", {"cache_rate": 1.0}, "monai.data.CacheDataset", {"cache_rate": 1.0}, []),
    ("DataLoader", "dataloader", "4.1", {"batch_size": 1}, "monai.data.DataLoader", {"batch_size": 1}, []),
    ("SlidingWindowInferer", "inferer", "4.1", {}, "monai.inferers.SlidingWindowInferer", {}, []),
    ("MeanDice", "key_metric", "4.1", {}, "monai.handlers.MeanDice", {}, []),
    ("SupervisedTrainer", "trainer", "4.1", {}, "monai.engines.SupervisedTrainer", {}, []),
    ("Novograd", "optimizer", "4.1", {}, "monai.optimizers.Novograd", {}, []),
    ("LoadImaged", "pre_transforms", "4.1", {"keys": "image"}, "monai.transforms.LoadImaged", {"keys": "image"}, []),
    # Ambiguous names: slot-aware preference, reported.
    ("ConfusionMatrix", "key_metric", "4.1", {}, "monai.handlers.ConfusionMatrix", {}, ["ambiguous-name"]),
    ("ConfusionMatrix", None, "4.1", {}, "monai.handlers.ConfusionMatrix", {}, ["ambiguous-name"]),
    ("ExponentialLR", "lr_scheduler", "4.1", {}, "torch.optim.lr_scheduler.ExponentialLR", {}, ["ambiguous-name"]),
    ("ExponentialLR", "optimizer", "4.1", {}, "monai.optimizers.ExponentialLR", {}, ["ambiguous-name"]),
    ("Identity", "post_transforms", "4.1", {}, "monai.transforms.Identity", {}, ["ambiguous-name"]),
    ("Identity", "model", "4.1", {}, "torch.nn.Identity", {}, ["ambiguous-name"]),
    ("CosineSimilarity", "loss", "4.1", {}, "torch.nn.CosineSimilarity", {}, ["ambiguous-name"]),
    # Clara-era MONAI rewrites.
    ("UNet", "model", "4.1", {"dimensions": 3}, "monai.networks.nets.UNet", {"spatial_dims": 3}, ["rewrite"]),
    ("SegResNet", "model", "4.0", {"dimensions": 2}, "monai.networks.nets.SegResNet", {"spatial_dims": 2}, ["rewrite"]),
    ("BasicUNet", "model", "4.0", {"dimensions": 3}, "monai.networks.nets.BasicUNet", {"spatial_dims": 3}, ["rewrite"]),
    # MONAI 0.6 made DynUNet's instance norm affine: reported for a 4.0 (MONAI 0.5) config.
    (
        "DynUNet",
        "model",
        "4.0",
        {"dimensions": 3},
        "monai.networks.nets.DynUNet",
        {"spatial_dims": 3},
        ["rewrite", "changed-default"],
    ),
    (
        "AddChanneld",
        "pre_transforms",
        "4.0",
        {"keys": ["image", "label"]},
        "monai.transforms.EnsureChannelFirstd",
        {"keys": ["image", "label"], "channel_dim": "no_channel"},
        ["rewrite"],
    ),
    (
        "AsChannelFirstd",
        "pre_transforms",
        "4.0",
        {"keys": "image"},
        "monai.transforms.EnsureChannelFirstd",
        {"keys": "image", "channel_dim": -1},
        ["rewrite"],
    ),
    ("NovoGrad", "optimizer", "4.0", {"lr": 0.1}, "monai.optimizers.Novograd", {"lr": 0.1}, ["rewrite"]),
    (
        "AsDiscreted",
        "post_transforms",
        "4.1",
        {"keys": ["pred", "label"], "argmax": [True, False], "to_onehot": True, "n_classes": 2},
        "monai.transforms.AsDiscreted",
        {"to_onehot": 2, "keys": ["pred", "label"], "argmax": [True, False]},
        ["rewrite"],
    ),
    (
        "Accuracy",
        "additional_metrics",
        "4.1",
        {"output_transform": "#monai.handlers.from_engine(['pred', 'label'])"},
        "monai.handlers.ConfusionMatrix",
        {"output_transform": "#monai.handlers.from_engine(['pred', 'label'])", "metric_name": "accuracy"},
        ["rewrite"],
    ),
    ("Accuracy", "metrics", "4.0", {}, "monai.handlers.ConfusionMatrix", {"metric_name": "accuracy"}, ["rewrite"]),
    ("Accuracy", None, "4.1", {}, "ignite.metrics.Accuracy", {}, []),  # outside metric slots: ignite's, as named
    (
        "SupervisedEvaluator",
        "evaluator",
        "4.0",
        {"post_transform": "@post_transforms"},
        "monai.engines.SupervisedEvaluator",
        {"postprocessing": "@post_transforms"},
        ["rewrite"],
    ),
    # 3.x components.
    (
        "LoadNifti",
        "pre_transforms",
        "3.x",
        {"fields": ["image"]},
        "monai.transforms.LoadImaged",
        {"keys": ["image"]},
        ["rewrite"],
    ),
    (
        "ConvertToChannelsFirst",
        "pre_transforms",
        "3.x",
        {"fields": ["image", "label"]},
        "monai.transforms.EnsureChannelFirstd",
        {"keys": ["image", "label"]},
        ["rewrite"],
    ),
    (
        "ScaleIntensityRange",
        "pre_transforms",
        "3.x",
        {"fields": "image", "a_min": -57, "a_max": 164, "b_min": 0.0, "b_max": 1.0, "clip": True},
        "monai.transforms.ScaleIntensityRanged",
        {"keys": "image", "a_min": -57, "a_max": 164, "b_min": 0.0, "b_max": 1.0, "clip": True},
        ["rewrite"],
    ),
    (
        "RandomSpatialFlip",
        "pre_transforms",
        "3.x",
        {"fields": ["image", "label"]},
        "monai.transforms.RandFlipd",
        {"keys": ["image", "label"]},
        ["rewrite"],
    ),
    (
        "AddGaussianNoise",
        "pre_transforms",
        "3.x",
        {"fields": "image", "probability": 0.1, "magnitude": 0.2},
        "monai.transforms.RandGaussianNoised",
        # Clara's variance default 0.1 as a fixed std (see tests/test_clara_compat.py)
        {"keys": "image", "prob": 0.1, "std": 0.1**0.5, "sample_std": False},
        ["rewrite", "dropped-argument"],
    ),
    (
        "Focal",
        "loss",
        "3.x",
        {"skip_background": True},
        "monai.losses.FocalLoss",
        {"include_background": False},
        ["rewrite"],
    ),
    ("Adam", "optimizer", "3.x", {}, "torch.optim.Adam", {}, []),
    ("Dice", "loss", "3.x", {}, "monai.losses.DiceLoss", {}, ["rewrite", "legacy-caveat"]),
    ("Dice", "loss", "4.1", {}, "monai.losses.DiceLoss", {}, []),  # MONAI's own alias outside 3.x
    ("SegAhnet", "model", "3.x", {"num_classes": 2}, None, {"num_classes": 2}, ["no-monai-counterpart"]),
    ("Unet", "model", "3.x", {"nf_enc": "32,64"}, None, {"nf_enc": "32,64"}, ["no-monai-counterpart"]),
    ("TFSimpleInferer", "inferer", "3.x", {}, None, {}, ["no-monai-counterpart"]),
    ("SomethingTensorflow", None, "3.x", {}, None, {}, ["no-monai-counterpart"]),
    # Errors.
    ("UNett", "model", "4.1", {}, None, {}, ["unknown-class"]),
    (
        "RandGaussianNoised",
        "pre_transforms",
        "4.0",
        {"probability": 0.1},
        "monai.transforms.RandGaussianNoised",
        {"probability": 0.1},
        ["unknown-argument"],
    ),
    (
        "UNet",
        "model",
        "4.1",
        {"dimensions": 3, "spatial_dims": 3},
        "monai.networks.nets.UNet",
        {"dimensions": 3, "spatial_dims": 3},
        ["unknown-argument"],
    ),
    # Comment keys are ignored; **kwargs targets accept anything.
    (
        "LoadImaged",
        "pre_transforms",
        "4.1",
        {"keys": "image", "_comment": "x", "/note": 1, "as_closest_canonical": True},
        "monai.transforms.LoadImaged",
        {"keys": "image", "as_closest_canonical": True},
        [],
    ),
]


@pytest.mark.parametrize(("name", "slot", "era", "args", "target", "out", "rules"), CASES)
def test_resolve(
    name: str,
    slot: str | None,
    era: str,
    args: dict[str, Any],
    target: str | None,
    out: dict[str, Any],
    rules: list[str],
) -> None:
    res = resolve_component(name, None, args, json_path="train.x", slot=slot, era=era)
    assert (res.target, res.args, [d.rule for d in res.diagnostics]) == (target, out, rules)
    assert res.checked is (target is not None)
    for d in res.diagnostics:
        assert d.json_path.startswith("train.x") and d.message


def test_arg_map_follows_renames_and_drops() -> None:
    res = resolve_component("UNet", None, {"dimensions": 3, "channels": [4, 8]}, json_path="m", slot="model", era="4.1")
    assert res.arg_map == {"dimensions": "spatial_dims", "channels": "channels"}
    assert res.value_rewritten == frozenset()
    assert res.params is not None and "spatial_dims" in res.params and "dimensions" not in res.params
    assert res.missing_required == {"in_channels", "out_channels", "strides"}
    tf = resolve_component(
        "AddGaussianNoise", None, {"probability": 0.1, "magnitude": 0.2}, json_path="p", slot=None, era="3.x"
    )
    assert tf.arg_map == {"probability": "prob"}  # 'magnitude' dropped: no entry
    dice = resolve_component("Dice", None, {"skip_background": True}, json_path="l", slot="loss", era="3.x")
    # Old names MONAI renamed map too, given or not (a search or apply may name them).
    assert dice.renamed_args == {"do_sigmoid": "sigmoid", "do_softmax": "softmax"}
    assert dice.arg_map == {"skip_background": "include_background", **dice.renamed_args}
    assert dice.value_rewritten == {"skip_background"}


def test_unknown_class_suggests_close_names() -> None:
    (diag,) = resolve_component("UNett", None, {}, json_path="train.model", slot="model", era="4.1").diagnostics
    assert diag.level is Level.ERROR and diag.json_path == "train.model"
    assert "unknown class 'UNett'" in diag.message and "did you mean 'UNet'" in diag.message


def test_unknown_argument_message_and_fix() -> None:
    res = resolve_component(
        "RandGaussianNoised",
        None,
        {"keys": "image", "probability": 0.1},
        json_path="train.pre_transforms[6]",
        slot="pre_transforms",
        era="4.0",
    )
    (diag,) = res.diagnostics
    assert diag.level is Level.ERROR
    assert diag.json_path == "train.pre_transforms[6].args.probability"
    assert diag.message == (
        "unknown argument 'probability' for monai.transforms.RandGaussianNoised; did you mean 'prob'?"
    )
    assert diag.fix == "rename 'probability' to 'prob'"


def test_ambiguity_message_names_choice_and_alternatives() -> None:
    (diag,) = resolve_component(
        "ConfusionMatrix", None, {}, json_path="v.key_metric", slot="key_metric", era="4.1"
    ).diagnostics
    assert diag.level is Level.INFO
    assert "chose monai.handlers.ConfusionMatrix" in diag.message and "ignite.metrics.ConfusionMatrix" in diag.message


def test_preference_order_is_fixed_and_slot_first() -> None:
    assert preference(None) == signatures.SEARCH_MODULES
    assert preference("key_metric")[:2] == ("monai.handlers", "ignite.metrics")
    assert preference("loss")[:2] == ("monai.losses", "torch.nn")
    assert preference("optimizer")[:2] == ("monai.optimizers", "torch.optim")
    for slot in catalog.SLOT_MODULES:
        assert sorted(preference(slot)) == sorted(signatures.SEARCH_MODULES)


# path -> (target, checked, requirement, rules)
PATHS: list[tuple[str, str, bool, str | None, list[str]]] = [
    ("monai.networks.nets.UNet", "monai.networks.nets.UNet", True, None, ["rewrite"]),
    ("monai.networks.nets.unet.UNet", "monai.networks.nets.unet.UNet", True, None, ["rewrite"]),  # defining path
    ("monai.apps.DecathlonDataset", "monai.apps.DecathlonDataset", False, None, ["unchecked-path"]),
    (
        "my_missing_pkg.losses.MyLoss",
        "my_missing_pkg.losses.MyLoss",
        False,
        "my_missing_pkg.losses",
        ["unchecked-path"],
    ),
    ("json.decoder.JSONDecoder", "json.decoder.JSONDecoder", False, "json.decoder", ["unchecked-path"]),
]


@pytest.mark.parametrize(("path", "target", "checked", "requirement", "rules"), PATHS)
def test_path_decides_the_class(
    path: str, target: str, checked: bool, requirement: str | None, rules: list[str]
) -> None:
    res = resolve_component("Ignored", path, {"dimensions": 3}, json_path="train.model", slot="model", era="4.1")
    assert (res.target, res.checked, res.requirement) == (target, checked, requirement)
    assert [d.rule for d in res.diagnostics] == rules
    if not checked:
        assert res.args == {"dimensions": 3} and res.params is None
        assert res.diagnostics[0].level is Level.WARNING and res.diagnostics[0].json_path == "train.model.path"


def test_bad_path_and_missing_name_are_errors() -> None:
    bad = resolve_component(None, "NoDots", {}, json_path="p", slot=None, era="4.1")
    assert bad.target is None and [d.rule for d in bad.diagnostics] == ["invalid-path"]
    empty = resolve_component(None, None, {}, json_path="p", slot=None, era="4.1")
    assert empty.target is None and [d.rule for d in empty.diagnostics] == ["missing-name"]
    with pytest.raises(ValueError, match="era"):
        resolve_component("UNet", None, {}, json_path="p", slot=None, era="5.0")


def test_accepts_arg_and_known_names() -> None:
    assert accepts_arg("monai.transforms.RandFlipd", "prob") is True
    assert accepts_arg("monai.transforms.RandFlipd", "probability") is False
    assert accepts_arg("monai.transforms.LoadImaged", "anything") is True  # takes **kwargs
    assert accepts_arg("my_pkg.Thing", "x") is None
    names = known_short_names()
    assert {"UNet", "RandFlipd", "Adam", "StepLR", "MeanDice", "Accuracy", "AddChanneld", "NovoGrad"} <= names
    assert "monai" not in names and all(not n.startswith("_") for n in names)


# ---------------------------------------------------------------------------------------------- the index


def test_shipped_index_matches_installed_versions() -> None:
    versions = signatures.installed_versions()
    shipped = signatures.INDEX_DIR / signatures.index_filename(versions)
    assert shipped.is_file(), f"no shipped index for {versions}: run python tools/build_signature_index.py"
    index = signatures.load_index()
    assert index.source == str(shipped)
    assert {k: signatures.public_version(v) for k, v in index.versions.items()} == {
        k: signatures.public_version(v) for k, v in versions.items()
    }
    assert index.search_modules == signatures.SEARCH_MODULES


def test_index_is_read_without_importing_the_libraries() -> None:
    code = (
        "import sys\n"
        "from clara_hydra.convert.catalog import resolve_component\n"
        "r = resolve_component('UNet', None, {'dimensions': 3}, json_path='m', slot='model', era='4.1')\n"
        "assert r.target == 'monai.networks.nets.UNet', r\n"
        "heavy = sorted(m for m in ('torch', 'monai', 'ignite') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    env = {k: v for k, v in os.environ.items() if k != signatures.INDEX_ENV}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env=env, timeout=60)


def test_missing_index_is_built_once_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = {
        "format": signatures.FORMAT,
        "versions": {"monai": "0", "torch": "0", "pytorch-ignite": "0"},
        "search_modules": ["m"],
        "names": {"Thing": ["m.Thing"]},
        "objects": {
            "m.Thing": {
                "kind": "class",
                "origin": "m.x.Thing",
                "accepts_var_kwargs": False,
                "parameters": [{"name": "a", "kind": "keyword_only", "has_default": True}],
            }
        },
    }
    calls: list[int] = []

    def build() -> dict[str, Any]:
        calls.append(1)
        return fake

    monkeypatch.setattr(signatures, "INDEX_DIR", tmp_path / "shipped")
    monkeypatch.setattr(signatures, "build_index", build)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(signatures.INDEX_ENV, raising=False)
    signatures.load_index.cache_clear()
    try:
        index = signatures.load_index()
        assert calls == [1] and index.lookup("m.x.Thing") is not None
        built = tmp_path / "cache" / "clara-hydra" / signatures.index_filename(signatures.installed_versions())
        assert index.source == str(built) and json.loads(built.read_text()) == fake
        signatures.load_index.cache_clear()
        signatures.load_index()
        assert calls == [1]  # the cached file is reused
        assert not list(built.parent.glob("*.tmp"))
    finally:
        signatures.load_index.cache_clear()


@pytest.mark.slow
def test_builder_regenerates_the_shipped_index(tmp_path: Path) -> None:
    out = tmp_path / "index.json"
    subprocess.run(
        [sys.executable, str(REPO / "tools" / "build_signature_index.py"), str(out)], check=True, timeout=300
    )
    shipped = signatures.INDEX_DIR / signatures.index_filename(signatures.installed_versions())
    assert out.read_text() == shipped.read_text()


# ---------------------------------------------------------------------------------------------- real configs

EXAMPLES = [REPO / "tests" / "data" / "clara_examples", REPO.parent / "shared" / "clara" / "examples"]
ERA_OF = {
    "4.1": ("01", "02", "03", "04", "05", "10", "11", "seed"),
    "4.0": ("18", "19", "20", "21", "22"),
    "3.x": ("30", "31", "32", "33", "34", "41", "63"),
}
SLOTS = set(catalog.SLOT_MODULES)


def _components(
    node: Any, path: str, slot: str | None
) -> Iterator[tuple[str | None, str | None, dict[str, Any], str, str | None]]:
    """Every component (dict with name/path) of a Clara config; an `args` dict itself is not one."""
    if isinstance(node, dict):
        if isinstance(node.get("name"), str) or isinstance(node.get("path"), str):
            args = node.get("args") if isinstance(node.get("args"), dict) else {}
            yield node.get("name"), node.get("path"), args, path, slot
        for key, value in node.items():
            if key == "args" and isinstance(value, dict):
                for arg, nested in value.items():
                    yield from _components(nested, f"{path}.args.{arg}", slot)
            else:
                yield from _components(value, f"{path}.{key}" if path else key, key if key in SLOTS else slot)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _components(item, f"{path}[{i}]", slot)


def _example_files() -> list[tuple[str, Path]]:
    folder = next((f for f in EXAMPLES if f.is_dir()), None)
    if folder is None:
        return []
    return [
        (era, f)
        for f in sorted(folder.glob("*.json"))
        for era, prefixes in ERA_OF.items()
        if f.name.startswith(prefixes)
    ]


@pytest.mark.parametrize(("era", "file"), _example_files(), ids=lambda x: getattr(x, "name", x))
def test_every_example_component_resolves(era: str, file: Path) -> None:
    comps = list(_components(json.loads(file.read_text()), "", None))
    assert comps
    for name, path, args, where, slot in comps:
        bare = name.split("#", 1)[0] if name else None  # 3.x "ScaleByResolution#ScaleImg": the caller strips it
        res = resolve_component(bare, path, args, json_path=where, slot=slot, era=era)
        rules = {d.rule for d in res.diagnostics}
        if era == "3.x":
            assert res.target is not None or rules == {"no-monai-counterpart"}, (where, name, res.diagnostics)
        else:
            assert res.target is not None and res.checked, (where, name, res.diagnostics)
        assert not [d for d in res.diagnostics if d.level is Level.ERROR], (where, name, res.diagnostics)
