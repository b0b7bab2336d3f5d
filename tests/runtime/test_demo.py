"""The synthetic data set: deterministic, MSD-shaped, and a task where Dice beats the trivial baseline."""

from __future__ import annotations

import json
from pathlib import Path

from clara_hydra.runtime.demo import all_foreground_dice, make_demo_data


def test_demo_data_is_deterministic_and_msd_shaped(tmp_path: Path) -> None:
    a = make_demo_data(tmp_path / "a", n_train=2, n_val=1, size=24, seed=3)
    b = make_demo_data(tmp_path / "b", n_train=2, n_val=1, size=24, seed=3)
    meta = json.loads((a / "dataset.json").read_text())
    assert len(meta["training"]) == 2 and len(meta["validation"]) == 1
    for entry in meta["training"] + meta["validation"]:
        for key in ("image", "label"):
            assert (a / entry[key]).read_bytes() == (b / entry[key]).read_bytes()
    assert not list(tmp_path.glob(".*tmp*")), "temporary folders are cleaned up"


def test_all_foreground_baseline_is_low(demo_root: Path) -> None:
    # Predicting "sphere" everywhere scores 2|G|/(|G|+N); spheres fill a few % of the volume, so any
    # trained model worth the name must beat ~0.1 by far (the quickstart reaches ~0.9).
    assert 0.0 < all_foreground_dice(demo_root) < 0.15
