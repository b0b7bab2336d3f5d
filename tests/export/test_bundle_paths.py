"""Paths in an exported bundle, resolved by MONAI's own ConfigParser (no sweep)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from monai.bundle import ConfigParser

from clara_hydra.export.bundle_paths import built_on_variable, data_ids, relocate, under_root
from clara_hydra.export.trial_config import MISSING, TrialConfig

VARIABLES = ["DATA_ROOT", "SPLIT", "X"]


def _trial(raw_x: Any, resolved_x: Any = "resolved") -> TrialConfig:
    raw = {"DATA_ROOT": "/data/spleen", "SPLIT": "fold0", "X": raw_x}
    return TrialConfig(raw, {**raw, "X": resolved_x}, Path("/launch"), Path("/launch/job"))


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("${DATA_ROOT}/dataset.json", "/data/spleen/dataset.json"),
        ("${DATA_ROOT}/${SPLIT}.json", "/data/spleen/fold0.json"),
        ("${DATA_ROOT}/{odd}}.json", "/data/spleen/{odd}}.json"),  # literal braces survive vformat
        ("${DATA_ROOT}", "/data/spleen"),  # the same value: a plain link
    ],
)
def test_a_path_built_on_variables_stays_built_on_them(raw: str, parsed: str) -> None:
    node = built_on_variable(_trial(raw), "X", VARIABLES)
    assert node is not None
    config = {"DATA_ROOT": "/data/spleen", "SPLIT": "fold0", "X": node}
    assert ConfigParser(config).get_parsed_content("X") == parsed
    moved = ConfigParser({**config, "DATA_ROOT": "/elsewhere"}).get_parsed_content("X")
    assert moved == parsed.replace("/data/spleen", "/elsewhere")


@pytest.mark.parametrize(
    ("raw", "resolved"),
    [
        ("data/${SPLIT}.json", "resolved"),  # starts relative: from the launch folder, as resolved
        ("${oc.env:HOME}/x", "resolved"),  # a resolver, not a variable
        ("${DATA_ROOT}/${oc.env:HOME}", "resolved"),
        ("${UNKNOWN}/x", "resolved"),
        ("${X}/x", "resolved"),  # itself
        ("${DATA_ROOT}/x", MISSING),  # no value: the exporter decides
        (3, 3),
    ],
)
def test_other_values_keep_their_resolved_form(raw: Any, resolved: Any) -> None:
    assert built_on_variable(_trial(raw, resolved), "X", VARIABLES) is None


def test_paths_inside_the_bundle_hang_off_bundle_root(tmp_path: Path) -> None:
    root = tmp_path / "b"
    config = relocate(
        {"save_dir": str(root / "models"), "whole": str(root), "near": str(tmp_path / "b2"), "n": [str(root / "x")]},
        root,
    )
    assert config["save_dir"] == under_root("models")
    assert config["whole"] == "@bundle_root"
    assert config["near"] == str(tmp_path / "b2")  # a sibling whose name starts the same is not inside
    parser = ConfigParser({"bundle_root": "/moved", **config})
    assert parser.get_parsed_content("save_dir") == "/moved/models"
    assert parser.get_parsed_content("n")[0] == "/moved/x"


def test_data_ids_are_the_paths_outside_the_bundle() -> None:
    config = {
        "DATA_ROOT": "/data",
        "DATASET_JSON": {
            "_target_": "string.Formatter.vformat",
            "format_string": "{DATA_ROOT}/d.json",
            "kwargs": {"DATA_ROOT": "@DATA_ROOT"},
        },
        "MMAR_CKPT_DIR": under_root("models"),
        "epochs": 3,
        "name": "relative/not/data",
    }
    assert data_ids(config, list(config)) == {"DATA_ROOT": "/data", "DATASET_JSON": "{DATA_ROOT}/d.json"}
