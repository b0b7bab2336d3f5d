"""Resuming a study: what a dead or interrupted run left behind, and what counts against ``n_trials``.

- ``n_trials`` is the study's *total* budget: finished trials (COMPLETE, PRUNED, FAIL) count, except
  the ones failed as ``interrupted`` (their parameters are retried).
- A trial still RUNNING may belong to a live worker (another process on this study) or to one that
  died (``kill -9``, a crash, a lost node). :mod:`clara_hydra.sweeper.heartbeat` tells them apart: a
  dead worker's trial is marked FAIL with the reason ``interrupted`` and, with ``retry_interrupted:
  true``, its parameters are enqueued again (the retry carries ``retry_of``); a live worker's trial is
  never touched. A run interrupted by Ctrl-C does the same for its own trials before it exits.
- Job folders continue: a job's number is its trial number, and a study remembers the sweep folder
  of its first run (study user attribute ``sweep_dir``), which later runs keep writing to, so nothing
  is overwritten and one folder holds the whole study.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from clara_hydra.sweep_record import TrialAttr
from clara_hydra.sweeper.failures import DISK_FULL, INTERRUPTED
from clara_hydra.sweeper.warm_start import is_warm_started

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)


def is_interrupted(t: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial was failed as ``interrupted`` (its worker died or was stopped) or by a full disk.

    Such a trial does not count against ``n_trials``; its parameters are retried.
    """
    from optuna.trial import TrialState

    reason = str(t.user_attrs.get(TrialAttr.FAIL_REASON, ""))
    return t.state == TrialState.FAIL and (reason == INTERRUPTED or reason.startswith(DISK_FULL))


def budget_used(study: optuna.Study, running: bool = False) -> int:
    """How many trials count against ``n_trials``: finished ones minus interrupted ones (plus RUNNING ones).

    Args:
        study: the study.
        running: count RUNNING trials too: with several workers a running trial holds its place in the
            budget, so workers never ask more than ``n_trials`` in total.
    """
    from optuna.trial import TrialState

    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if ((t.state.is_finished() and not is_interrupted(t)) or (running and t.state == TrialState.RUNNING))
        and not is_warm_started(t)  # added from an earlier study, not run by this one
    )


def past_budget(trials: Sequence[optuna.trial.FrozenTrial], n_trials: int) -> set[int]:
    """Numbers of the RUNNING trials past ``n_trials`` when the trials holding a place are taken in number order.

    Every worker computes the same answer from the same trials, so when two workers asked for the last
    free place at once, exactly the later trial is given back.
    """
    from optuna.trial import TrialState

    holding = sorted(
        (t.number, t.state == TrialState.RUNNING)
        for t in trials
        if ((t.state.is_finished() and not is_interrupted(t)) or t.state == TrialState.RUNNING)
        and not is_warm_started(t)
    )
    return {number for number, running in holding[n_trials:] if running}


def close_interrupted(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    trial_id: int,
    number: int,
    retry: bool,
    reason: str = INTERRUPTED,
) -> None:
    """Mark one unfinished trial FAIL (``interrupted``) and optionally enqueue its parameters again.

    Args:
        study: the study.
        storage: its storage (the trial's user attribute is written through it: the trial may belong
            to a dead process, so there is no live ``Trial`` object for it).
        trial_id: the trial's storage id.
        number: the trial's number.
        retry: enqueue the same parameters as a new trial.
        reason: the stored ``fail_reason`` (``interrupted``, or a full disk's report).
    """
    import optuna
    from optuna.trial import TrialState

    frozen = storage.get_trial(trial_id)
    if frozen.state.is_finished():
        return
    try:
        storage.set_trial_user_attr(trial_id, TrialAttr.FAIL_REASON, reason)
        tell(study, number, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return  # another worker failed it as stale meanwhile (and retried it)
    if retry:
        attrs: dict[str, Any] = {TrialAttr.RETRY_OF: number}
        if frozen.user_attrs.get(TrialAttr.BASELINE):
            attrs[TrialAttr.BASELINE] = True
        study.enqueue_trial(dict(frozen.params), user_attrs=attrs)
    log.warning(
        "trial %d was left unfinished: marked FAIL (%s)%s",
        number,
        reason,
        "; its parameters are retried" if retry else "",
    )


def tell(study: optuna.Study, trial: Any, **kwargs: Any) -> None:
    """``study.tell`` that tolerates the grid sampler's ``Study.stop()`` call outside ``optimize``.

    Optuna's GridSampler calls ``study.stop()`` from ``after_trial`` once the grid is exhausted; in
    ask/tell use that raises RuntimeError *after* the trial's state has been stored (Optuna 4 and 5).
    """
    try:
        study.tell(trial, **kwargs)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise
