"""The converted seed example (conf/) builds every object, with one model shared everywhere."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig, OmegaConf

from clara_hydra.runtime.build import Builder
from clara_hydra.runtime.device import DevicePolicy

Composer = Callable[..., DictConfig]


def _of_type(objects: list[Any], name: str) -> Any:
    (found,) = [o for o in objects if type(o).__name__ == name]
    return found


def test_seed_builds_with_one_model_everywhere(
    compose_cfg: Composer, omegaconf_inside: Callable[[Any], list[str]]
) -> None:
    builder = Builder(compose_cfg(), kwargs_policy=DevicePolicy(cuda=False).adjust)
    built = builder.build_slots()
    model = built["train.model"]
    trainer, evaluator = built["train.trainer"], built["validate.evaluator"]
    assert trainer.network is model and evaluator.network is model
    params = built["train.optimizer"].param_groups[0]["params"]
    assert len(params) == len(list(model.parameters()))
    assert all(p is q for p, q in zip(params, model.parameters(), strict=True))
    assert trainer.optimizer is built["train.optimizer"] and built["train.lr_scheduler"].optimizer is trainer.optimizer
    train_saver = _of_type(built["train.handlers"], "CheckpointSaver")
    val_saver = _of_type(built["validate.handlers"], "CheckpointSaver")
    assert train_saver.save_dict["model"] is model and val_saver.save_dict["model"] is model
    assert _of_type(built["train.handlers"], "ValidationHandler").validator is evaluator
    # Clara's "@conf" reached the checkpoint as the plain resolved config.
    conf = train_saver.save_dict["train_conf"].state_dict()
    assert type(conf) is dict and conf["train"]["model"]["channels"] == [4, 8, 16]
    # CUDA configs run on the CPU; AMP is a CUDA feature.
    assert str(trainer.state.device if hasattr(trainer.state, "device") else trainer.device) == "cpu"
    assert trainer.amp is False and evaluator.amp is False
    assert type(built["train.loss"]).__name__ == "FocalLoss"  # Clara's default point: mySearchLoss1=true
    for path in ("train.model", "train.pre_transforms", "validate.inferer", "train.dataloader"):
        assert omegaconf_inside(built[path]) == [], path


def test_overrides_reach_the_objects(compose_cfg: Composer) -> None:
    cfg = compose_cfg("loss=dice_loss", "learning_rate=0.0005", "myProb=0.3", "a_min_a_max=m60_150")
    builder = Builder(cfg, kwargs_policy=DevicePolicy(cuda=False).adjust)
    assert type(builder.build("train.loss")).__name__ == "DiceLoss"
    assert builder.build("train.optimizer").param_groups[0]["lr"] == 0.0005
    pre = builder.build("train.pre_transforms").transforms
    probs = [t.prob for t in pre if type(t).__name__ in ("RandShiftIntensityd", "RandGaussianNoised")]
    assert probs == [0.3, 0.3]
    scaler = next(t for t in pre if type(t).__name__ == "ScaleIntensityRanged").scaler
    assert (scaler.a_min, scaler.a_max) == (-60, 150)


def test_quickstart_composes_to_cpu_sizes(compose_cfg: Composer, conf_dir: Path) -> None:
    # The converter lists `optional experiment: null` in the defaults, so the README's override works as typed.
    assert "experiment: null" in (conf_dir / "config.yaml").read_text()
    cfg = compose_cfg("experiment=quickstart", tiny=False)
    assert cfg.INPUT_CHANNELS == 1 and cfg.OUTPUT_CHANNELS == 2 and cfg.TRAIN_DATALIST_KEY == "training"
    assert OmegaConf.to_container(cfg.train.pre_transforms.rand_crop_by_pos_neg_labeld.spatial_size) == [32, 32, 32]
    assert cfg.train.dataloader.num_workers == 0 and cfg.validate.dataloader.num_workers == 0


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_device_policy_warns_once(device: str, caplog: pytest.LogCaptureFixture) -> None:
    policy = DevicePolicy(cuda=False)
    assert policy.adjust("a", None, {"device": device, "amp": True}) == {"device": "cpu", "amp": False}
    assert policy.adjust("b", None, {"device": device}) == {"device": "cpu"}
    assert sum("CUDA is not available" in r.message for r in caplog.records) == 1
    from monai.engines import SupervisedEvaluator

    assert policy.adjust("c", SupervisedEvaluator, {})["device"] == "cpu"  # Clara engines chose it themselves
    assert DevicePolicy(cuda=True).adjust("a", None, {"device": device, "amp": True}) == {"device": device, "amp": True}
