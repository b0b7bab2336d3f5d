"""The explicit state of one sweep run: what :func:`clara_hydra.sweeper.opening.open_run` opened, and what
the loop of :class:`clara_hydra.sweeper.runner.SweepRunner` changes as trials run.

Everything a sweep knows lives in one :class:`SweepState` (no module globals, nothing set on the side), so
the loop's steps are functions of the state, and what an interrupt or a full disk must close is there to
read: the trials this process holds (``mine``), the disk-full report met, the result-file timers.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clara_hydra.errors import with_fix
from clara_hydra.report import write_report
from clara_hydra.sweep_record import TrialAttr
from clara_hydra.sweeper._optuna_private import trial_id_of
from clara_hydra.sweeper.disk import DiskFullError, Reserve, disk_report, full_path, is_disk_full
from clara_hydra.sweeper.results import write_all
from clara_hydra.sweeper.resume import budget_used
from clara_hydra.sweeper.startup import OWNER_FILE, read_owner

if TYPE_CHECKING:
    import optuna
    from omegaconf import DictConfig

    from clara_hydra.sweeper.coordination import Coordinator
    from clara_hydra.sweeper.heartbeat import Heartbeat
    from clara_hydra.sweeper.settings import Settings
    from clara_hydra.sweeper.space import SearchSpace
    from clara_hydra.sweeper.storage import StorageSpec
    from clara_hydra.sweeper.worker_role import WorkerRole
    from clara_hydra.tracking.sweep import SweepTracker

log = logging.getLogger(__name__)

# Seconds between rewrites of the result files during a sweep (at most; every batch when report_interval
# is shorter): their cost grows with the study, so rewriting them after every trial made trial 1,000 cost
# more than trial 1. They are always written when a run ends, however it ends.
RESULTS_INTERVAL = 5.0
# The largest share of a sweep's time the result files and the report may take: a write that took c seconds
# is not repeated for c / WRITE_SHARE seconds (report.html of a 1,000-trial study takes about a second).
WRITE_SHARE = 0.1


@dataclass
class SweepState:
    """One sweep run's state. The first block is fixed once the run is open; the second changes as it runs.

    Args:
        settings: the checked ``hydra.sweeper`` keys.
        space: the search space (``params`` and the command line's sweep overrides).
        spec: where the study lives (URL, masked form, journal file).
        storage: the opened Optuna storage.
        study: the opened study, with this run's sampler and pruner.
        sweep_dir: the sweep folder (a resumed study keeps its first run's).
        role: the role a coordinator gave this worker process, or None.
        worker: this process's worker id (``w1@host``, ``p<pid>@host``).
        cache_dir: the data cache folder jobs in other processes share (next to the study).
        concurrent: trials of this sweep running at once on this machine (for the jobs' CPU threads).
        reserve: room kept next to the journal to record a full disk's outcome.
        sweep_dir_override: ``hydra.sweep.dir=...`` when the study's folder is not the command's.
        numbered_jobs: job folders are ``<sweep_dir>/<trial number>`` (Hydra's default subdir), so the
            folder can be recorded before the job runs.
        baseline_values: the defaults the baseline trial runs with (``baseline_trial``), else empty.
        with_baseline: a baseline trial is enqueued (off when its defaults are not grid values).
        grid: the sampler is Optuna's GridSampler (the sweep ends when the grid is exhausted).
        tracker: the MLflow runs of the study (``+tracking=mlflow``), or None.

        heartbeat: the thread beating for ``mine`` (started when the loop starts).
        mine: storage ids of the trials this process is running.
        configs: trial number -> composed config, for the COMPLETE trials this process launched.
        composed: the (name, value) pairs whose job config is known to compose.
        disk_full: the report of the first full disk this run met, else None.
        warned_owner: keep_best's warning about a sweep folder this study does not own was given.
        results_written: ``time.monotonic()`` of the last result files.
        report_written: ... and of the last ``report.html``.
        results_cost: seconds the last result files took.
        report_cost: ... and the last ``report.html``.
    """

    settings: Settings
    space: SearchSpace
    spec: StorageSpec
    storage: optuna.storages.BaseStorage
    study: optuna.Study
    sweep_dir: Path
    role: WorkerRole | None
    worker: str
    cache_dir: str
    concurrent: int
    reserve: Reserve
    sweep_dir_override: list[str] = field(default_factory=list)
    numbered_jobs: bool = True
    baseline_values: dict[str, Any] = field(default_factory=dict)
    with_baseline: bool = False
    grid: bool = False
    tracker: SweepTracker | None = None

    heartbeat: Heartbeat | None = None
    mine: set[int] = field(default_factory=set)
    configs: dict[int, DictConfig] = field(default_factory=dict)
    composed: set[tuple[str, str]] = field(default_factory=set)
    disk_full: str | None = None
    warned_owner: bool = False
    results_written: float = -math.inf
    report_written: float = -math.inf
    results_cost: float = 0.0
    report_cost: float = 0.0

    @functools.cached_property
    def coordinator(self) -> Coordinator:
        """The study lock, heartbeats and stale trials for this storage (one module per storage kind)."""
        from clara_hydra.sweeper.coordination import coordinator_for

        return coordinator_for(self.storage, self.spec.journal_path)

    @property
    def workers(self) -> int:
        """How many workers share the study (for the progress lines and the jobs' identity)."""
        return max(self.settings.workers, self.role.count if self.role else 1)

    def planned_job_dir(self, number: int) -> str | None:
        """The job folder Hydra will give trial ``number``, when it is known before the job runs."""
        return str(self.sweep_dir / str(number)) if self.numbered_jobs else None

    # ------------------------------------------------------------------ trials held
    def hold(self, trial: optuna.Trial) -> None:
        """This process runs ``trial`` from now on: claim it in the storage and beat for it."""
        assert self.heartbeat is not None, "the heartbeat starts with the loop"
        self.heartbeat.claim(trial, self.worker)
        self.mine.add(trial_id_of(trial))

    def release(self, trial: optuna.Trial) -> None:
        """This process no longer runs ``trial`` (told, closed or given back)."""
        self.mine.discard(trial_id_of(trial))
        if self.heartbeat is not None:
            self.heartbeat.release(trial_id_of(trial))

    # ------------------------------------------------------------------ a full disk
    def note_disk_full(self, exc: BaseException | None, where: Path | str | None = None) -> str:
        """Remember the first full disk met (its report names the path, mount point and free space).

        The reserve next to the journal is deleted at once, so the outcome can still be recorded.

        Args:
            exc: the error (its file name, when it has one, is the path reported).
            where: the path to report otherwise (default: the journal, else the sweep folder).
        """
        if self.disk_full is None:
            self.disk_full = disk_report(full_path(exc) or where or self.spec.journal_path or self.sweep_dir)
            self.reserve.release()
        return self.disk_full

    def stop_for_disk(self) -> DiskFullError:
        """The compact error that ends a sweep on a full disk (every trial of this run is closed by then)."""
        from optuna.trial import TrialState

        study = self.study
        failed = sorted(
            t.number
            for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if t.user_attrs.get(TrialAttr.FAIL_REASON) == self.disk_full
        )
        which = f"trial(s) {', '.join(map(str, failed))} failed and will be retried; " if failed else ""
        return DiskFullError(
            with_fix(
                f"sweep stopped: {self.disk_full}; {which}study '{study.study_name}' keeps "
                f"{budget_used(study)} of n_trials={self.settings.n_trials} finished trial(s)",
                "free space on that disk (or set hydra.sweep.dir on another one), then rerun the same command: "
                "the study resumes to n_trials",
            )
        )

    # ------------------------------------------------------------------ result files
    def write_results(self, final: bool = True) -> None:
        """Rewrite the result files and ``report.html`` (whichever process finished the trial writes them).

        Both cost time that grows with the study, so during a sweep (``final=False``) the result files are
        rewritten at most every :data:`RESULTS_INTERVAL` seconds and the report at most every
        ``report_interval`` seconds, and neither takes more than :data:`WRITE_SHARE` of the sweep's time
        (``report_interval: 0``: both after every batch); at the end (and on Ctrl-C, a full disk, a stop
        rule) always. Composed configs the files no longer need are dropped (keeping every trial's would
        make the study's last trials cost more than its first).
        """
        now = time.monotonic()
        interval = self.settings.report_interval
        # report_interval 0 asks for every batch: no throttle at all then.
        results_every = max(min(RESULTS_INTERVAL, interval), self.results_cost / WRITE_SHARE) if interval else 0.0
        report_every = max(interval, self.report_cost / WRITE_SHARE) if interval else 0.0
        if not final and now - self.results_written < results_every:
            return
        self.results_written = now
        try:
            used = write_all(self.study, self.sweep_dir, self.spec.display, self.configs)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            self.note_disk_full(exc, self.sweep_dir)
            return
        self.configs = {n: cfg for n, cfg in self.configs.items() if n in used}
        self.results_cost = time.monotonic() - now
        if not final and now - self.report_written < report_every:
            return
        start = self.report_written = time.monotonic()
        try:
            write_report(self.study, self.sweep_dir)
        except Exception as exc:  # the report is a view: a plotting failure must not end a sweep
            if is_disk_full(exc):
                self.note_disk_full(exc, self.sweep_dir)
            else:
                log.warning("report.html not written: %s: %s", type(exc).__name__, exc)
        self.report_cost = time.monotonic() - start

    def owns_sweep_dir(self) -> bool:
        """Whether the sweep folder's ``.study.json`` names this study: only then may keep_best delete in it."""
        owner = read_owner(self.sweep_dir) or {}
        if owner.get("study") == self.study.study_name and owner.get("storage") == self.spec.display:
            return True
        if not self.warned_owner:
            self.warned_owner = True
            log.warning(
                "keep_best: the sweep folder %s is not this study's (its %s names %s): no checkpoint is deleted",
                self.sweep_dir,
                OWNER_FILE,
                owner or "no study",
            )
        return False
