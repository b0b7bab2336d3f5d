"""Resuming a study with other fixed overrides (``epochs=2``) is refused, naming the difference (real storage)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from clara_hydra.errors import SweepError
from clara_hydra.sweep_record import StudyAttr
from clara_hydra.sweeper.fixed_overrides import check_fixed_overrides, describe
from clara_hydra.sweeper.storage import open_storage


def _study(tmp_path: Path) -> optuna.Study:
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    return optuna.create_study(study_name="demo", storage=storage, load_if_exists=True, direction="maximize")


def test_first_run_stores_them_and_an_equal_resume_passes(tmp_path: Path) -> None:
    check_fixed_overrides(_study(tmp_path), ["epochs=2", "loss=dice_loss", "hydra.sweeper.n_trials=4"])
    again = _study(tmp_path)  # a new process: reopened from the file
    assert again.user_attrs[StudyAttr.FIXED_OVERRIDES] == ["epochs=2", "loss=dice_loss"]  # hydra.* may change
    check_fixed_overrides(again, ["loss=dice_loss", "epochs=2", "hydra.sweeper.n_trials=8"])


def test_a_resume_with_other_fixed_overrides_is_refused(tmp_path: Path) -> None:
    check_fixed_overrides(_study(tmp_path), ["epochs=2", "loss=dice_loss"])
    with pytest.raises(SweepError) as info:
        check_fixed_overrides(_study(tmp_path), ["epochs=3", "+seed=1"])
    text = str(info.value)
    assert "study 'demo' was run with other fixed overrides" in text
    assert "epochs=2 -> epochs=3" in text and "+seed=1 added" in text and "loss=dice_loss removed" in text
    assert "hydra.sweeper.study_name" in text  # the fix names the way out
    with pytest.raises(SweepError, match=r"epochs=2 removed"):
        check_fixed_overrides(_study(tmp_path), ["loss=dice_loss"])


def test_describe() -> None:
    assert describe([], ["a=1"]) == "a=1 added"
    assert describe(["a=1", "b=2"], ["a=1", "b=3"]) == "b=2 -> b=3"
