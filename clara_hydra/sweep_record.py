"""A sweep's record: every study and trial attribute name, a typed trial record, and :func:`open_sweep`.

What a sweep leaves in its Optuna study (beside Optuna's own parameters, values and states) is named here and
nowhere else: trial user attributes (:class:`TrialAttr`), study user attributes (:class:`StudyAttr`) and the
system attributes only the sweeper reads (:class:`SystemAttr`). The sweeper writes them; ``clara-hydra report``,
``clara-hydra export``, warm starts and the MLflow tracker read them, through :func:`trial_record` where a whole
trial is read. ``tests/test_sweep_record.py`` greps the package for the names as string literals.

This module imports no Optuna at import time (``clara-hydra --help`` stays light); :func:`open_sweep` imports it
when called.

Example:
    >>> sweep = open_sweep("multirun/2026-12-01/10-00-00")  # doctest: +SKIP
    >>> [trial_record(t).reason for t in sweep.study.get_trials(deepcopy=False)]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clara_hydra.errors import SweepError, shorten, with_fix

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

RESULTS_FILE = "optimization_results.yaml"


class TrialAttr(StrEnum):
    """Trial user attributes (``trial.user_attrs``), written by the sweeper."""

    JOB_DIR = "job_dir"  # the trial's job folder (.hydra/, models/, trial_summary.json)
    FAIL_REASON = "fail_reason"  # why a FAIL trial failed (counts only on a FAIL trial)
    PRUNE_REASON = "prune_reason"  # why a PRUNED trial was pruned
    DUPLICATE_OF = "duplicate_of"  # the earlier trial whose parameters it repeats: not retrained
    BASELINE = "baseline"  # the enqueued trial of the unsearched defaults
    RETRY_OF = "retry_of"  # the interrupted trial whose parameters it retries
    OVERRIDES = "overrides"  # the searched overrides of the trial's job
    FIXED_OVERRIDES = "fixed_overrides"  # the sweep's fixed overrides when the trial ran
    WORKER = "worker"  # the worker that ran it (w1@host), for the report's timeline
    WARM_START = "warm_start_from"  # added from an earlier study (not run here): "study 'x' trial 3"
    WARM_START_BEST = "warm_start_best_of"  # retries the earlier study's best under the current config
    MLFLOW_RUN_ID = "mlflow_run_id"  # the trial's MLflow run (clara_hydra.tracking)


class StudyAttr(StrEnum):
    """Study user attributes (``study.user_attrs``)."""

    SWEEP_DIR = "sweep_dir"  # the sweep folder of the study's first run
    FIXED_OVERRIDES = "fixed_overrides"  # the fixed overrides of its first run (a changed one is refused)
    WARM_START = "clara_warm_start"  # what a warm start added and skipped
    STOPPED = "clara_stopped"  # why and where the Terminator stopped the sweep


class SystemAttr(StrEnum):
    """System attributes (``system_attrs``): the sweeper's bookkeeping, and the one Optuna name it reads."""

    WORKERS_JOINED = "clara_workers_joined"  # study: how many workers joined (the baseline is enqueued once)
    HEARTBEAT = "clara_heartbeat"  # trial: the last beat of the worker running it (seconds since the epoch)
    WORKER_HOST = "clara_worker_host"  # trial: the host of its worker
    WORKER_PID = "clara_worker_pid"  # trial: the pid of its worker
    WORKER_PID_START = "clara_worker_pid_start"  # trial: that process's start time (pids are reused)
    CREATE_TOKEN = "clara_create_token"  # trial (RDB servers): unique per creation, finds it after a lost reply
    # Optuna's own mark of an enqueued trial (Study.enqueue_trial stores the parameters under it); pinned by
    # tests/test_sweep_record.py::test_optuna_marks_enqueued_trials_with_fixed_params.
    OPTUNA_FIXED_PARAMS = "fixed_params"


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


class SweepNotFoundError(SweepError, FileNotFoundError):
    """Raised by :func:`open_sweep` when its target is neither a sweep folder nor an existing storage file."""


@dataclass(frozen=True)
class Sweep:
    """An existing study opened for reading by :func:`open_sweep`.

    Args:
        study: the study, read from its storage.
        folder: its sweep folder (the study's own when it still exists, else the folder given, else the cwd).
        url: the storage URL (with its password: never print it; see ``display``).
        display: the storage URL with its password masked.
    """

    study: optuna.Study
    folder: Path
    url: str
    display: str

    @property
    def name(self) -> str:
        """The study's name."""
        return self.study.study_name


def open_sweep(target: str | Path, study: str | None = None, *, study_hint: str = "--study NAME") -> Sweep:
    """The study named by a sweep folder or a storage, opened for reading.

    Used by ``clara-hydra report``, ``clara-hydra export`` (a storage URL) and ``hydra.sweeper.warm_start``.

    Args:
        target: a sweep folder (its ``optimization_results.yaml`` names the storage and the study; else its one
            ``optuna/*.journal``), or a storage: ``sqlite:///x.db``, ``journal:///x.journal``,
            ``postgresql://...``, or a ``*.db``/``*.journal`` path.
        study: the study; needed only when the storage holds several.
        study_hint: how the caller's user names a study (``--study NAME``), for the messages.

    Returns:
        The :class:`Sweep`.

    Raises:
        SweepNotFoundError: no sweep folder or storage file there.
        SweepError: a folder no sweep wrote, a masked password, no or several studies, an unknown study name.
    """
    import optuna

    from clara_hydra.sweeper.storage import JOURNAL_SCHEME, mask_password, open_storage, resolve_storage

    text = str(target)
    folder = Path(text)
    if folder.is_dir():
        url, study = _from_sweep_dir(folder, study, study_hint)
    else:
        url = resolve_storage(text, study or "", cfg=None, cwd=None).url  # type: ignore[arg-type]
        local = _local_file(url, JOURNAL_SCHEME)
        if local is not None and not Path(local).is_file():
            raise SweepNotFoundError(
                with_fix(
                    f"no sweep folder or storage file at {shorten(text)}",
                    "pass the sweep folder (it holds optimization_results.yaml) or the storage URL",
                )
            )
        folder = Path.cwd()
    where = shorten(mask_password(text))
    storage = open_storage(url)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if study is None:
        if len(names) != 1:
            raise SweepError(with_fix(f"{len(names)} studies in {where}: {names}", f"choose one with {study_hint}"))
        study = names[0]
    elif study not in names:
        raise SweepError(with_fix(f"no study {study!r} in {where}", f"one of {names}"))
    loaded = optuna.load_study(study_name=study, storage=storage)
    stored = loaded.user_attrs.get(StudyAttr.SWEEP_DIR)
    if stored and Path(stored).is_dir():
        folder = Path(stored)
    return Sweep(study=loaded, folder=folder, url=url, display=mask_password(url))


def _from_sweep_dir(folder: Path, study: str | None, study_hint: str) -> tuple[str, str | None]:
    import yaml

    results = folder / RESULTS_FILE
    if results.is_file():
        data = yaml.safe_load(results.read_text()) or {}
        url = str(data.get("storage") or "")
        if "***" in url:  # the file holds the URL with its password masked
            raise SweepError(
                with_fix(
                    f"{results} names a storage whose password is masked ({url})",
                    f"pass the storage URL instead: 'postgresql://user:pw@host/db' with {study_hint}",
                )
            )
        if url:
            return url, study or data.get("study_name")
    journals = sorted((folder / "optuna").glob("*.journal"))
    if len(journals) == 1:
        from clara_hydra.sweeper.storage import JOURNAL_SCHEME

        return JOURNAL_SCHEME + str(journals[0].resolve()), study
    raise SweepError(
        with_fix(
            f"{folder} holds no {RESULTS_FILE} (nor one optuna/*.journal)",
            f"pass the sweep folder a sweep wrote, or the storage URL with {study_hint}",
        )
    )


def _local_file(url: str, journal_scheme: str) -> str | None:
    """The file behind a journal or SQLite URL (None for a server)."""
    for scheme in (journal_scheme, "sqlite:///"):
        if url.startswith(scheme):
            return url[len(scheme) :]
    return None
