"""The pieces of the sweep-speed benchmark (tools/bench/): behaviour only, no timing."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def bench() -> Iterator[ModuleType]:
    sys.path.insert(0, str(REPO / "tools" / "bench"))
    try:
        yield importlib.import_module("sweep_speed")
    finally:
        sys.path.remove(str(REPO / "tools" / "bench"))


def test_bench_conf_puts_spacing_in_the_deterministic_prefix(bench: ModuleType, tmp_path: Path) -> None:
    conf = bench.bench_conf(tmp_path / "conf")
    with initialize_config_dir(config_dir=str(conf), version_base=None):
        cfg = compose("config", overrides=["experiment=bench"])
    for section in ("train", "validate"):
        names = list(cfg[section].pre_transforms)
        assert names.index("spacingd") == names.index("ensure_channel_firstd") + 1
    assert "pruner" not in OmegaConf.to_container(cfg)  # experiment=bench leaves the pruner to each sweep


def test_plain_params_read_a_jobs_composed_config(
    bench: ModuleType, tmp_path: Path, compose_cfg: Callable[..., DictConfig]
) -> None:
    conf = bench.bench_conf(tmp_path / "conf")
    job = tmp_path / "job"
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(
        compose_cfg("a_min_a_max=m50_100", "loss=dice_loss", "learning_rate=0.0007", config_dir=conf),
        job / ".hydra/config.yaml",
    )
    p = bench.plain_params(job, seed=0, out_dir=tmp_path / "out")
    assert (p["scale"]["a_min"], p["scale"]["a_max"], p["lr"]) == (-50, 100, 0.0007)
    assert p["loss"]["_target_"] == "monai.losses.DiceLoss" and p["epochs"] == 1
    assert p["spacingd"]["pixdim"] == [2.0, 2.0, 2.0]
    assert p["model"]["channels"] == [4, 8, 16] and "_target_" not in p["model"]


def test_summarize_computes_the_three_ratios(bench: ModuleType) -> None:
    c = [{"number": i, "state": "COMPLETE", "value": v, "epochs": 5} for i, v in enumerate([0.5, 0.8])]
    pruned = [{"number": 0, "state": "COMPLETE", "value": 0.5, "epochs": 5}, {"state": "PRUNED", "epochs": 1}]
    r = bench.summarize(60.0, 100.0, c, {"train_s": 10.0, "load_s": 2.0}, {"number": 1, "seconds": 10.2}, pruned)
    assert r["overhead_ratio"] == pytest.approx(1.02) and r["sweep_ratio"] == pytest.approx(0.6)
    assert (r["epochs_no_pruner"], r["epochs_pruner"], r["pruned_trials"]) == (10, 6, 1)
    assert r["epochs_saved"] == pytest.approx(0.4) and r["best_no_pruner"] == 0.8 and r["best_pruner"] == 0.5
