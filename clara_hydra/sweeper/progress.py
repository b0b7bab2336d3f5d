"""One console line per finished trial, printed by the worker that finished it.

``trial 7/20 COMPLETE val_mean_dice=0.912 · best 0.931 (trial 0) · 14 s · ETA 3 min``; a PRUNED or
FAILED trial shows its reason instead of its value, and with several workers the line ends with the
worker's id. The metric's name comes from the job's ``trial_summary.json`` (the runtime writes it), else
``value``. The ETA is the mean duration of the trials trained so far times the trials left, divided by
the workers.

The line is printed, not logged: it is the sweep's progress at the default console level, whatever the
logging configuration; the log keeps the detail.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from clara_hydra.errors import shorten
from clara_hydra.runtime.summary import objective_name
from clara_hydra.sweep_record import TrialAttr, reason_of
from clara_hydra.sweeper._optuna_private import storage_of

if TYPE_CHECKING:
    import optuna


def format_seconds(seconds: float) -> str:
    """``14 s``, ``3 min``, ``1.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def metric_name(job_dir: str | None) -> str:
    """The objective's name from the job's ``trial_summary.json``, else ``value``."""
    return objective_name(job_dir) or "value"


def trial_line(
    study: optuna.Study,
    trial: optuna.trial.FrozenTrial,
    n_trials: int,
    *,
    workers: int = 1,
    worker: str | None = None,
) -> str:
    """The progress line of a finished trial.

    Args:
        study: the study (for the best trial, the remaining budget and the ETA).
        trial: the finished trial, as stored.
        n_trials: the study's budget.
        workers: how many workers share the study (divides the ETA; >1 adds the worker id).
        worker: the id of the worker that ran the trial.

    Returns:
        One line, without a newline.
    """
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    # One pass over the study (this line is printed after every trial: no repeated scans).
    best, counted, total_s, timed, added_before = _tally(study, trials, trial.number)
    # Count the trials this study runs: trials a warm start added (numbered first) are not among them.
    where = f"trial {trial.number - added_before}/{n_trials}"
    if added_before:
        where += f" (study trial {trial.number})"
    parts = [f"{where} {trial.state.name}"]
    if trial.state == TrialState.COMPLETE and trial.values:
        name = metric_name(trial.user_attrs.get(TrialAttr.JOB_DIR))
        text = ", ".join(f"{v:.4g}" for v in trial.values)
        note = reason_of(trial)
        parts[0] += f" {name}={text}" + (f" ({note})" if note else "")
    else:
        parts[0] += f" {shorten(reason_of(trial) or '', 100)}".rstrip()
    if best is not None:
        parts.append(f"best {best.values[0]:.4g} (trial {best.number})")
    if trial.duration is not None:
        parts.append(format_seconds(trial.duration.total_seconds()))
    left = n_trials - counted
    if left > 0 and timed:
        parts.append(f"ETA {format_seconds(total_s / timed * left / max(workers, 1))}")
    if workers > 1 and worker:
        parts.append(worker)
    return " · ".join(parts)


def _tally(
    study: optuna.Study, trials: list[optuna.trial.FrozenTrial], number: int
) -> tuple[optuna.trial.FrozenTrial | None, int, float, int, int]:
    """The best complete trial run here (single objective), the trials counting against n_trials, the
    summed seconds and number of the finished trials with a duration, and the warm-started trials numbered
    before trial ``number``. Warm-started trials (run in an earlier study) count in none but the last."""
    from optuna.trial import TrialState

    from clara_hydra.sweeper.resume import is_interrupted
    from clara_hydra.sweeper.warm_start import is_warm_started

    single = len(study.directions) == 1
    sign = -1.0 if study.directions[0].name.lower() == "maximize" else 1.0
    best: optuna.trial.FrozenTrial | None = None
    counted = timed = added_before = 0
    total = 0.0
    for t in trials:
        if is_warm_started(t):
            added_before += 1 if t.number < number else 0
            continue
        if not t.state.is_finished():
            continue
        if not is_interrupted(t):
            counted += 1
        if t.datetime_start is not None and t.datetime_complete is not None:
            total += (t.datetime_complete - t.datetime_start).total_seconds()
            timed += 1
        better = best is None or (t.values and sign * t.values[0] < sign * best.values[0])
        if single and t.state == TrialState.COMPLETE and t.values and better:
            best = t
    return best, counted, total, timed, added_before


def print_trial(study: optuna.Study, trial_id: int, n_trials: int, **kwargs: Any) -> str:
    """Print the progress line of the finished trial with storage id ``trial_id``; return it."""
    frozen = storage_of(study).get_trial(trial_id)
    line = trial_line(study, frozen, n_trials, **kwargs)
    print(line, file=sys.stdout, flush=True)
    return line
