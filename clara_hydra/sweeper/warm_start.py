"""Seeding a new study with the finished trials of an earlier one (``hydra.sweeper.warm_start``).

``warm_start: STORAGE_OR_SWEEP_FOLDER[:study]`` names the earlier study: a sweep folder (the storage and
study its ``optimization_results.yaml`` names, as ``clara-hydra report SWEEP_DIR`` finds them) or a
storage (``journal:///x.journal``, ``sqlite:///x.db``, ``postgresql://...``, a ``*.journal``/``*.db``
path), with ``:study`` when that storage holds several studies. Any storage kind seeds any other.

When the sweep *creates* its study, every COMPLETE trial of the earlier study whose parameters still fit
the current search space is added with Optuna's public API (``optuna.trial.create_trial`` and
``Study.add_trials``, under the current distributions), so the sampler starts informed; the best of
them is enqueued first (``Study.enqueue_trial``), so the new study's trial 0 retrains the earlier best
configuration under the changed config. A trial fits when each of its parameters is still searched and
its value lies in the new distribution (a categorical choice still offered; a number inside the bounds
and on the step); the others are skipped and listed in one warning. A parameter new to the space is
recorded with its composed default where the default lies in the space (what the earlier trial ran
with, unless the default changed too), else left out.

Added trials carry the ``warm_start_from`` user attribute: they count neither against ``n_trials`` nor
as duplicates to reuse (their values were measured under the earlier config), and they have no job
folder here. A resumed study already has its trials: the setting is then ignored, said once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clara_hydra.errors import SweepError, UserError, shorten, with_fix
from clara_hydra.sweep_record import StudyAttr, TrialAttr, open_sweep

if TYPE_CHECKING:
    import optuna

    from clara_hydra.sweeper.space import SearchSpace

log = logging.getLogger(__name__)

MAX_LISTED = 20  # skipped trials listed in the warning; the rest are counted


@dataclass(frozen=True)
class WarmStartSource:
    """A parsed ``warm_start`` value.

    Args:
        target: the sweep folder or storage.
        study: the study name, when given after the last ``:``.
    """

    target: str
    study: str | None

    @property
    def text(self) -> str:
        return self.target + (f":{self.study}" if self.study else "")


def parse_warm_start(value: Any) -> WarmStartSource | None:
    """Check ``hydra.sweeper.warm_start`` and split off a ``:study`` suffix.

    The suffix is what follows the last ``:`` when it holds no ``/`` and is not a server's port
    (``sqlite:///x.db:toy``, ``multirun/a:toy``; not ``postgresql://u:pw@host:5432/db``, ``redis://h:6379``).

    Raises:
        SweepError: not a non-empty string.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SweepError(
            with_fix(
                f"hydra.sweeper.warm_start: expected a sweep folder or a storage, got {value!r}",
                "e.g. warm_start: multirun/2026-01-01/12-00-00, warm_start: sqlite:///sweep.db:my_study, or null",
            )
        )
    text = value.strip()
    head, sep, tail = text.rpartition(":")
    scheme_only = head.endswith(("journal", "sqlite", "postgresql", "mysql", "redis", "grpc")) and "/" not in head
    host_port = "://" in head and "/" not in head.split("://", 1)[1] and tail.isdigit()
    if sep and head and tail and "/" not in tail and not scheme_only and not host_port:
        return WarmStartSource(head, tail)
    return WarmStartSource(text, None)


def is_warm_started(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial was added from an earlier study (it was not run by this study)."""
    return TrialAttr.WARM_START in trial.user_attrs


def seed_study(
    study: optuna.Study,
    source: WarmStartSource,
    space: SearchSpace,
    defaults: Mapping[str, Any],
    *,
    created: bool,
    cwd: str,
    announce: bool = True,
    lock: Callable[[], AbstractContextManager[Any]] | None = None,
) -> None:
    """Add the fitting finished trials of the earlier study and enqueue its best (see the module docstring).

    Args:
        study: the sweep's study, just opened.
        source: the earlier study.
        space: the current search space.
        defaults: the composed defaults that lie in the space (``SearchSpace.baseline``).
        created: whether this run created the study (a resumed study is not seeded).
        cwd: the launch directory, for relative paths.
        announce: log that a resumed study is not seeded (False for a coordinator's workers).
        lock: the study's lock (``Coordinator.study_lock``, clara_hydra.sweeper.coordination), held while adding: two
            processes creating the study at once seed it once. The earlier study is read before.

    Raises:
        SweepError: the source cannot be read, holds no such study, or has other directions.
    """
    if not created:
        if announce:
            log.info(
                "warm_start: study '%s' already exists (resuming); warm start seeds new studies only: ignored",
                study.study_name,
            )
        return
    from optuna.trial import TrialState, create_trial

    earlier, where = _open(source, cwd)
    directions = [d.name.lower() for d in earlier.directions]
    wanted = [d.name.lower() for d in study.directions]
    if directions != wanted:
        raise SweepError(
            with_fix(
                f"hydra.sweeper.warm_start: study '{earlier.study_name}' in {where} has direction(s) {directions}, "
                f"this sweep {wanted}",
                "warm-start from a study of the same objective, or set warm_start: null",
            )
        )
    dists = space.distributions()
    added: list[tuple[optuna.trial.FrozenTrial, dict[str, Any]]] = []
    skipped: list[tuple[int, str]] = []
    filled: dict[str, Any] = {}
    for t in earlier.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        params, problems = _fit(t.params, dists)
        if problems:
            skipped.append((t.number, "; ".join(problems)))
            continue
        for name in dists.keys() - params.keys():
            if name in defaults:
                params[name] = defaults[name]
                filled[name] = defaults[name]
        added.append((t, params))
    origin = f"study '{earlier.study_name}'"
    frozen = [
        create_trial(
            params=params,
            distributions={n: dists[n] for n in params},
            values=list(t.values),
            user_attrs={TrialAttr.WARM_START: f"{origin} trial {t.number}"},
        )
        for t, params in added
    ]
    best = _best(added, directions)
    with lock() if lock is not None else nullcontext():
        # Another process creating the same study at the same moment may have seeded it already.
        if study.user_attrs.get(StudyAttr.WARM_START) is not None:
            return
        # Enqueued before the trials are added: the retry takes number 0, the added trials follow.
        if best is not None:
            study.enqueue_trial(best[1], user_attrs={TrialAttr.WARM_START_BEST: f"{origin} trial {best[0].number}"})
        study.add_trials(frozen)
        study.set_user_attr(StudyAttr.WARM_START, _summary(where, earlier.study_name, frozen, skipped, best, filled))
    _log(study.user_attrs[StudyAttr.WARM_START], len(added) + len(skipped))


def _summary(
    where: str,
    name: str,
    frozen: list[Any],
    skipped: list[tuple[int, str]],
    best: tuple[optuna.trial.FrozenTrial, dict[str, Any]] | None,
    filled: dict[str, Any],
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "source": where,
        "study": name,
        "added": len(frozen),
        "skipped": [{"trial": n, "why": why} for n, why in skipped],
    }
    if best is not None:
        summary["best_retried"] = {"trial": best[0].number, "value": best[0].value}
    if filled:
        summary["defaults_filled"] = filled
    return summary


def _open(source: WarmStartSource, cwd: str) -> tuple[optuna.Study, str]:
    """The earlier study and where it is (password masked), as ``clara-hydra report`` finds it."""
    from clara_hydra.sweeper.storage import mask_password

    target = source.target
    if "://" not in target and not Path(target).is_absolute():
        target = str(Path(cwd) / target)  # jobs and the sweeper agree on the launch directory
    key = f"hydra.sweeper.warm_start={shorten(mask_password(source.text))}"
    try:
        study = open_sweep(target, source.study, study_hint="warm_start: FOLDER_OR_STORAGE:STUDY").study
    except UserError as exc:
        text = str(exc).removeprefix("hydra.sweeper.storage: ")  # open_storage's own key: the storage named here
        raise SweepError(f"{key}: {text}") from exc
    except Exception as exc:  # a file that is no storage, a server that does not answer
        raise SweepError(
            with_fix(
                f"{key}: cannot read the storage: {type(exc).__name__}: {shorten(str(exc), 300)}",
                "pass a sweep folder, a journal or SQLite file, or a database URL that answers",
            )
        ) from exc
    return study, mask_password(target)


def _fit(params: Mapping[str, Any], dists: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The parameters as values of the current distributions, or the reasons they do not fit."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in params.items():
        if name not in dists:
            problems.append(f"{name} is no longer searched")
            continue
        fitted, why = fit_value(value, dists[name])
        if why:
            problems.append(f"{name}={value!r} {why}")
        else:
            values[name] = fitted
    return values, problems


def fit_value(value: Any, dist: Any) -> tuple[Any, str]:
    """``value`` as a value of ``dist``, and an empty reason; or ``None`` and why it does not fit.

    Args:
        value: a parameter value of the earlier study.
        dist: an Optuna distribution of the current space.
    """
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        for choice in dist.choices:
            if _same(choice, value):
                return choice, ""
        return None, f"is not one of the choices {list(dist.choices)}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None, f"is not a number, the space needs {_describe(dist)}"
    if not dist.low <= value <= dist.high:
        return None, f"lies outside {_describe(dist)}"
    if isinstance(dist, IntDistribution):
        if not float(value).is_integer():
            return None, f"is not an integer, the space needs {_describe(dist)}"
        if (int(value) - dist.low) % dist.step:
            return None, f"is not on the step of {_describe(dist)}"
        return int(value), ""
    assert isinstance(dist, FloatDistribution)
    if dist.step is not None:
        try:
            offset = (Decimal(str(value)) - Decimal(str(dist.low))) / Decimal(str(dist.step))
        except InvalidOperation:
            offset = Decimal("0.5")
        if offset != offset.to_integral_value():
            return None, f"is not on the step of {_describe(dist)}"
    return float(value), ""


def _describe(dist: Any) -> str:
    step = f" step {dist.step}" if getattr(dist, "step", None) not in (None, 1) else ""
    log_ = " log" if getattr(dist, "log", False) else ""
    return f"[{dist.low}, {dist.high}]{step}{log_}"


def _same(a: Any, b: Any) -> bool:
    """Equal as parameter values: ``True`` is not ``1``, ``2`` is ``2.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and bool(a == b)


def _best(
    added: list[tuple[optuna.trial.FrozenTrial, dict[str, Any]]], directions: list[str]
) -> tuple[optuna.trial.FrozenTrial, dict[str, Any]] | None:
    """The best of the fitting trials (single objective; a Pareto front has no one best to retry)."""
    if len(directions) != 1 or not added:
        return None
    sign = -1.0 if directions[0] == "maximize" else 1.0
    return min(added, key=lambda pair: (sign * float(pair[0].value), pair[0].number))  # type: ignore[arg-type]


def _log(summary: dict[str, Any], total: int) -> None:
    where = f"study '{summary['study']}' in {summary['source']}"
    skipped = summary["skipped"]
    if skipped:
        lines = [f"  trial {s['trial']}: {s['why']}" for s in skipped[:MAX_LISTED]]
        if len(skipped) > MAX_LISTED:
            lines.append(f"  ... and {len(skipped) - MAX_LISTED} more (optimization_results.yaml lists them all)")
        log.warning(
            "warm_start: %d of %d finished trial(s) of %s no longer fit the search space, skipped:\n%s",
            len(skipped),
            total,
            where,
            "\n".join(lines),
        )
    best = summary.get("best_retried")
    retry = f"; trial 0 retries its best, trial {best['trial']} (value {best['value']:.6g})" if best else ""
    log.info("warm_start: added %d finished trial(s) of %s%s", summary["added"], where, retry)
    if summary.get("defaults_filled"):
        log.info(
            "warm_start: parameter(s) new to the space recorded with their defaults %s", summary["defaults_filled"]
        )


def results_entry(study: optuna.Study) -> dict[str, Any]:
    """``{"warm_start": summary}`` for ``optimization_results.yaml`` when the study was warm-started."""
    summary = study.user_attrs.get(StudyAttr.WARM_START)
    return {"warm_start": summary} if isinstance(summary, dict) else {}
