"""Datalists: relative paths from the start folder, clear errors for a wrong file, key or data file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
    with pytest.raises(DataError, match=r"(?s)data_list_file_path='nope\.json': no such file .*fix: .*DATASET_JSON"):
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


@pytest.mark.parametrize("cache", ["on", "off"])
def test_a_truncated_image_names_the_file_and_leaves_no_thread_behind(
    cache: str, demo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compose_cfg: Any
) -> None:
    """The CacheDataset fill (4 threads) stops at a truncated .nii.gz with a DataError naming it, and waits."""
    import shutil
    import threading

    from clara_hydra.runtime.build import Builder
    from clara_hydra.runtime.cache import DataCache, build_dataset

    data = tmp_path / "data"
    shutil.copytree(demo_root, data)
    broken = sorted((data / "imagesTr").iterdir())[1]
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    monkeypatch.setenv("CLARA_HYDRA_CACHE", "1" if cache == "on" else "0")
    cfg = compose_cfg(f"DATA_ROOT={data}", f"DATASET_JSON={data / 'dataset.json'}", "train.dataset.num_workers=4")
    with pytest.raises(DataError) as err:
        build_dataset(Builder(cfg), "train.dataset", cache=DataCache())
    message = str(err.value)
    assert message.startswith(f"train.dataset: cannot read {broken} (datalist entry 1) in LoadImaged: EOFError")
    assert "fix: the file is truncated or corrupt" in message
    assert not [t for t in threading.enumerate() if t.name.startswith("clara-cache")], "fill threads joined"
