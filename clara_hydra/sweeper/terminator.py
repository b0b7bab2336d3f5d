"""Stopping a sweep early with Optuna's Terminator (``hydra.sweeper.terminator: regret``).

Optuna's Terminator (Makarova et al., "Automatic termination for hyperparameter optimization", 2022)
fits a Gaussian process to the complete trials and bounds how much the best value may still improve
(the *regret bound*, :class:`optuna.terminator.RegretBoundEvaluator`). The sweep stops once that bound
is smaller than the objective's own noise, because an improvement below the noise cannot be told apart
from luck. The noise (``terminator_error``) is:

- ``auto`` (default): the cross-validation or seed scores the best trial reported (a task function
  calls :func:`report_scores` with the per-fold or per-seed values whose mean it returns), as
  :class:`optuna.terminator.CrossValidationErrorEvaluator` reads them; when the best trial reported
  none, Optuna's median heuristic (below), said once in the log.
- ``median``: :class:`optuna.terminator.MedianErrorEvaluator` (Ishibashi et al., 2023): 1% of the median
  regret bound over trials 11-30; it cannot stop a sweep before 30 complete trials.
- a number: :class:`optuna.terminator.StaticErrorEvaluator`: "an improvement smaller than this does not
  matter" in the objective's units (``0.005`` = half a Dice point).

The rule is Optuna's ``Terminator.should_terminate`` (regret bound < error, once ``terminator_min_trials``
trials are complete); the evaluators are called here directly because ``should_terminate`` returns only
a boolean and the stop line must give both figures. Only complete trials that have every searched
parameter are shown to the evaluators (a baseline or warm-started trial without one would shrink
Optuna's intersection search space for all). Single-objective studies only.

``optuna.terminator`` is deprecated since Optuna 4.9 (removal planned for 6.0, a port to OptunaHub
announced); its warnings are silenced here and a missing module is a compact error.

This module imports Optuna only inside its functions (settings are parsed at plugin start-up).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clara_hydra.errors import SweepError, with_fix
from clara_hydra.sweep_record import StudyAttr

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

KINDS = ("regret",)
ERROR_MODES = ("auto", "median")
DEFAULT_MIN_TRIALS = 20  # Optuna's own default (optuna.terminator.improvement.evaluator.DEFAULT_MIN_N_TRIALS)
STATIC = "terminator_error"  # the error_source of a number set by the user


@dataclass(frozen=True)
class TerminatorSettings:
    """The checked ``terminator*`` keys of ``hydra.sweeper``.

    Args:
        kind: ``regret``.
        min_trials: complete trials before the first check.
        error: ``auto``, ``median`` or a number (the objective's noise in its own units).
        seed: the sampler's seed, for the Gaussian process's random search (None: unseeded).
    """

    kind: str
    min_trials: int
    error: str | float
    seed: int | None = None


def parse_terminator(get: Callable[[str], Any], directions: Sequence[str]) -> TerminatorSettings | None:
    """Check ``terminator``, ``terminator_min_trials`` and ``terminator_error``.

    Args:
        get: reads a ``hydra.sweeper`` key (its default when unset).
        directions: the study's direction(s).

    Returns:
        The settings, or None when the terminator is off.

    Raises:
        SweepError: an unknown kind, a bad number, a multi-objective study, no ``optuna.terminator``.
    """
    kind = get("terminator")
    if kind is None or kind is False:
        return None
    if not isinstance(kind, str) or kind not in KINDS:
        raise SweepError(
            with_fix(
                f"hydra.sweeper.terminator: unknown terminator {kind!r}",
                "terminator: regret (Optuna's regret-bound Terminator), or null (off, the default)",
            )
        )
    if len(directions) > 1:
        raise SweepError(
            with_fix(
                f"hydra.sweeper.terminator: needs a single-objective study, direction is {list(directions)}",
                "set terminator: null",
            )
        )
    min_trials = get("terminator_min_trials")
    if isinstance(min_trials, bool) or not isinstance(min_trials, int) or min_trials < 2:
        raise SweepError(
            with_fix(
                f"hydra.sweeper.terminator_min_trials: expected an integer >= 2, got {min_trials!r}",
                f"the Gaussian process needs several complete trials; Optuna's default is {DEFAULT_MIN_TRIALS}",
            )
        )
    error = _error_setting(get("terminator_error"))
    sampler = get("sampler")
    seed = sampler.get("seed") if hasattr(sampler, "get") else None
    _optuna_terminator()  # a missing module or GP dependency fails here, before any trial
    return TerminatorSettings(kind, min_trials, error, seed if isinstance(seed, int) else None)


def _error_setting(value: Any) -> str | float:
    if isinstance(value, str) and value in ERROR_MODES:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    raise SweepError(
        with_fix(
            f"hydra.sweeper.terminator_error: expected auto, median or a number > 0, got {value!r}",
            "auto (the best trial's cross-validation/seed scores, else median), median (Optuna's heuristic), "
            "or the smallest improvement that matters in the objective's units, e.g. 0.005",
        )
    )


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Silence the experimental and deprecation warnings of ``optuna.terminator`` (see the module docstring)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message=".*optuna.terminator.*", category=FutureWarning)
        yield


def _optuna_terminator() -> Any:
    """``optuna.terminator``, checked for the names used here and for the GP's dependencies."""
    try:
        import scipy  # noqa: F401  # Optuna's GP needs scipy and torch, imported lazily by Optuna
        import torch  # noqa: F401

        with _quiet_optuna():
            import optuna.terminator as module
    except ImportError as exc:
        raise SweepError(
            with_fix(
                f"hydra.sweeper.terminator: cannot import {exc.name or 'optuna.terminator'} ({exc})",
                "pip install scipy torch (Optuna's Gaussian process), with an Optuna release of 4.x or 5.x",
            )
        ) from exc
    return module


def report_scores(scores: Sequence[float]) -> None:
    """From a task function: the per-fold or per-seed values whose mean the task returns.

    The terminator's ``auto`` noise is their spread in the best trial
    (:func:`optuna.terminator.report_cross_validation_scores`). Outside a sweep it does nothing.

    Args:
        scores: two or more values.

    Raises:
        SweepError: fewer than two scores, or one that is not a finite number.

    Example:
        >>> values = [train(cfg, seed=s) for s in (0, 1, 2)]  # doctest: +SKIP
        >>> report_scores(values)  # doctest: +SKIP
        >>> return sum(values) / len(values)  # doctest: +SKIP
    """
    from clara_hydra.sweeper.trial_report import current_trial

    values = [float(s) for s in scores]
    if len(values) < 2 or not all(math.isfinite(v) for v in values):
        raise SweepError(
            with_fix(
                f"report_scores: needs two or more finite scores, got {values}",
                "pass the value of every fold or seed, e.g. report_scores([0.81, 0.79, 0.83])",
            )
        )
    trial = current_trial()
    if trial is None:
        return
    with _quiet_optuna():
        _optuna_terminator().report_cross_validation_scores(trial, values)


class StopCheck:
    """The terminator of one sweep process; :meth:`check` once per batch, before asking.

    Args:
        settings: the checked settings.
        names: the searched parameter names (trials lacking one are left out of the estimate).
    """

    def __init__(self, settings: TerminatorSettings, names: Collection[str]) -> None:
        module = _optuna_terminator()
        self.settings = settings
        self.names = set(names)
        self.off_reason = ""
        with _quiet_optuna():
            self.improvement = module.RegretBoundEvaluator(seed=settings.seed)
            self.cv = module.CrossValidationErrorEvaluator()
            self.median = module.MedianErrorEvaluator(paired_improvement_evaluator=self.improvement)
            self.static = (
                module.StaticErrorEvaluator(constant=settings.error) if isinstance(settings.error, float) else None
            )
        self._said_median = False

    def check(self, study: optuna.Study) -> dict[str, Any] | None:
        """Judge the study now; when it should stop, log why, record it on the study and return the record."""
        from optuna.trial import TrialState

        if self.off_reason:
            return None
        trials = [
            t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if self.names <= t.params.keys()
        ]
        if len(trials) < self.settings.min_trials:
            return None
        try:
            with _quiet_optuna():
                regret = float(self.improvement.evaluate(trials, study.direction))
                error, source = self._error(trials, study.direction)
        except Exception as exc:  # the terminator advises; a sweep of hours must not die of a GP fit
            self.off_reason = f"{type(exc).__name__}: {exc}"
            log.warning("terminator: cannot judge this study (%s); the sweep runs to n_trials", self.off_reason)
            log.debug("terminator failure", exc_info=True)
            return None
        if not regret < error:
            log.debug("terminator: regret bound %.6g >= error %.6g (%s)", regret, error, source)
            return None
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
        last = max(t.number for t in finished)
        record = {
            "by": "terminator",
            "after_trial": last,
            "complete_trials": len(trials),
            "regret_bound": regret,
            "error": error,
            "error_source": source,
            "best_value": study.best_value,
        }
        study.set_user_attr(StudyAttr.STOPPED, record)
        log.info("%s", stop_line(record))
        return record

    def _error(self, trials: list[optuna.trial.FrozenTrial], direction: Any) -> tuple[float, str]:
        mode = self.settings.error
        if self.static is not None:
            return float(self.static.evaluate(trials, direction)), STATIC
        if mode == "auto":
            try:
                return float(self.cv.evaluate(trials, direction)), "the spread of the best trial's scores"
            except ValueError:  # the best trial reported no scores (report_scores)
                if not self._said_median:
                    log.info(
                        "terminator: the best trial reported no cross-validation or seed scores "
                        "(report_scores); using Optuna's median heuristic, which needs 30 complete trials"
                    )
                    self._said_median = True
        return float(self.median.evaluate(trials, direction)), "Optuna's median heuristic"


def start(study: optuna.Study, settings: TerminatorSettings | None, names: Collection[str]) -> StopCheck | None:
    """The terminator of this sweep process, or None when it is off.

    Args:
        study: the study.
        settings: from :func:`parse_terminator`.
        names: the searched parameter names.
    """
    return StopCheck(settings, names) if settings is not None else None


def forget_stop(study: optuna.Study) -> None:
    """Clear a stop recorded by an earlier run: a rerun may go past it (more trials, terminator off), and the
    result files must not report a stop that did not end this run. Called once per run, before its workers."""
    if study.user_attrs.get(StudyAttr.STOPPED) is not None:
        study.set_user_attr(StudyAttr.STOPPED, None)


def stop_line(record: dict[str, Any]) -> str:
    """The one line that says why and where the terminator stopped the sweep."""
    error, source = record["error"], record["error_source"]
    than = f"{STATIC} {error:.4g}" if source == STATIC else f"the objective's noise {error:.4g} ({source})"
    return (
        f"terminator: stopping after trial {record['after_trial']} ({record['complete_trials']} complete "
        f"trials): the best value {record['best_value']:.6g} can improve by at most {record['regret_bound']:.4g} "
        f"(regret bound), less than {than}"
    )


def results_entry(study: optuna.Study) -> dict[str, Any]:
    """``{"stopped": record}`` for ``optimization_results.yaml`` when the terminator stopped the sweep."""
    record = study.user_attrs.get(StudyAttr.STOPPED)
    return {"stopped": dict(record, reason=stop_line(record))} if isinstance(record, dict) else {}
