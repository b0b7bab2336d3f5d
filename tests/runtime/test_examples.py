"""Every 4.1/4.0 Clara example, as converted (tests/golden), builds all its objects on the synthetic set."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir

from clara_hydra.runtime.build import Builder, slot_paths
from clara_hydra.runtime.device import DevicePolicy

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
EXAMPLES = sorted(p.name for p in GOLDEN.glob("*") if re.search(r"_v4[01]_|^seed_", p.name)) if GOLDEN.is_dir() else []


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint as `python train.py` writes it: the network's weights plus the training config."""
    import torch

    conf: dict[str, Any] = {
        "train": {
            "model": {
                "_target_": "monai.networks.nets.UNet",
                "spatial_dims": 3,
                "in_channels": 1,
                "out_channels": 2,
                "channels": [4, 8],
                "strides": [2],
            }
        }
    }
    from omegaconf import OmegaConf

    model = Builder(OmegaConf.create(conf)).build("train.model")
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    torch.save({"model": model.state_dict(), "train_conf": conf}, path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES)
def test_example_builds_every_slot(
    example: str, demo_root: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = {
        "DATA_ROOT": demo_root,
        "DATASET_JSON": demo_root / "dataset.json",
        "INPUT_CHANNELS": 1,
        "OUTPUT_CHANNELS": 2,
        "TRAIN_DATALIST_KEY": "training",
        "MMAR_CKPT": checkpoint,
        # Validation configs: load the network from our checkpoint (no TorchScript file here).
        "dont_load_ts_model": "true",
        "dont_load_ckpt_model": "false",
    }
    with initialize_config_dir(config_dir=str(GOLDEN / example), version_base=None):
        cfg = compose("config", overrides=[f"++{k}={v}" for k, v in data.items()])
    builder = Builder(cfg, kwargs_policy=DevicePolicy(cuda=False).adjust)
    built = builder.build_slots()
    assert set(built) == set(slot_paths(cfg))
    evaluator = built.get("validate.evaluator", built.get("evaluator"))
    assert type(evaluator).__name__ == "SupervisedEvaluator"
    model = built.get("train.model", built.get("model"))
    assert evaluator.network is model
    if "train.trainer" in built:
        assert built["train.trainer"].network is model
