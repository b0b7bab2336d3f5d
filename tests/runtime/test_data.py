"""Datalists: relative paths from the start folder, clear errors for a wrong file, key or data file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clara_hydra.data import load_datalist
from clara_hydra.errors import DataError


def test_relative_paths_resolve_against_the_start_folder(demo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(demo_root.parent)
    items = load_datalist(f"{demo_root.name}/dataset.json", demo_root.name, "validation")
    assert len(items) == 1
    assert Path(items[0]["image"]).is_absolute() and Path(items[0]["image"]).is_file()
    assert load_datalist(str(demo_root / "dataset.json"), None, "training")[0]["label"].startswith(str(demo_root))


def test_missing_file_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data_list_file_path='nope\.json': no such file .*DATASET_JSON"):
        load_datalist("nope.json", str(tmp_path), "training")


def test_missing_key_lists_the_keys_present(demo_root: Path) -> None:
    with pytest.raises(
        DataError, match=r"data_list_key='valid' is not in .*keys present: \[.*'training'.*'validation'"
    ):
        load_datalist(str(demo_root / "dataset.json"), str(demo_root), "valid")


def test_missing_data_files_are_listed(tmp_path: Path) -> None:
    (tmp_path / "list.json").write_text(json.dumps({"training": [{"image": "a.nii.gz", "label": "b.nii.gz"}]}))
    with pytest.raises(DataError, match=r"2 file\(s\) listed under 'training'.*a\.nii\.gz"):
        load_datalist(str(tmp_path / "list.json"), str(tmp_path), "training")
