"""Fixtures of the runtime tests: the hand-written seed conversion, a tiny synthetic data set, composition."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, ListConfig

import clara_hydra.runtime  # noqa: F401  (registers the resolvers)
from clara_hydra.runtime.demo import make_demo_data

REPO = Path(__file__).resolve().parents[2]
SEED_CONF = Path(__file__).parent / "fixtures" / "seed_conf"

# CPU-tiny version of the seed example: 32^3 volumes, one crop each, a 3-level UNet.
TINY = [
    "INPUT_CHANNELS=1",
    "OUTPUT_CHANNELS=2",
    "TRAIN_DATALIST_KEY=training",
    "epochs=1",
    "channels=[4,8,16]",
    "train.model.strides=[2,2]",
    "num_res_units=1",
    "train.pre_transforms.rand_crop_by_pos_neg_labeld.spatial_size=[16,16,16]",
    "train.pre_transforms.rand_crop_by_pos_neg_labeld.num_samples=1",
    "train.dataset.num_workers=0",
    "train.dataloader.num_workers=0",
    "validate.dataset.num_workers=0",
    "validate.dataloader.num_workers=0",
    "validate.inferer.roi_size=[32,32,32]",
    "validate.inferer.sw_batch_size=1",
]


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic MSD-style set: 2 training and 1 validation volume of 32^3."""
    return make_demo_data(tmp_path_factory.mktemp("demo") / "demo", n_train=2, n_val=1, size=32, seed=1)


@pytest.fixture()
def conf_dir(tmp_path: Path) -> Path:
    """A copy of the seed conversion with the repo's experiment group, so tests can add files to it."""
    target = tmp_path / "conf"
    shutil.copytree(SEED_CONF, target)
    shutil.copytree(REPO / "conf" / "experiment", target / "experiment")
    return target


Composer = Callable[..., DictConfig]


@pytest.fixture()
def compose_cfg(conf_dir: Path, demo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Composer]:
    """``compose_cfg(*overrides, tiny=True, data=True)``: compose the seed conversion (cwd = tmp_path)."""
    monkeypatch.chdir(tmp_path)

    def _compose(*overrides: str, tiny: bool = True, data: bool = True, config_dir: Path | None = None) -> DictConfig:
        extra: Sequence[str] = []
        if data:
            extra = [f"DATA_ROOT={demo_root}", f"DATASET_JSON={demo_root / 'dataset.json'}"]
        with initialize_config_dir(config_dir=str(config_dir or conf_dir), version_base=None):
            return compose("config", overrides=[*(TINY if tiny else []), *extra, *overrides])

    yield _compose


def _omegaconf_inside(obj: Any, depth: int = 0, seen: set[int] | None = None) -> list[str]:
    """Paths of OmegaConf containers reachable from ``obj`` through attributes, dicts, lists and tuples."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 6:
        return []
    seen.add(id(obj))
    if isinstance(obj, DictConfig | ListConfig):
        return [type(obj).__name__]
    children: list[tuple[str, Any]] = []
    if isinstance(obj, dict):
        children = [(str(k), v) for k, v in obj.items()]
    elif isinstance(obj, list | tuple):
        children = [(str(i), v) for i, v in enumerate(obj)]
    elif hasattr(obj, "__dict__") and not isinstance(obj, type) and type(obj).__module__.split(".")[0] != "torch":
        children = list(vars(obj).items())
    found = []
    for name, value in children:
        found += [f"{name}.{p}" for p in _omegaconf_inside(value, depth + 1, seen)]
    return found


@pytest.fixture()
def omegaconf_inside() -> Callable[[Any], list[str]]:
    """A function listing the OmegaConf containers reachable from an object (should be none)."""
    return _omegaconf_inside
