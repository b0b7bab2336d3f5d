"""``--to bundle``: the 1-epoch round trip through MONAI's own bundle tools (run, ckpt_export, verify_metadata,
verify_net_in_out), on a bundle copied to another folder after its original was deleted."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import LoadImage

from clara_hydra.errors import ExportError
from clara_hydra.export.bundle import BundleExport, export_bundle, under_root
from clara_hydra.export.checkpoint import find_checkpoint, load_weights
from clara_hydra.export.metadata import SCHEMA_FILE, load_schema, validate_metadata
from clara_hydra.export.select import select_trial
from tests.export.conftest import Sweep, run

pytestmark = pytest.mark.slow
KEY_METRIC_LINE = re.compile(r"Key metric: val_mean_dice best value: ([0-9.e-]+)")


@pytest.fixture(scope="module")
def bundle(sweep: Sweep, tmp_path_factory: pytest.TempPathFactory) -> BundleExport:
    """The best trial exported, copied to another folder and the original deleted: every test uses the copy."""
    exported = export_bundle(select_trial(sweep.dir), tmp_path_factory.mktemp("bundle") / "spleen_best")
    moved = tmp_path_factory.mktemp("elsewhere") / "spleen_best"
    shutil.copytree(exported.root, moved)
    shutil.rmtree(exported.root)
    return dataclasses.replace(exported, root=moved)


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def test_layout_no_expressions_and_the_trials_weights(bundle: BundleExport, sweep: Sweep) -> None:
    root = bundle.root
    configs = ("train", "evaluate", "inference")
    for name in (*(f"configs/{c}.json" for c in configs), "configs/metadata.json", "configs/logging.conf"):
        assert (root / name).is_file(), name
    assert "Apache License" in (root / "LICENSE").read_text()
    assert "python -m monai.bundle run --config_file configs/train.json" in (root / "docs" / "README.md").read_text()
    for config in configs:
        content = json.loads((root / "configs" / f"{config}.json").read_text())
        assert not [s for s in _strings(content) if s.startswith("$")], f"{config}.json has $ expressions"
        assert content["network_def"]["_target_"] == "monai.networks.nets.UNet"
        # MONAI alone runs it: no callable of ours is left (Clara's `lambda x: None` became iteration_log=false).
        assert "clara_hydra" not in json.dumps(content)
        # It travels: no path names the folder it was exported to; the bundle's files hang off bundle_root.
        assert content["bundle_root"] == "."
        assert "spleen_best" not in json.dumps(content)
        assert content["MMAR_CKPT_DIR"] == under_root("models")
        # The data stay user-given: DATA_ROOT the trial's folder, the datalist built on it (--DATA_ROOT moves both).
        assert content["DATA_ROOT"] == str(sweep.data)
        assert content["DATASET_JSON"]["format_string"] == "{DATA_ROOT}/dataset.json"
    train = json.loads((root / "configs" / "train.json").read_text())
    assert train["train"]["optimizer"]["lr"] == "@learning_rate"  # Clara's variables stay overridable ids
    assert train["run"] == [{"_target_": "monai.engines.SupervisedTrainer.run", "self": "@train::trainer"}]
    saved = torch.load(root / "models" / "model.pt", weights_only=True)
    original = load_weights(find_checkpoint(sweep.dir / str(select_trial(sweep.dir).number)))
    assert saved.keys() == original.keys()
    assert all(torch.equal(saved[k], original[k]) for k in saved)


def test_metadata_is_valid_against_monais_schema(bundle: BundleExport, tmp_path: Path) -> None:
    meta = json.loads((bundle.root / "configs" / "metadata.json").read_text())
    validate_metadata(meta)
    assert meta["network_data_format"]["inputs"]["image"]["num_channels"] == 1
    assert meta["network_data_format"]["outputs"]["pred"]["num_channels"] == 2  # the network's scores
    # the class names are the demo datalist's Decathlon "labels"
    assert meta["network_data_format"]["outputs"]["pred"]["channel_def"] == {"0": "background", "1": "sphere"}
    label_map = meta["network_data_format"]["post_processed_outputs"]["pred"]  # what the configs save
    assert (label_map["num_channels"], label_map["dtype"], label_map["value_range"]) == (1, "uint8", [0.0, 1.0])
    broken = {k: v for k, v in meta.items() if k != "authors"}
    with pytest.raises(ExportError, match="'authors' is a required property"):
        validate_metadata(broken)
    assert load_schema()["required"][0] == "schema"
    # MONAI's own check, offline: the schema file is already where it would download it.
    schema = tmp_path / SCHEMA_FILE.name
    shutil.copy(SCHEMA_FILE, schema)
    proc = run(
        [
            sys.executable,
            "-m",
            "monai.bundle",
            "verify_metadata",
            "--meta_file",
            str(bundle.root / "configs" / "metadata.json"),
            "--filepath",
            str(schema),
        ],
        cwd=tmp_path,
    )
    assert "metadata is verified with no error" in proc.stdout + proc.stderr


def bundle_run(root: Path, config: str, cwd: Path | None = None, *extra: str) -> subprocess.CompletedProcess[str]:
    """``python -m monai.bundle run`` of one of the bundle's configs as its docs say: in the bundle's folder
    (``cwd=None``) with nothing else, or from ``cwd`` with ``extra`` arguments (``--bundle_root ...``)."""
    where = cwd or root
    config_file = f"configs/{config}" if cwd is None else str(root / "configs" / config)
    return run([sys.executable, "-m", "monai.bundle", "run", "--config_file", config_file, *extra], cwd=where)


def _dice(seg: np.ndarray, truth: np.ndarray) -> float:
    """Dice of class 1, as the trial's MeanDice(include_background=False) on two classes."""
    both = np.logical_and(seg == 1, truth == 1).sum()
    return float(2 * both / ((seg == 1).sum() + (truth == 1).sum()))


def _validation_case(data: Path) -> tuple[Path, Path]:
    entry = json.loads((data / "dataset.json").read_text())["validation"][0]
    return data / entry["image"], data / entry["label"]


def _check_label_map(seg_file: Path, image: Path, label: Path, value: float) -> None:
    """The label map: the source image's grid and affine, one channel of uint8 class indices, the trial's Dice."""
    seg, source = nib.load(seg_file), nib.load(image)
    assert seg.shape == source.shape  # a 3-D volume: the channel is squeezed, as viewers expect
    assert seg.get_data_dtype() == np.uint8
    np.testing.assert_allclose(seg.affine, source.affine, atol=1e-5)
    loaded = LoadImage(image_only=True, ensure_channel_first=True)(str(seg_file))
    assert tuple(loaded.shape) == (1, *source.shape)
    values = np.asarray(seg.dataobj)
    assert set(np.unique(values)) <= {0, 1}
    # The validation Dice was measured on the cropped (foreground) grid the network saw; the label map is that
    # prediction padded back with background (the inverse of CropForegroundd: no resampling in this pipeline),
    # and no label voxel lies outside the foreground box. So both Dice are the same ratio of voxel counts; 1e-6
    # only allows for MONAI's float32 arithmetic. (A pipeline that resamples, e.g. Spacingd, would differ by
    # the nearest-neighbour inversion at the object's edge.)
    assert _dice(values, np.asarray(nib.load(label).dataobj)) == pytest.approx(value, abs=1e-6)


@pytest.fixture(scope="module")
def evaluated(bundle: BundleExport) -> str:
    """evaluate.json run once in the moved bundle's folder with no override (bundle_root "." is that folder):
    its output; its label maps are in the bundle's eval/."""
    proc = bundle_run(bundle.root, "evaluate.json")
    return proc.stdout + proc.stderr


def test_evaluate_reproduces_the_trials_value(bundle: BundleExport, sweep: Sweep, evaluated: str) -> None:
    root = bundle.root
    values = KEY_METRIC_LINE.findall(evaluated)
    trial_value = select_trial(sweep.dir).value
    assert trial_value is not None
    # Same weights, same validation pipeline and data, deterministic inference: the value the trial reported.
    assert values and float(values[-1]) == pytest.approx(trial_value, abs=1e-6)
    # configs/logging.conf is found next to the config (MONAI warns "Default logging file ... does not exist" else)
    assert "Setting logging properties based on config: configs/logging.conf" in evaluated
    assert "does not exist, skipping logging" not in evaluated
    image, label = _validation_case(sweep.data)
    assert sorted(p.name for p in (root / "eval").iterdir()) == [image.name.replace(".nii.gz", "_seg.nii.gz")]
    _check_label_map(root / "eval" / image.name.replace(".nii.gz", "_seg.nii.gz"), image, label, trial_value)


def test_inference_needs_no_label(bundle: BundleExport, sweep: Sweep, evaluated: str, tmp_path: Path) -> None:
    """inference.json on a folder with no label file at all: the label map evaluate.json wrote for that image,
    voxel for voxel, in the source image's geometry, and no metric."""
    image, _ = _validation_case(sweep.data)
    data = tmp_path / "no_labels"  # the demo data without its labelsTr/ folder
    shutil.copytree(sweep.data, data, ignore=shutil.ignore_patterns("labelsTr"))
    relative = image.relative_to(sweep.data).as_posix()
    # The Decathlon's test list: plain paths, read by monai.data.load_decathlon_datalist as {"image": ...}.
    (data / "datalist.json").write_text(json.dumps({"test": [relative]}))
    out = tmp_path / "predictions"
    args = ("--datalist_file", str(data / "datalist.json"), "--datalist_key", "test", "--dataset_dir", str(data))
    proc = bundle_run(bundle.root, "inference.json", None, *args, "--output_dir", str(out))
    assert "Key metric" not in proc.stdout + proc.stderr
    seg_name = image.name.replace(".nii.gz", "_seg.nii.gz")
    assert [p.name for p in out.iterdir()] == [seg_name]
    seg, source, evaluated_seg = nib.load(out / seg_name), nib.load(image), nib.load(bundle.root / "eval" / seg_name)
    assert seg.shape == source.shape
    assert seg.get_data_dtype() == np.uint8
    np.testing.assert_allclose(seg.affine, source.affine, atol=1e-5)
    assert np.array_equal(np.asarray(seg.dataobj), np.asarray(evaluated_seg.dataobj))
    # The exported default, the trial's validation list, names label files: inference.json never opens them.
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle.root / "configs" / "inference.json"))
    parser.update({"DATA_ROOT": str(data)})
    item = parser.get_parsed_content("infer::dataset")[0]
    assert item["label"] == f"labelsTr/{image.name}"  # a path no transform reads (the file does not exist)
    assert item["image"].shape[0] == 1 and item["image"].meta["filename_or_obj"] == str(data / relative)


def _moved_data(data: Path, to: Path, margin: int = 4) -> None:
    """The demo data in another folder, the validation volume with an oblique-free but non-trivial affine
    (flipped, anisotropic, offset) and a margin of air around it: the pre-transforms crop the margin off, so the
    network sees the same voxels as in the trial, and only the inverse puts the prediction back in place."""
    shutil.copytree(data, to)
    image, label = _validation_case(to)
    affine = np.array([[-0.8, 0, 0, 12.5], [0, 1.2, 0, -30.0], [0, 0, 2.5, 7.0], [0, 0, 0, 1]])
    affine = affine @ np.array([[1, 0, 0, -margin], [0, 1, 0, -margin], [0, 0, 1, -margin], [0, 0, 0, 1]])
    for path, fill in ((image, -10000), (label, 0)):
        volume = np.asarray(nib.load(path).dataobj)
        padded = np.pad(volume, margin, constant_values=fill).astype(volume.dtype)
        nib.save(nib.Nifti1Image(padded, affine), path)


def test_label_maps_from_any_folder_in_the_source_geometry(bundle: BundleExport, sweep: Sweep, tmp_path: Path) -> None:
    data = tmp_path / "other_data"
    _moved_data(sweep.data, data)
    out = tmp_path / "predictions"
    # From an unrelated folder: --bundle_root names the bundle, --DATA_ROOT the data (the datalist follows it).
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    args = ("--bundle_root", str(bundle.root), "--DATA_ROOT", str(data), "--output_dir", str(out))
    proc = bundle_run(bundle.root, "evaluate.json", cwd, *args)
    trial_value = select_trial(sweep.dir).value
    assert trial_value is not None
    values = KEY_METRIC_LINE.findall(proc.stdout + proc.stderr)
    assert values and float(values[-1]) == pytest.approx(trial_value, abs=1e-6)
    image, label = _validation_case(data)
    assert nib.load(image).shape == (56, 56, 56)
    _check_label_map(out / image.name.replace(".nii.gz", "_seg.nii.gz"), image, label, trial_value)


def test_verify_net_in_out(bundle: BundleExport) -> None:
    root = bundle.root
    verify = [sys.executable, "-m", "monai.bundle", "verify_net_in_out", "network_def"]
    verify += ["--meta_file", "configs/metadata.json", "--config_file", "configs/inference.json"]
    proc = run(verify, cwd=root)
    assert "data shape of network is verified with no error" in proc.stdout + proc.stderr
    # The check can fail: metadata that promise another number of output channels are refused (MONAI's own
    # function, in this process: a second CLI run only adds MONAI's start-up time).
    from monai.bundle import verify_net_in_out

    with pytest.raises(ValueError, match="output channel number `2` doesn't match: `3`"):
        verify_net_in_out(
            "network_def",
            meta_file=str(root / "configs" / "metadata.json"),
            config_file=str(root / "configs" / "inference.json"),
            device="cpu",
            **{"_meta_#network_data_format#outputs#pred#num_channels": 3},
        )


def test_paths_resolve_in_monai_from_the_ids_they_are_built_on(bundle: BundleExport) -> None:
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle.root / "configs" / "inference.json"))
    parser.update({"bundle_root": "/x/b", "DATA_ROOT": "/data/{odd}", "braces": under_root("a{b}")})
    assert parser.get_parsed_content("ckpt_path") == "/x/b/models/model.pt"
    assert parser.get_parsed_content("output_dir") == "/x/b/eval"
    assert parser.get_parsed_content("DATASET_JSON") == "/data/{odd}/dataset.json"
    assert parser.get_parsed_content("braces") == "/x/b/a{b}"


def test_monai_trains_the_bundle_and_makes_torchscript_of_it(bundle: BundleExport, tmp_path: Path) -> None:
    root = bundle.root
    before = set((root / "models").iterdir())
    proc = bundle_run(root, "train.json")
    assert "Epoch: 1/1" in proc.stdout + proc.stderr
    assert any(p.suffix == ".pt" for p in set((root / "models").iterdir()) - before), "no checkpoint written"
    ts = root / "models" / "model.ts"
    run(
        [
            sys.executable,
            "-m",
            "monai.bundle",
            "ckpt_export",
            "network_def",
            "--filepath",
            str(ts),
            "--ckpt_file",
            str(root / "models" / "model.pt"),
            "--meta_file",
            str(root / "configs" / "metadata.json"),
            "--config_file",
            str(root / "configs" / "inference.json"),
        ],
        cwd=tmp_path,
    )
    scripted = torch.jit.load(str(ts))
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(root / "models" / "model.pt", weights_only=True))
    network.eval()
    x = torch.rand(1, 1, 32, 32, 32)
    with torch.no_grad():
        assert torch.allclose(scripted(x), network(x), atol=1e-5)


def test_refusals(bundle: BundleExport, sweep: Sweep, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="is not empty"):
        export_bundle(select_trial(sweep.dir), bundle.root)
    (tmp_path / "job" / "models").mkdir(parents=True)
    with pytest.raises(ExportError, match="holds no checkpoint"):
        find_checkpoint(tmp_path / "job")


def test_the_command_line_says_how_to_run_it(sweep: Sweep, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from clara_hydra.cli import main

    assert main(["export", str(sweep.dir), "--to", "bundle", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert f"use it (in {tmp_path / 'b'}/, or add --bundle_root FOLDER elsewhere)" in err
    assert "python -m monai.bundle run --config_file configs/inference.json" in err
    assert "--datalist_file LIST.json --datalist_key test --dataset_dir IMAGES/  (no label)" in err
    assert "python -m monai.bundle run --config_file configs/evaluate.json" in err
    assert main(["export", str(sweep.dir), "--to", "bundle", str(tmp_path / "b")]) == 2  # compact: not empty
    assert "is not empty" in capsys.readouterr().err
