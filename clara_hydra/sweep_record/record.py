"""The typed record of one trial, read from its Optuna trial and the attributes the sweeper wrote."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clara_hydra.sweep_record.names import TrialAttr

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


@dataclass(frozen=True)
class TrialRecord:
    """One trial as a sweep recorded it (built by :func:`trial_record`).

    Args:
        number: the Optuna trial number.
        state: ``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING`` or ``WAITING``.
        values: its objective values (None until told, or when it failed).
        params: its sampled parameters.
        reason: why it failed, was pruned, was not retrained, or was added by a warm start ('' otherwise).
        job_dir: its job folder (None for a warm-started trial, or one not yet launched).
        worker: the worker that ran it (``w1@host``), None for one worker.
        baseline: it ran the unsearched defaults.
        duplicate_of: the trial it repeats (not retrained), if any.
        retry_of: the interrupted trial it retries, if any.
        warm_start_from: the earlier study's trial it was copied from (it was not run here), if any.
        warm_start_best_of: the earlier study's best trial it retrains, if any.
        overrides: the searched overrides of its job.
        fixed_overrides: the sweep's fixed overrides when it ran.
        duration_s: seconds from start to end (None while running).
        mlflow_run_id: its MLflow run, when the sweep was tracked.
    """

    number: int
    state: str
    values: tuple[float, ...] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""
    job_dir: str | None = None
    worker: str | None = None
    baseline: bool = False
    duplicate_of: int | None = None
    retry_of: int | None = None
    warm_start_from: str | None = None
    warm_start_best_of: str | None = None
    overrides: tuple[str, ...] = ()
    fixed_overrides: tuple[str, ...] = ()
    duration_s: float | None = None
    mlflow_run_id: str | None = None

    @property
    def value(self) -> float | None:
        """The single objective value (None for none or several)."""
        return self.values[0] if self.values is not None and len(self.values) == 1 else None

    @property
    def warm_started(self) -> bool:
        """Added from an earlier study: measured under an earlier config, never run here."""
        return self.warm_start_from is not None

    @property
    def ran_here(self) -> bool:
        """Trained by this study (not warm-started, not a duplicate reusing an earlier value)."""
        return not self.warm_started and self.duplicate_of is None


def reason_of(trial: FrozenTrial) -> str:
    """Why a trial failed, was pruned, was not retrained or was not run here ('' for a plain trial)."""
    attrs = trial.user_attrs
    # fail_reason counts only on a FAIL trial: a worker judged stale writes it just before failing the
    # trial, and a racing tell() may have completed it meanwhile.
    if TrialAttr.FAIL_REASON in attrs and trial.state.name == "FAIL":
        return str(attrs[TrialAttr.FAIL_REASON])
    if TrialAttr.PRUNE_REASON in attrs:
        return str(attrs[TrialAttr.PRUNE_REASON])
    if TrialAttr.DUPLICATE_OF in attrs:
        return f"duplicate of trial {attrs[TrialAttr.DUPLICATE_OF]}: not retrained"
    if TrialAttr.WARM_START in attrs:
        return f"warm start: {attrs[TrialAttr.WARM_START]}, not run here"
    if TrialAttr.WARM_START_BEST in attrs:
        return f"retries the best of the warm start, {attrs[TrialAttr.WARM_START_BEST]}"
    return ""


def trial_record(trial: FrozenTrial) -> TrialRecord:
    """The :class:`TrialRecord` of an Optuna ``FrozenTrial`` (the one place that reads its user attributes)."""
    attrs = trial.user_attrs

    def text(attr: TrialAttr) -> str | None:
        value = attrs.get(attr)
        return None if value is None else str(value)

    def number(attr: TrialAttr) -> int | None:
        value = attrs.get(attr)
        return None if value is None else int(value)

    duration = None
    if trial.datetime_start is not None and trial.datetime_complete is not None:
        duration = (trial.datetime_complete - trial.datetime_start).total_seconds()
    return TrialRecord(
        number=trial.number,
        state=trial.state.name,
        values=None if trial.values is None else tuple(float(v) for v in trial.values),
        params=dict(trial.params),
        reason=reason_of(trial),
        job_dir=text(TrialAttr.JOB_DIR),
        worker=text(TrialAttr.WORKER),
        baseline=bool(attrs.get(TrialAttr.BASELINE, False)),
        duplicate_of=number(TrialAttr.DUPLICATE_OF),
        retry_of=number(TrialAttr.RETRY_OF),
        warm_start_from=text(TrialAttr.WARM_START),
        warm_start_best_of=text(TrialAttr.WARM_START_BEST),
        overrides=tuple(str(o) for o in attrs.get(TrialAttr.OVERRIDES) or ()),
        fixed_overrides=tuple(str(o) for o in attrs.get(TrialAttr.FIXED_OVERRIDES) or ()),
        duration_s=duration,
        mlflow_run_id=text(TrialAttr.MLFLOW_RUN_ID),
    )


# -- open_sweep --------------------------------------------------------------------------------------------
