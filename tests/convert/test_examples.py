"""The converter on every real Clara example: golden trees, Hydra composition of every option, the seed's space.

A golden mismatch prints a unified diff and the one command that regenerates the goldens after a deliberate change.
"""

from __future__ import annotations

import difflib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from clara_hydra.convert import convert_path, write_tree

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("regen_goldens", ROOT / "tools" / "regen_goldens.py")
assert _spec and _spec.loader
regen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(regen)

EXAMPLES = regen.training_examples()
REGEN = "python tools/regen_goldens.py"


def _diff(expected: str, actual: str, name: str) -> str:
    lines = difflib.unified_diff(
        expected.splitlines(), actual.splitlines(), f"golden/{name}", f"converted/{name}", lineterm=""
    )
    return "\n".join(list(lines)[:60])


def _assert_tree(expected_dir: Path, files: dict[str, str]) -> None:
    on_disk = {str(p.relative_to(expected_dir)): p.read_text() for p in expected_dir.rglob("*") if p.is_file()}
    on_disk = {k: v for k, v in on_disk.items() if not k.startswith("experiment/")}
    assert sorted(on_disk) == sorted(files), f"file sets differ; regenerate with `{REGEN}`"
    for name, text in files.items():
        assert on_disk[name] == text, f"{name} drifted; regenerate with `{REGEN}`:\n{_diff(on_disk[name], text, name)}"


@pytest.mark.parametrize("source", EXAMPLES, ids=lambda p: p.stem[:40])
def test_golden_tree(source: Path) -> None:
    _assert_tree(ROOT / "tests" / "golden" / source.stem, regen.golden_files(source))


def test_repo_conf_is_the_converted_seed() -> None:
    _assert_tree(ROOT / "conf", regen.conf_files())


def _compose(conf_dir: Path, overrides: list[str]) -> Any:
    import clara_hydra.resolvers  # noqa: F401  (the ${clara.*} resolvers)

    with initialize_config_dir(config_dir=str(conf_dir), version_base=None):
        return compose("config", overrides=overrides)


def _options(conf_dir: Path) -> list[str]:
    return [f"{p.parent.name}={p.stem}" for p in sorted(conf_dir.glob("*/*.yaml")) if p.parent.name != "experiment"]


@pytest.mark.parametrize(
    "source", [p for p in EXAMPLES if "_v3x_" not in p.name and "NVFlare" not in p.name], ids=lambda p: p.stem[:40]
)
def test_every_4x_example_composes_with_every_option(source: Path, tmp_path: Path) -> None:
    conv = convert_path(source)
    write_tree(conv.files, tmp_path)
    base = _compose(tmp_path, [])
    assert "hydra" not in base and base.get("train", base).keys()
    for option in _options(tmp_path):
        cfg = _compose(tmp_path, [option])
        assert OmegaConf.is_config(cfg)


def test_3x_examples_convert_their_search_space_and_report_gaps() -> None:
    for source in [p for p in EXAMPLES if "_v3x_" in p.name or "NVFlare" in p.name]:
        conv = convert_path(source)
        assert conv.config.era.value == "3.x", source.name
        if "trn_base" not in source.name:
            assert conv.dimensions >= 1, source.name
            assert "params:" in conv.files["config.yaml"]
        if conv.unconverted:
            assert "Not carried over" in conv.report
        for rel, text in conv.files.items():  # `_target_: ???` nodes and all: the YAML reads back
            if rel.endswith(".yaml"):
                assert OmegaConf.create(text) is not None, (source.name, rel)


# -- the seed example: issue 2's acceptance ------------------------------------------------------------------------
SEED_PARAMS = {
    "learning_rate": "interval(0.0001, 0.001)",
    "loss": "choice(focal_loss, dice_loss)",
    "channels": "choice([16, 32, 64, 128, 256], [8, 16, 32, 64, 128])",
    "num_res_units": "choice(2, 1)",
    "a_min_a_max": "choice(m50_100, m60_150)",
    "myProb": "interval(0, 1)",
}


@pytest.fixture(scope="module")
def seed_cfg_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("seed")
    write_tree(regen.conf_files(), out)
    return out


def test_seed_search_space(seed_cfg_dir: Path) -> None:
    cfg = OmegaConf.load(seed_cfg_dir / "config.yaml")
    assert dict(cfg.hydra.sweeper.params) == SEED_PARAMS
    assert cfg.hydra.sweeper.n_trials == 8 and cfg.hydra.sweeper.keep_best == 30


def test_seed_defaults_are_clara_unsearched_config(seed_cfg_dir: Path) -> None:
    cfg = _compose(seed_cfg_dir, [])
    t = OmegaConf.to_container(cfg.train, resolve=True)
    assert t["loss"]["_target_"] == "monai.losses.FocalLoss"  # SPEC §4.6: first one-hot choice disables Dice
    assert t["optimizer"]["lr"] == 0.0002
    assert t["model"]["channels"] == [16, 32, 64, 128, 256] and t["model"]["num_res_units"] == 2
    scale = t["pre_transforms"]["scale_intensity_ranged"]
    assert (scale["a_min"], scale["a_max"]) == (-57, 164)
    assert t["pre_transforms"]["rand_shift_intensityd"]["prob"] == 0.5
    assert t["pre_transforms"]["rand_gaussian_noised"]["prob"] == 0.5
    assert t["model"]["spatial_dims"] == 3 and "dimensions" not in t["model"]


# Every point of the discrete part of the space, with float values at both bounds: the arguments Clara would use.
POINTS = [
    (loss, ch, nru, amin_amax, lr, prob)
    for loss in ("dice_loss", "focal_loss")
    for ch in ([16, 32, 64, 128, 256], [8, 16, 32, 64, 128])
    for nru in (2, 1)
    for amin_amax in ((-50, 100), (-60, 150))
    for lr, prob in ((0.0001, 0.0), (0.001, 1.0))
]


@pytest.mark.parametrize("point", POINTS)
def test_seed_every_point_composes_to_clara_arguments(seed_cfg_dir: Path, point: tuple[Any, ...]) -> None:
    loss, ch, nru, (amin, amax), lr, prob = point
    overrides = [
        f"loss={loss}",
        f"channels=[{','.join(map(str, ch))}]",
        f"num_res_units={nru}",
        f"a_min_a_max={regen_option(amin, amax)}",
        f"learning_rate={lr}",
        f"myProb={prob}",
    ]
    cfg = OmegaConf.to_container(_compose(seed_cfg_dir, overrides), resolve=True)
    train, validate = cfg["train"], cfg["validate"]
    assert (
        train["loss"]["_target_"]
        == {"dice_loss": "monai.losses.DiceLoss", "focal_loss": "monai.losses.FocalLoss"}[loss]
    )
    assert cfg["mySearchLoss1"] is (loss == "focal_loss") and cfg["mySearchLoss2"] is (loss == "dice_loss")
    assert train["model"]["channels"] == ch and train["model"]["num_res_units"] == nru
    for section in (train, validate):
        scale = section["pre_transforms"]["scale_intensity_ranged"]
        assert (scale["a_min"], scale["a_max"]) == (amin, amax)
    assert train["optimizer"]["lr"] == lr
    assert train["pre_transforms"]["rand_shift_intensityd"]["prob"] == prob
    assert train["pre_transforms"]["rand_gaussian_noised"]["prob"] == prob


def regen_option(amin: int, amax: int) -> str:
    return f"m{abs(amin)}_{amax}"


def test_train_py_resolves_alias_at_both_sites() -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "train.py", "--cfg", "job", "--resolve", "myProb=0.3", "learning_rate=0.0005"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    job = OmegaConf.create(out.stdout)
    assert job.train.pre_transforms.rand_shift_intensityd.prob == 0.3
    assert job.train.pre_transforms.rand_gaussian_noised.prob == 0.3
    assert job.train.optimizer.lr == 0.0005


def test_example_copies_match_the_shared_originals() -> None:
    # tests/data/clara_examples is a verbatim copy of ../shared/clara/examples (provenance in its README); when the
    # shared folder is present, the copy must not drift from it.
    shared = ROOT.parent / "shared" / "clara" / "examples"
    if not shared.is_dir():
        pytest.skip("../shared/clara/examples is not next to this checkout")
    for original in shared.iterdir():
        copy = ROOT / "tests" / "data" / "clara_examples" / original.name
        assert copy.read_bytes() == original.read_bytes(), original.name
