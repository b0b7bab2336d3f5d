"""A study's fixed overrides (``epochs=2`` on the command line): the same for every run of the study.

Trials trained with other fixed values (fewer epochs, another data set) are not comparable: resuming a
study with different ones would silently mix them in one ranking. The first run stores its fixed
overrides as a study user attribute; a later run with different ones is refused, naming the difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from clara_hydra.errors import SweepError, with_fix
from clara_hydra.sweep_record import StudyAttr

if TYPE_CHECKING:
    import optuna


# Overrides that say where or how to run, not what is trained: they may change between runs of a study.
_NEUTRAL_PREFIXES = ("hydra.", "hydra/", "+hydra.", "~hydra.", "clara_cache.", "+clara_cache.")


def comparable(fixed: Sequence[str]) -> list[str]:
    """The overrides that change what a trial trains (``hydra.*`` and cache settings left out), sorted."""
    return sorted(o for o in fixed if not o.startswith(_NEUTRAL_PREFIXES))


def check_fixed_overrides(study: optuna.Study, fixed: Sequence[str]) -> None:
    """Record the fixed overrides on a study's first run; refuse a resume whose fixed overrides differ.

    Args:
        study: the study, opened or created.
        fixed: the command line's non-sweep task overrides of this run (``epochs=2``).

    Raises:
        SweepError: the study was run before with other fixed overrides; the message names what was
            added, removed or changed and how to start a separate study instead.

    Example:
        >>> check_fixed_overrides(study, ["epochs=2"])  # first run: stored
        >>> check_fixed_overrides(study, ["epochs=3"])  # doctest: +SKIP
        SweepError: study 'demo' was run with other fixed overrides: epochs=2 -> epochs=3 ...
    """
    now = comparable(fixed)
    stored = study.user_attrs.get(StudyAttr.FIXED_OVERRIDES)
    if stored is None:
        # A study created before this attribute existed has trials of unknown settings: record, don't judge.
        study.set_user_attr(StudyAttr.FIXED_OVERRIDES, now)
        return
    before = [str(o) for o in stored]
    if before == now:
        return
    raise SweepError(
        with_fix(
            f"study '{study.study_name}' was run with other fixed overrides: {describe(before, now)}; "
            "its trials would not be comparable",
            "rerun with the first run's overrides "
            f"({' '.join(before) or 'none'}), or start a separate study: hydra.sweeper.study_name=<new name>",
        )
    )


def describe(before: Sequence[str], now: Sequence[str]) -> str:
    """``epochs=2 -> epochs=3, +seed=1 added, loss=x removed``: the difference of two override lists."""
    old = {_key(o): o for o in before}
    new = {_key(o): o for o in now}
    parts = [f"{old[k]} -> {new[k]}" for k in old if k in new and old[k] != new[k]]
    parts += [f"{new[k]} added" for k in new if k not in old]
    parts += [f"{old[k]} removed" for k in old if k not in new]
    return ", ".join(parts)


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")
