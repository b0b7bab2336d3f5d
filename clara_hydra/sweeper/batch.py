"""The trials of one batch: duplicates of finished trials, and telling the study each outcome."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from clara_hydra.sweep_record import TrialAttr
from clara_hydra.sweeper._optuna_private import trial_id_of
from clara_hydra.sweeper.failures import Outcome, Result, format_traceback
from clara_hydra.sweeper.resume import tell
from clara_hydra.sweeper.warm_start import is_warm_started

log = logging.getLogger(__name__)


@dataclass
class Asked:
    """A trial asked from the study, with the overrides of its job and, later, its outcome.

    Args:
        trial: the running Optuna trial.
        params: its parameter values (Optuna values).
        overrides: the job's overrides (fixed command-line ones first).
        fixed: the fixed command-line overrides (part of what makes two trainings the same).
        baseline: whether it is the baseline trial (the defaults, no search override).
    """

    trial: optuna.Trial
    params: dict[str, Any]
    overrides: list[str]
    fixed: list[str]
    baseline: bool
    result: Result | None = None
    job_dir: str | None = None
    # The trial whose outcome this one reuses (skip_duplicates): a finished trial or a twin in the batch.
    same_as: optuna.trial.FrozenTrial | Asked | None = None

    @property
    def number(self) -> int:
        return self.trial.number

    def key(self) -> tuple[Any, ...]:
        """What makes two trials the same training: their parameters and the fixed overrides."""
        return param_key(self.params, self.fixed)


def param_key(params: Mapping[str, Any], fixed: Sequence[str]) -> tuple[Any, ...]:
    """A hashable identity of a training: sorted (name, repr(value)) pairs and the fixed overrides."""
    return (tuple(sorted((name, repr(value)) for name, value in params.items())), tuple(fixed))


def mark_duplicates(study: optuna.Study, batch: list[Asked]) -> list[Asked]:
    """Point each trial that repeats another training at it: a COMPLETE or PRUNED trial, a trial another
    worker is RUNNING now (its outcome is awaited), or an earlier trial of the batch.

    Args:
        study: the study.
        batch: the asked trials, in order.

    Returns:
        The trials that must really be trained.
    """
    done: dict[tuple[Any, ...], optuna.trial.FrozenTrial] = {}
    mine = {trial_id_of(a.trial) for a in batch}
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    for t in study.get_trials(deepcopy=False, states=states):
        # A warm-started trial's value was measured under an earlier config: never reused.
        if trial_id_of(t) in mine or TrialAttr.DUPLICATE_OF in t.user_attrs or is_warm_started(t):
            continue
        key = param_key(t.params, t.user_attrs.get(TrialAttr.FIXED_OVERRIDES, []))
        # A finished original beats a running one (no wait); among equals, the first.
        if key not in done or (done[key].state == TrialState.RUNNING and t.state != TrialState.RUNNING):
            done[key] = t
    first_in_batch: dict[tuple[Any, ...], Asked] = {}
    to_launch = []
    for a in batch:
        key = a.key()
        original = done.get(key)
        # Wait only for a running twin with a smaller number: two workers that drew the same parameters
        # at once (or the baseline, enqueued twice without a study lock) never wait for each other.
        if original is not None and (original.state != TrialState.RUNNING or original.number < a.number):
            a.same_as = original
        elif key in first_in_batch:
            a.same_as = first_in_batch[key]
        else:
            first_in_batch[key] = a
            to_launch.append(a)
    return to_launch


def record(study: optuna.Study, a: Asked) -> bool:
    """Tell the study a launched trial's outcome, with its reason and job folder as user attributes.

    Returns:
        False when the trial was already finished by another worker (failed as stale while this one
        was unreachable): the outcome is then discarded, with a warning.
    """
    assert a.result is not None
    try:
        if a.job_dir and a.trial.user_attrs.get(TrialAttr.JOB_DIR) != a.job_dir:  # usually recorded at ask already
            a.trial.set_user_attr(TrialAttr.JOB_DIR, a.job_dir)
        _tell_result(study, a.trial, a.result)
    except optuna.exceptions.UpdateFinishedTrialError:
        log.warning(
            "trial %d was failed as interrupted by another worker while this one ran it (no heartbeat "
            "reached the storage in time); its %s outcome is discarded, its retry counts instead",
            a.number,
            a.result.outcome.value,
        )
        return False
    r = a.result
    # The per-trial progress line already says PRUNED/FAIL and why; the log keeps a bug's traceback.
    if r.outcome is Outcome.PRUNED:
        log.debug("trial %d pruned: %s", a.number, r.reason)
    elif r.outcome is Outcome.FAIL and r.error is not None and (trace := format_traceback(r.error)):
        log.warning("trial %d failed: %s\n%s", a.number, r.reason, trace)
    elif r.outcome is Outcome.FAIL:
        log.debug("trial %d failed: %s", a.number, r.reason)
    return True


def record_duplicate(study: optuna.Study, a: Asked) -> None:
    """Tell a duplicate the outcome of the trial it repeats (``duplicate_of``), without training it."""
    source = a.same_as
    assert source is not None
    if isinstance(source, Asked):  # a twin in this batch: its outcome, whatever it was
        assert source.result is not None
        result, job_dir = source.result, source.job_dir
    else:
        result = finished_result(source)
        job_dir = source.user_attrs.get(TrialAttr.JOB_DIR)
    a.trial.set_user_attr(TrialAttr.DUPLICATE_OF, source.number)
    if job_dir:
        a.trial.set_user_attr(TrialAttr.JOB_DIR, job_dir)
    log.info(
        "trial %d repeats trial %d's parameters: its %s outcome is reused, not retrained",
        a.number,
        source.number,
        result.outcome.value,
    )
    try:
        _tell_result(study, a.trial, result)
    except optuna.exceptions.UpdateFinishedTrialError:
        log.warning("trial %d was failed as interrupted by another worker meanwhile", a.number)


def finished_result(t: optuna.trial.FrozenTrial) -> Result:
    """The outcome of a finished trial, to reuse for a duplicate (COMPLETE values, PRUNED or FAIL reason)."""
    if t.state == TrialState.COMPLETE:
        return Result(Outcome.COMPLETE, values=list(t.values))
    if t.state == TrialState.PRUNED:
        return Result(Outcome.PRUNED, reason=str(t.user_attrs.get(TrialAttr.PRUNE_REASON, "pruned")))
    return Result(Outcome.FAIL, reason=str(t.user_attrs.get(TrialAttr.FAIL_REASON, "failed")))


def _tell_result(study: optuna.Study, trial: optuna.Trial, result: Result) -> None:
    if result.outcome is Outcome.COMPLETE:
        tell(study, trial, values=result.values)
    elif result.outcome is Outcome.PRUNED:
        trial.set_user_attr(TrialAttr.PRUNE_REASON, result.reason)
        tell(study, trial, state=TrialState.PRUNED)  # Optuna stores the last reported value with it
    else:
        trial.set_user_attr(TrialAttr.FAIL_REASON, result.reason)
        tell(study, trial, state=TrialState.FAIL)


def contiguous(asked: list[Asked]) -> list[list[Asked]]:
    """Split into runs of consecutive trial numbers (one launch each, so job number = trial number)."""
    groups: list[list[Asked]] = []
    for a in sorted(asked, key=lambda x: x.number):
        if groups and groups[-1][-1].number + 1 == a.number:
            groups[-1].append(a)
        else:
            groups.append([a])
    return groups
