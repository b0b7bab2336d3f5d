"""MONAI's apps in the legacy knowledge (issue 16, item 2): a Clara 4.x DeepGrow config whose click transforms pass
MONAI 0.5's ``batched`` and whose click loop is Clara's own ``ClickInteraction`` converts with warnings that say what
the removed argument did, composes, and builds MONAI's deepgrow ``Interaction`` with the same arguments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from clara_hydra.convert import Document, convert_documents, legacy, write_tree
from clara_hydra.convert.catalog import resolve_component
from clara_hydra.errors import ConfigError, Level

DEEPGROW = Path(__file__).resolve().parent / "legacy_inputs" / "deepgrow_3d_4x.json"
CLICKS = ("FindDiscrepancyRegionsd", "AddRandomGuidanced", "AddGuidanceSignald")


def _convert(doc: dict | None = None) -> object:
    data = DEEPGROW.read_bytes() if doc is None else json.dumps(doc).encode()
    return convert_documents(Document("config_train.json", data))


def test_deepgrow_batched_is_dropped_with_what_it_did() -> None:
    conv = _convert()
    removed = [d for d in conv.diagnostics if d.rule == "removed-argument"]
    # Three click transforms in the training and in the validation interaction.
    assert len(removed) == 6
    for d in removed:
        assert d.level is Level.WARNING and d.json_path.endswith(".args.batched")
        assert "removed in MONAI 0.6.0 (last in 0.5.3)" in d.message
        assert "whether input is batched or not" in d.message  # MONAI 0.5's docstring of the argument
        assert any(name in d.message for name in CLICKS)
    assert not [d for d in conv.diagnostics if d.level is Level.ERROR]
    rewrites = [d for d in conv.diagnostics if d.rule == "rewrite" and "ClickInteraction" in d.message]
    assert [d.json_path for d in rewrites] == [
        "train.trainer.args.iteration_update.path",
        "validate.evaluator.args.iteration_update.path",
    ]


def test_history_knows_the_apps() -> None:
    history = legacy.load_history()
    for name in CLICKS:
        removed = history.removed_arg(f"monai.apps.deepgrow.transforms.{name}", "batched")
        assert removed is not None and removed.last == "0.5.3" and removed.removed == "0.6.0"
        assert removed.doc


@pytest.mark.parametrize(
    ("name", "path"),
    [
        (None, "deepgrow.interaction.ClickInteraction"),
        (None, "medl.apps.deepgrow.interaction.ClickInteraction"),
        ("deepgrow.interaction.ClickInteraction", None),  # the dotted class written as `name`
        ("ClickInteraction", None),
    ],
)
def test_click_interaction_maps_to_monai_with_its_arguments_checked(name: str | None, path: str | None) -> None:
    args = {"transforms": [], "max_interactions": 3, "train": True, "key_probability": "probability"}
    res = resolve_component(name, path, args, json_path="x", slot=None, era="4.1")
    assert res.target == "monai.apps.deepgrow.interaction.Interaction" and res.checked and res.args == args
    wrong = resolve_component(name, path, {**args, "clicks": 2}, json_path="x", slot=None, era="4.1")
    assert [d.rule for d in wrong.diagnostics if d.level is Level.ERROR] == ["unknown-argument"]


def test_an_unknown_argument_of_click_interaction_fails_the_conversion() -> None:
    doc = json.loads(DEEPGROW.read_text())
    doc["train"]["trainer"]["args"]["iteration_update"]["args"]["clicks"] = 3
    with pytest.raises(ConfigError) as info:
        _convert(doc)
    (error,) = [d for d in info.value.diagnostics if d.level is Level.ERROR]
    assert error.json_path == "train.trainer.args.iteration_update.args.clicks"


def test_deepgrow_config_builds(tmp_path: Path) -> None:
    from monai.apps.deepgrow.interaction import Interaction
    from monai.apps.deepgrow.transforms import AddRandomGuidanced, FindDiscrepancyRegionsd

    from clara_hydra.runtime.build import Builder
    from clara_hydra.runtime.demo import make_demo_data

    data = make_demo_data(tmp_path / "demo", n_train=1, n_val=1, size=32, seed=0)
    conf = tmp_path / "conf"
    write_tree(_convert().files, conf)  # type: ignore[attr-defined]
    overrides = [f"DATA_ROOT={data}", f"DATASET_JSON={data / 'dataset.json'}"]
    with initialize_config_dir(config_dir=str(conf), version_base=None):
        cfg = compose("config", overrides=overrides)
    built = Builder(cfg).build_slots()
    trainer, evaluator = built["train.trainer"], built["validate.evaluator"]
    for engine, rounds, train in ((trainer, 15, True), (evaluator, 5, False)):
        # MONAI's Workflow hands iteration_update to ignite's Engine as its process function.
        interaction = engine._process_function
        assert isinstance(interaction, Interaction)
        assert (interaction.max_interactions, interaction.train) == (rounds, train)
        kinds = [type(t) for t in interaction.transforms.transforms]
        assert FindDiscrepancyRegionsd in kinds and AddRandomGuidanced in kinds
    assert evaluator.network is trainer.network
