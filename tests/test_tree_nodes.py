"""The one reader of the emitted tree's markers, and the proof that its four consumers share it (issue 16)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from clara_hydra import tree_nodes
from clara_hydra.export.bundle_syntax import BundleTranslator
from clara_hydra.export.clara_json import ClaraWriter
from clara_hydra.export.trial_config import TrialConfig
from clara_hydra.runtime.build import Builder
from clara_hydra.runtime.cache_plan import plan
from clara_hydra.tree_nodes import Kind, Marker, Role


@pytest.mark.parametrize(
    ("node", "kind"),
    [
        ({"_ref_": "train.model"}, Kind.REFERENCE),
        ({"_ref_": "train.model", "_target_": "x.Y"}, Kind.REFERENCE),  # the first marker of the table wins
        ({"_config_": True}, Kind.CONFIG),
        ({"_one_of_": True, "a": {}}, Kind.ONE_OF),
        ({"_one_of_": [{}, {}]}, Kind.ONE_OF),
        ({"_one_of_": False, "a": 1}, Kind.MAPPING),
        ({"_compose_": True}, Kind.COMPOSE),
        ({"_compose_": False, "a": 1}, Kind.MAPPING),
        ({"_list_": True}, Kind.LIST),
        ({"_target_": "torch.nn.ReLU", "_disabled_": True}, Kind.TARGET),
        ({"a": 1}, Kind.MAPPING),
        ([1, 2], Kind.SEQUENCE),
        (None, Kind.NONE),
        ("???", Kind.MISSING),
        ("${learning_rate}", Kind.INTERPOLATION),
        ("${DATA_ROOT}/x.json", Kind.INTERPOLATION),
        ("plain", Kind.VALUE),
        (0.1, Kind.VALUE),
    ],
)
def test_kinds_of_plain_and_omegaconf_nodes(node: Any, kind: Kind) -> None:
    assert tree_nodes.kind_of(node) is kind
    if isinstance(node, dict | list):  # the runtime reads DictConfig/ListConfig, the exporters plain containers
        assert tree_nodes.kind_of(OmegaConf.create(node)) is kind


def test_members_arguments_and_placement() -> None:
    node = {"_compose_": True, "a": {"_target_": "x.A", "_rank_": 1}, "gone": None, "_new_marker_": 1, "b": 2}
    assert [k for k, _ in tree_nodes.members(node)] == ["a", "b"]
    assert [k for k, _ in tree_nodes.members(node, keep=lambda _k, v: tree_nodes.enabled(v, rank=0))] == ["b"]
    assert tree_nodes.arguments({"_target_": "x.A", "_partial_": True, "_convert_": "all", "lr": 1}) == ["lr"]
    assert not tree_nodes.enabled({"_disabled_": True}) and tree_nodes.enabled({"_disabled_": False})
    assert tree_nodes.enabled({"_rank_": 1}, rank=1) and not tree_nodes.enabled({"_rank_": 1}, rank=0)
    assert tree_nodes.interpolation_link("${learning_rate}") == "learning_rate"
    assert tree_nodes.interpolation_link("${clara.job_dir:models}") is None
    assert tree_nodes.interpolation_link("${a}/${b}") is None
    assert tree_nodes.one_of_list({"_one_of_": [1, 2]}) == [1, 2] and tree_nodes.one_of_list({"_one_of_": True}) is None


# Three markers that do not exist: a collection of transforms, a choice among alternatives, a comment key.
PIPELINE, CHOICE, NOTE = "_pipeline_", "_choice_", "_note_"
IDENTITY = {"_target_": "monai.transforms.Identityd", "keys": ["image"], NOTE: "ignored by every reader"}
LOSS = {
    CHOICE: True,
    "dice_loss": {"_target_": "monai.losses.DiceLoss", "_disabled_": True, NOTE: "x"},
    "focal_loss": {"_target_": "monai.losses.FocalLoss", NOTE: "y"},
}
TREE: dict[str, Any] = {
    "train": {
        "loss": LOSS,
        "pre_transforms": {PIPELINE: True, NOTE: "on the collection too", "identityd": IDENTITY},
        "dataset": {
            "_target_": "monai.data.CacheDataset",
            NOTE: "a dataset with a comment is still cached",
            "data": [{"image": 1.0}, {"image": 2.0}],
            "transform": {"_ref_": "train.pre_transforms"},
            "cache_rate": 1.0,
        },
    }
}


@pytest.fixture
def new_markers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The three markers, added to the one table and nowhere else."""
    monkeypatch.setitem(tree_nodes.TABLE, PIPELINE, Marker(Role.KIND, Kind.COMPOSE, lambda v: v is True))
    monkeypatch.setitem(tree_nodes.TABLE, CHOICE, Marker(Role.KIND, Kind.ONE_OF, lambda v: v is True))
    monkeypatch.setitem(tree_nodes.TABLE, NOTE, Marker(Role.IGNORED))


def _trial(raw: dict[str, Any]) -> TrialConfig:
    resolved = OmegaConf.to_container(OmegaConf.create(raw), resolve=True)
    assert isinstance(resolved, dict)
    return TrialConfig(raw, resolved, Path.cwd(), Path.cwd())


def test_without_the_table_entries_the_nodes_are_plain_mappings() -> None:
    assert tree_nodes.kind_of(LOSS) is Kind.MAPPING and tree_nodes.arguments(IDENTITY) == ["keys", NOTE]


@pytest.mark.usefixtures("new_markers")
def test_a_marker_added_to_the_table_reaches_the_builder() -> None:
    from monai.losses import FocalLoss
    from monai.transforms import Compose, Identityd

    builder = Builder(OmegaConf.create(TREE))
    transforms = builder.build("train.pre_transforms")  # NOTE would be a constructor argument if not a marker
    assert isinstance(transforms, Compose) and [type(t) for t in transforms.transforms] == [Identityd]
    assert isinstance(builder.build("train.loss"), FocalLoss)


@pytest.mark.usefixtures("new_markers")
def test_a_marker_added_to_the_table_reaches_the_cache_planner() -> None:
    found = plan(Builder(OmegaConf.create(TREE)), "train.dataset")
    assert found is not None, "NOTE is no unknown dataset argument, PIPELINE is a Compose"
    assert found.prefix == ["identityd"] and "_note_" not in found.kwargs


@pytest.mark.usefixtures("new_markers")
def test_a_marker_added_to_the_table_reaches_the_bundle_exporter() -> None:
    tc = _trial(TREE)
    translator = BundleTranslator(tc, tc.variables())
    identity = {"_target_": "monai.transforms.Identityd", "keys": ["image"]}
    assert translator.node("train.pre_transforms") == {"_target_": "monai.transforms.Compose", "transforms": [identity]}
    assert translator.node("train.loss") == {"_target_": "monai.losses.FocalLoss"}


@pytest.mark.usefixtures("new_markers")
def test_a_marker_added_to_the_table_reaches_the_clara_exporter() -> None:
    document = ClaraWriter(_trial({"train": {"loss": LOSS}})).document()
    assert document["train"]["loss"] == [{"name": "DiceLoss", "disabled": True}, {"name": "FocalLoss"}]
