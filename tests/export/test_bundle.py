"""``--to bundle``: the 1-epoch round trip through MONAI's own bundle tools (run, ckpt_export, verify_metadata)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from clara_hydra.errors import ExportError
from clara_hydra.export.bundle import BundleExport, export_bundle
from clara_hydra.export.checkpoint import find_checkpoint, load_weights
from clara_hydra.export.metadata import SCHEMA_FILE, load_schema, validate_metadata
from clara_hydra.export.select import select_trial
from tests.export.conftest import Sweep, run

pytestmark = pytest.mark.slow
KEY_METRIC_LINE = re.compile(r"Key metric: val_mean_dice best value: ([0-9.e-]+)")


@pytest.fixture(scope="module")
def bundle(sweep: Sweep, tmp_path_factory: pytest.TempPathFactory) -> BundleExport:
    return export_bundle(select_trial(sweep.dir), tmp_path_factory.mktemp("bundle") / "spleen_best")


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
    for name in ("configs/train.json", "configs/inference.json", "configs/metadata.json", "models/model.pt"):
        assert (root / name).is_file(), name
    assert "Apache License" in (root / "LICENSE").read_text()
    assert "python -m monai.bundle run --config_file configs/train.json" in (root / "docs" / "README.md").read_text()
    for config in ("train", "inference"):
        content = json.loads((root / "configs" / f"{config}.json").read_text())
        assert not [s for s in _strings(content) if s.startswith("$")], f"{config}.json has $ expressions"
        assert content["network_def"]["_target_"] == "monai.networks.nets.UNet"
        # MONAI alone runs it: no callable of ours is left (Clara's `lambda x: None` became iteration_log=false).
        assert "clara_hydra" not in json.dumps(content)
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
    assert meta["network_data_format"]["outputs"]["pred"]["num_channels"] == 2
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


def bundle_run(root: Path, config: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m monai.bundle run`` of one of the bundle's configs, as a MONAI user runs it."""
    meta = str(root / "configs" / "metadata.json")
    return run(
        [
            sys.executable,
            "-m",
            "monai.bundle",
            "run",
            "--config_file",
            str(root / "configs" / config),
            "--meta_file",
            meta,
        ],
        cwd=cwd,
    )


def test_inference_reproduces_the_trials_value(bundle: BundleExport, sweep: Sweep, tmp_path: Path) -> None:
    root = bundle.root
    proc = bundle_run(root, "inference.json", tmp_path)
    values = KEY_METRIC_LINE.findall(proc.stdout + proc.stderr)
    # Same weights, same validation pipeline and data, deterministic inference: the value the trial reported.
    assert values and float(values[-1]) == pytest.approx(select_trial(sweep.dir).value, abs=1e-6)
    assert list((root / "eval").glob("*_seg.nii.gz"))


def test_monai_trains_the_bundle_and_makes_torchscript_of_it(bundle: BundleExport, tmp_path: Path) -> None:
    root = bundle.root
    before = set((root / "models").iterdir())
    proc = bundle_run(root, "train.json", tmp_path)
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
