"""The sweep loop: ask a batch of trials, launch their jobs with Hydra's launcher, tell the outcomes.

One batch = ``n_jobs`` trials. Per batch: fail the trials of dead workers (:mod:`.heartbeat`), ask
under the study's lock (the baseline trial first, enqueued retries next; RUNNING trials of every worker
count against ``n_trials``), reuse the outcome of parameter sets already trained or being trained by
another worker (``skip_duplicates``), launch the rest (job number = trial number), record
COMPLETE/PRUNED/FAIL with reasons and print one line per trial, apply the stop rules (``fail_fast``,
``max_failure_rate``, ``stop_threshold``, an exhausted grid), delete checkpoints outside the best
``keep_best``, and rewrite the result files. Any number of these loops may run on one study at once
(``workers``, or the same command on several machines); ``workers > 1`` in one command starts them
(:mod:`.workers`).
"""

from __future__ import annotations

import functools
import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from optuna.trial import TrialState

from clara_hydra import trial_context
from clara_hydra.errors import SweepError, with_fix
from clara_hydra.report import write_report
from clara_hydra.runtime.console import quiet_launcher
from clara_hydra.runtime.device import warn_multi_gpu
from clara_hydra.sweep_record import StudyAttr, SystemAttr, TrialAttr
from clara_hydra.sweeper import progress, terminator, trial_report, warm_start
from clara_hydra.sweeper._optuna_private import is_basic_launcher, study_id_of, trial_id_of
from clara_hydra.sweeper.batch import Asked, contiguous, mark_duplicates, record, record_duplicate
from clara_hydra.sweeper.checkpoints import prune_checkpoints
from clara_hydra.sweeper.coordination import Coordinator, coordinator_for
from clara_hydra.sweeper.disk import DiskFullError, Reserve, disk_report, full_path, is_disk_full
from clara_hydra.sweeper.failures import INTERRUPTED, FailFast, Outcome, Result, check_failure_rate, classify
from clara_hydra.sweeper.fixed_overrides import check_fixed_overrides
from clara_hydra.sweeper.grammar import quote
from clara_hydra.sweeper.heartbeat import Heartbeat, fail_stale
from clara_hydra.sweeper.live import live_progress
from clara_hydra.sweeper.optuna_objects import build_pruner, build_sampler, is_grid
from clara_hydra.sweeper.results import (
    print_summary,
    write_all,
)
from clara_hydra.sweeper.resume import (
    budget_used,
    close_interrupted,
    is_interrupted,
    past_budget,
)
from clara_hydra.sweeper.settings import Settings
from clara_hydra.sweeper.space import SearchSpace
from clara_hydra.sweeper.startup import (
    OWNER_FILE,
    check_folder_free,
    claim_folder,
    delete_new_study,
    read_owner,
    study_exists,
)
from clara_hydra.sweeper.storage import (
    StorageSpec,
    for_jobs,
    open_storage,
    resolve_storage,
    stable_sweep_root,
)
from clara_hydra.sweeper.workers import (
    WorkerRole,
    run_local,
    run_with_launcher,
    tag_log_records,
    worker_command,
    worker_id,
)
from clara_hydra.tracking.sweep import SweepTracker

# Seconds between rewrites of the result files during a sweep (at most; every batch when report_interval
# is shorter): their cost grows with the study, so rewriting them after every trial made trial 1,000 cost
# more than trial 1. They are always written when a run ends, however it ends.
RESULTS_INTERVAL = 5.0


log = logging.getLogger(__name__)


@dataclass
class RunState:
    """What :meth:`SweepRunner.run` learns before its first trial (the runner's other attributes are known
    when it is created). Set in ``run()`` in this order: the space (checked before any storage is touched),
    the storage, then, once the study is open, the baseline and whether the sampler is a grid.

    Args:
        space: the search space from ``hydra.sweeper.params`` and the command line.
        spec: where the study lives (URL, its masked form, the journal file).
        storage: the opened Optuna storage.
        baseline_values: the defaults the baseline trial runs with (``baseline_trial``), else empty.
        with_baseline: a baseline trial is enqueued (off when its defaults are not grid values).
        grid: the study's sampler is Optuna's GridSampler (it ends when the grid is exhausted).
    """

    space: SearchSpace
    spec: StorageSpec
    storage: optuna.storages.BaseStorage
    baseline_values: dict[str, Any] = field(default_factory=dict)
    with_baseline: bool = False
    grid: bool = False

    @functools.cached_property
    def coordinator(self) -> Coordinator:
        """The study lock, heartbeats and stale trials for this storage (one module per storage kind)."""
        return coordinator_for(self.storage, self.spec.journal_path)


class SweepRunner:
    """Runs one sweep of the ``clara_optuna`` plugin (created by the plugin's ``setup``).

    Args:
        settings: the ``hydra.sweeper`` keys.
        hydra_context: Hydra's context (config loader, callbacks).
        task_function: the ``@hydra.main`` function.
        config: the composed multirun config.
    """

    def __init__(
        self,
        settings: Mapping[str, Any],
        *,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
    ) -> None:
        self.settings = Settings.from_node(settings)
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.custom: Callable[[DictConfig, optuna.Trial], Any] | None = None
        if self.settings.custom_search_space:
            try:
                self.custom = get_method(self.settings.custom_search_space)
            except Exception as exc:
                raise SweepError(
                    f"hydra.sweeper.custom_search_space: cannot import {self.settings.custom_search_space}: {exc}"
                ) from exc
        self.configs: dict[int, DictConfig] = {}
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
        self.sweep_dir_override: list[str] = []
        self.composed: set[tuple[str, str]] = set()
        self.cache_dir: str | None = None
        self.role = WorkerRole.from_env()  # set when a coordinator started this process as a worker
        self.worker = worker_id(self.role)
        self.heartbeat: Heartbeat | None = None
        self.mine: set[int] = set()  # storage ids of the trials this process is running
        self.tracker: SweepTracker | None = None  # MLflow runs of the study (+tracking=mlflow)
        self.reserve = Reserve(None)  # room to record a full disk's outcome (next to the journal)
        self.disk_full: str | None = None  # the report of a full disk met by this run
        self.warned_owner = False  # keep_best's warning about a sweep folder this study does not own
        self.report_written = -math.inf  # time.monotonic() of the last report.html
        self.results_written = -math.inf  # ... and of the last result files
        self.state: RunState  # set by run() (its space and storage are checked and opened there)

    @property
    def storage(self) -> optuna.storages.BaseStorage:
        """The study's storage (AttributeError before run() opened it: the plugin's summary reads it so)."""
        return self.state.storage

    # ------------------------------------------------------------------ setup
    def run(self, arguments: list[str]) -> None:
        """Run the sweep until the study holds ``n_trials`` counted trials or a stop rule fires.

        Args:
            arguments: the command line's task overrides.

        Raises:
            SweepError: the sweep cannot start or a stop rule ended it with an error.
            KeyboardInterrupt: after Ctrl-C, once this process's trials are closed and the result files
                written (the plugin prints the summary and exits with 130); a worker started by a
                coordinator exits with 130 itself.
        """
        s = self.settings
        quiet_launcher()
        # Everything that can be checked without the storage is checked first (a sweep that cannot
        # start must leave no study behind).
        space = SearchSpace.from_config(s.params, arguments)
        build_sampler(s.sampler, space)
        build_pruner(s.pruner)
        study_name = s.study_name or str(self.config.hydra.job.name)
        spec = resolve_storage(s.storage, study_name, self.config, cwd=str(self.config.hydra.runtime.cwd))
        if s.workers > 1 and spec.url.startswith("sqlite"):
            raise SweepError(
                with_fix(
                    f"hydra.sweeper.workers={s.workers} with the SQLite storage {spec.display}: SQLite "
                    "locks the whole file per write and fails under concurrent workers (Optuna's advice)",
                    "use PostgreSQL (storage: postgresql://user:pw@host/db) or the journal file (storage: null, "
                    "or journal:///abs/path.journal)",
                )
            )
        warn_multi_gpu(self.config)
        self.state = RunState(space, spec, open_storage(spec.url, s.heartbeat_interval, s.grace_period))
        journal = self.state.spec.journal_path
        self.reserve = Reserve(journal.with_name(journal.name + ".reserve") if journal else None)
        self.reserve.create()
        cwd = Path(str(self.config.hydra.runtime.cwd))
        # Jobs in other processes keep their disk data cache next to the study (clara_hydra.runtime.diskcache).
        self.cache_dir = str(stable_sweep_root(self.config, cwd) / "cache")
        created = not study_exists(self.state.storage, study_name)
        try:
            if created:
                check_folder_free(self.sweep_dir, study_name, self.state.spec.display)
            study = self._open_study(study_name)
            check_fixed_overrides(study, self.state.space.fixed_overrides)
            self._continue_sweep_dir(study)
            claim_folder(self.sweep_dir, study_name, self.state.spec.display)
            existing = study.get_trials(deepcopy=False)
            closed = fail_stale(study, s.grace_period, set(), s.retry_interrupted)
            self.state.baseline_values = self.state.space.baseline(self.config) if s.baseline_trial else {}
            self.state.with_baseline = s.baseline_trial and not self._baseline_off_grid()
            if s.warm_start is not None:  # before the baseline is enqueued: the earlier best is trial 0
                defaults = self.state.baseline_values if s.baseline_trial else self.state.space.baseline(self.config)
                warm_start.seed_study(study, s.warm_start, self.state.space, defaults,
                                      created=created, cwd=str(cwd), announce=self.role is None,
                                      lock=lambda: self.state.coordinator.study_lock(study_name))  # fmt: skip
            if self.role is None:  # this run (alone or coordinating workers) may go past an earlier stop
                terminator.forget_stop(study)
            joined = self._join(study)
            # Distinct seeds per process, so workers and reruns draw new trials; except for the grid sampler,
            # whose seed orders the grid: grid id N (= trial N) must mean the same point in every process.
            offset = 0 if is_grid(s.sampler) else len(existing) + 1000 * joined
            study.sampler = build_sampler(s.sampler, self.state.space, seed_offset=offset)
            study.pruner = build_pruner(s.pruner)
            self.state.grid = isinstance(study.sampler, optuna.samplers.GridSampler)
            self._log_header(study, existing, closed)
            self._save_multirun_config()
            self.tracker = SweepTracker.start(self.config, study, self.state.spec, self.state.storage, self.sweep_dir)
        except BaseException as exc:
            if created:
                delete_new_study(self.state.storage, study_name, self.sweep_dir)
            if isinstance(exc, OSError) and is_disk_full(exc):  # the sweep folder's first files
                raise DiskFullError(
                    with_fix(
                        f"sweep not started: {disk_report(full_path(exc) or self.sweep_dir)}",
                        "free space on that disk (or set hydra.sweep.dir on another one), then rerun the same command",
                    )
                ) from exc
            raise
        if s.workers > 1 and self.role is None:
            self._coordinate(study)
            return
        if self.role is not None:
            tag_log_records(self.worker)
        self.heartbeat = Heartbeat(self.state.storage, s.heartbeat_interval)
        interrupted = False
        try:
            # A coordinator's workers leave the live bar to it (one bar per terminal).
            with live_progress(study, s.n_trials, enabled=False if self.role is not None else None):
                self._loop(study)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            self.heartbeat.stop()
            self._write_results(study)
            if self.tracker is not None:
                self.tracker.end(study, interrupted)
        if interrupted and self.role is not None:
            # A worker of a coordinator: its trial is closed (and retried); the coordinator reports.
            print(f"{self.worker}: interrupted (Ctrl-C); its running trial was closed and will be retried")
            raise SystemExit(130)
        if interrupted:
            raise KeyboardInterrupt  # the plugin prints the summary and exits with 130, no traceback
        if self.role is None:  # a worker started by a coordinator leaves the summary to it
            print_summary(study, self.sweep_dir)

    def _owns_sweep_dir(self, study: optuna.Study) -> bool:
        """Whether the sweep folder's ``.study.json`` names this study: only then may keep_best delete in it."""
        owner = read_owner(self.sweep_dir) or {}
        if owner.get("study") == study.study_name and owner.get("storage") == self.state.spec.display:
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

    def _baseline_off_grid(self) -> bool:
        """The grid sampler runs grid points only: a baseline whose defaults are not one is left out."""
        if not is_grid(self.settings.sampler):
            return False
        missing = sorted(set(self.state.space.params) - set(self.state.baseline_values))
        if missing:
            log.info("grid sampler: the defaults of %s are not grid values, so no baseline trial is run", missing)
        return bool(missing)

    def _write_results(self, study: optuna.Study, final: bool = True) -> None:
        """Rewrite the result files and ``report.html`` (whichever process finished the trial writes them).

        Both cost time that grows with the study, so during a sweep (``final=False``) the result files are
        rewritten at most every :data:`RESULTS_INTERVAL` seconds and the report at most every
        ``report_interval`` seconds; at the end (and on Ctrl-C, a full disk, a stop rule) always.
        """
        now = time.monotonic()
        if not final and now - self.results_written < min(RESULTS_INTERVAL, self.settings.report_interval):
            return
        self.results_written = now
        try:
            write_all(study, self.sweep_dir, self.state.spec.display, self.configs)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            self._note_disk_full(exc, self.sweep_dir)
            return
        if not final and now - self.report_written < self.settings.report_interval:
            return
        self.report_written = now
        try:
            write_report(study, self.sweep_dir)
        except Exception as exc:  # the report is a view: a plotting failure must not end a sweep
            if is_disk_full(exc):
                self._note_disk_full(exc, self.sweep_dir)
            else:
                log.warning("report.html not written: %s: %s", type(exc).__name__, exc)

    # ------------------------------------------------------------------ a full disk
    def _note_disk_full(self, exc: BaseException | None, where: Path | str) -> str:
        """Remember the first full disk met (its report names the path, mount point and free space).

        The reserve next to the journal is deleted at once, so the outcome can still be recorded.
        """
        if self.disk_full is None:
            self.disk_full = disk_report(full_path(exc) or where)
            self.reserve.release()
        return self.disk_full

    def _stop_for_disk(self, study: optuna.Study) -> DiskFullError:
        """The compact error that ends a sweep on a full disk (every trial of this run is closed by then)."""
        s = self.settings
        failed = sorted(
            t.number
            for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if t.user_attrs.get(TrialAttr.FAIL_REASON) == self.disk_full
        )
        which = f"trial(s) {', '.join(map(str, failed))} failed and will be retried; " if failed else ""
        return DiskFullError(
            with_fix(
                f"sweep stopped: {self.disk_full}; {which}study '{study.study_name}' keeps "
                f"{budget_used(study)} of n_trials={s.n_trials} finished trial(s)",
                "free space on that disk (or set hydra.sweep.dir on another one), then rerun the same command: "
                "the study resumes to n_trials",
            )
        )

    def _join(self, study: optuna.Study) -> int:
        """Enqueue the baseline trial once per study and count this process in; return its join index."""
        with self.state.coordinator.study_lock(study.study_name):
            attrs = self.state.storage.get_study_system_attrs(study_id_of(study))
            joined = int(attrs.get(SystemAttr.WORKERS_JOINED, 0))
            self.state.storage.set_study_system_attr(study_id_of(study), SystemAttr.WORKERS_JOINED, joined + 1)
            trials = study.get_trials(deepcopy=False)
            if self.state.with_baseline and not any(
                t.user_attrs.get(TrialAttr.BASELINE) and not is_interrupted(t) for t in trials
            ):
                study.enqueue_trial(self.state.baseline_values, user_attrs={TrialAttr.BASELINE: True})
        return joined

    def _coordinate(self, study: optuna.Study) -> None:
        """``workers > 1``: start the workers (local processes or launcher jobs), wait, report."""
        s = self.settings
        gpus: list[list[str] | None] = list(s.gpus) if s.gpus else [None] * s.workers
        roles = [WorkerRole(i + 1, s.workers, g) for i, g in enumerate(gpus)]
        command = worker_command()
        cwd = str(self.config.hydra.runtime.cwd)
        where = f" (GPUs {s.gpus})" if s.gpus else ""
        log.info("starting %d workers on study '%s'%s", s.workers, study.study_name, where)
        interrupted = False
        try:
            # No live bar here: the workers print their lines straight to the same terminal, and rich can
            # keep only its own process's output above a bar.
            if is_basic_launcher(self.launcher):
                codes = run_local(command, cwd, roles)
            else:
                codes = run_with_launcher(self._launcher_for, command, cwd, roles)
        except KeyboardInterrupt:
            interrupted, codes = True, []
        self._write_results(study)
        if self.tracker is not None:
            self.tracker.end(study, interrupted)
        if interrupted or 130 in codes or -2 in codes:
            raise KeyboardInterrupt  # the plugin prints the summary and exits with 130
        print_summary(study, self.sweep_dir)
        failed = [f"w{r.index} (exit code {c})" for r, c in zip(roles, codes, strict=True) if c != 0]
        if failed:
            raise SweepError(
                with_fix(
                    f"worker(s) {', '.join(failed)} of study '{study.study_name}' stopped with an error",
                    "see the worker's messages above; rerun the same command to resume the study",
                )
            )

    def _launcher_for(self, task_function: TaskFunction) -> Any:
        return Plugins.instance().instantiate_launcher(
            config=self.config, hydra_context=self.hydra_context, task_function=task_function
        )

    def _open_study(self, study_name: str) -> optuna.Study:
        study = optuna.create_study(
            study_name=study_name,
            storage=self.state.storage,
            directions=self.settings.directions,  # type: ignore[arg-type]  # checked by parse_directions
            load_if_exists=True,
        )
        found = [d.name.lower() for d in study.directions]
        if found != self.settings.directions:
            raise SweepError(
                with_fix(
                    f"study '{study_name}' in {self.state.spec.display} has direction(s) {found}, the config says "
                    f"{self.settings.directions}",
                    "set another hydra.sweeper.study_name or storage",
                )
            )
        return study

    def _continue_sweep_dir(self, study: optuna.Study) -> None:
        """Keep a study in one sweep folder across reruns (Hydra's default folder has a timestamp)."""
        stored = study.user_attrs.get(StudyAttr.SWEEP_DIR)
        if stored is None:
            study.set_user_attr(StudyAttr.SWEEP_DIR, str(self.sweep_dir))
            return
        if self.role is None:  # a coordinator's workers join the folder their coordinator just claimed
            log.info("resuming study '%s': continuing in its sweep folder %s", study.study_name, stored)
        if Path(stored) == self.sweep_dir:
            return
        self.sweep_dir = Path(stored)
        with read_write(self.config.hydra), open_dict(self.config.hydra):
            self.config.hydra.sweep.dir = stored  # the launcher reads this (it holds the same config object)
        self.sweep_dir_override = [f"hydra.sweep.dir={quote(stored)}"]

    def _log_header(self, study: optuna.Study, existing: Sequence[Any], closed: list[int]) -> None:
        s = self.settings
        log.info("Study '%s' in %s", study.study_name, self.state.spec.display)
        log.info(
            "Sampler %s, pruner %s, direction(s) %s, n_trials %d (total), n_jobs %d, workers %d",
            type(study.sampler).__name__,
            type(study.pruner).__name__,
            s.directions,
            s.n_trials,
            s.n_jobs,
            s.workers,
        )
        for spec in self.state.space.params.values():
            log.info("  %s: %s", spec.name, spec.distribution)
        if existing:
            log.info("Resuming: %d trial(s) in the study, %d count against n_trials", len(existing), budget_used(study))
        if closed:
            log.info("Closed trial(s) %s left running by a worker that is gone", closed)
        if s.workers > 1 or self.role is not None:
            log.info("Worker %s (%d worker(s) on this study)", self.worker, s.workers)

    def _save_multirun_config(self) -> None:
        path = self.sweep_dir / "multirun.yaml"
        if not path.exists():  # a resumed run keeps the first run's record
            self.sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.config, path)

    # ------------------------------------------------------------------ the loop
    def _loop(self, study: optuna.Study) -> None:
        s = self.settings
        fail_fast = FailFast(min(s.fail_fast, max(s.n_trials - budget_used(study), 0)))
        stop = terminator.start(study, s.terminator, self.state.space.params)
        poll = min(max(s.heartbeat_interval / 2, 0.5), 5.0)
        while True:
            if self._threshold_reached(study) or self._grid_exhausted(study) or (stop and stop.check(study)):
                break
            fail_stale(study, s.grace_period, self.mine, s.retry_interrupted)
            batch: list[Asked] = []
            try:
                with self.state.coordinator.study_lock(study.study_name) as locked:
                    # RUNNING trials of every worker hold their place: the study never exceeds n_trials.
                    room = s.n_trials - budget_used(study, running=True)
                    for _ in range(min(s.n_jobs, room)):
                        batch.append(self._ask(study))
                if not locked:
                    batch = self._within_budget(study, batch)
                if not batch:
                    if not self._others_busy(study):
                        break
                    # The budget is spent, but other workers still run trials: stay until they end, and
                    # fail (and retry) those of a worker that died rather than leaving them RUNNING.
                    time.sleep(poll)
                    continue
                launched = self._run_batch(study, batch)
            except BaseException as exc:
                # Ctrl-C, a launcher crash or a full disk: close what this run still holds.
                full = is_disk_full(exc)
                reason = (
                    self._note_disk_full(exc, self.state.spec.journal_path or self.sweep_dir) if full else INTERRUPTED
                )
                for a in batch:
                    close_interrupted(
                        study,
                        self.state.storage,
                        trial_id_of(a.trial),
                        a.number,
                        full or s.retry_interrupted,
                        reason=reason,
                    )
                    self._release(a)
                if full:
                    self._write_results(study)
                    raise self._stop_for_disk(study) from None
                raise
            if self.disk_full is not None:
                self._write_results(study)
                raise self._stop_for_disk(study)
            for number, result in launched:
                fail_fast.add(number, result)
            check_failure_rate(launched, s.max_failure_rate)
            if s.keep_best is not None and self._owns_sweep_dir(study):
                prune_checkpoints(study, s.keep_best, self.sweep_dir)
            self._write_results(study, final=False)
            if self.disk_full is not None:
                raise self._stop_for_disk(study)

    def _within_budget(self, study: optuna.Study, batch: list[Asked]) -> list[Asked]:
        """Without a study lock (Redis, gRPC proxy): give back trials asked beyond ``n_trials`` by a race.

        Two workers may count the same free place and both ask. Counting the trials that hold a place in
        trial-number order, every worker agrees on who is past the budget: the later trial is closed as
        ``interrupted`` (it never ran and does not count; an enqueued one is enqueued again).
        """
        over = past_budget(study.get_trials(deepcopy=False), self.settings.n_trials)
        kept = []
        for a in batch:
            if a.number not in over:
                kept.append(a)
                continue
            log.info("trial %d was asked beyond n_trials by workers asking at once: given back", a.number)
            # An enqueued trial (the baseline, a retry) goes back into the queue; a sampled one just goes.
            enqueued = SystemAttr.OPTUNA_FIXED_PARAMS in self.state.storage.get_trial_system_attrs(trial_id_of(a.trial))
            close_interrupted(study, self.state.storage, trial_id_of(a.trial), a.number, retry=enqueued)
            self._release(a)
        return kept

    def _others_busy(self, study: optuna.Study) -> bool:
        """Whether trials of other workers are RUNNING, or retries WAITING that no budget can take now."""
        active = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
        return any(trial_id_of(t) not in self.mine and t.state == TrialState.RUNNING for t in active)

    def _ask(self, study: optuna.Study) -> Asked:
        with warnings.catch_warnings():
            # Optuna warns that RDB heartbeats belong to Study.optimize; our Heartbeat runs them for the
            # ask/tell loop on purpose. Filtered here only, so a -W error run (upstream's tests) stays clean.
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
            trial = study.ask()
        try:
            return self._prepare(study, trial)
        except BaseException as exc:  # a full disk, Ctrl-C, a bad custom space: the trial is not left RUNNING
            full = is_disk_full(exc)
            reason = self._note_disk_full(exc, self.state.spec.journal_path or self.sweep_dir) if full else INTERRUPTED
            close_interrupted(
                study,
                self.state.storage,
                trial_id_of(trial),
                trial.number,
                full or self.settings.retry_interrupted,
                reason,
            )
            self.mine.discard(trial_id_of(trial))
            if self.heartbeat is not None:
                self.heartbeat.release(trial_id_of(trial))
            raise

    def _prepare(self, study: optuna.Study, trial: optuna.Trial) -> Asked:
        """Claim an asked trial, suggest its parameters and record its overrides and planned folder."""
        assert self.heartbeat is not None
        self.heartbeat.claim(trial, self.worker)
        self.mine.add(trial_id_of(trial))
        baseline = bool(trial.user_attrs.get(TrialAttr.BASELINE))
        if baseline:
            # Clara's unsearched configuration: record the defaults that lie in the space, override nothing.
            params = self.state.space.suggest(trial, only=self.state.baseline_values.keys())
            overrides = list(self.state.space.fixed_overrides)
        else:
            params = self.state.space.suggest(trial)
            if self.custom is not None:
                try:
                    self.custom(self.config, trial)
                except Exception as exc:
                    raise SweepError(
                        f"hydra.sweeper.custom_search_space: {self.settings.custom_search_space} raised "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                params.update({k: v for k, v in trial.params.items() if k not in params})
            overrides = self.state.space.overrides(params)
        trial.set_user_attr(TrialAttr.OVERRIDES, overrides[len(self.state.space.fixed_overrides) :])
        trial.set_user_attr(TrialAttr.FIXED_OVERRIDES, list(self.state.space.fixed_overrides))
        planned = self._planned_job_dir(trial.number)
        if planned is not None:
            # Recorded before the job runs: a kill between the job's end and its record still leaves
            # the folder known, so keep_best can clean its checkpoints later.
            trial.set_user_attr(TrialAttr.JOB_DIR, planned)
        return Asked(trial, params, overrides, list(self.state.space.fixed_overrides), baseline)

    def _planned_job_dir(self, number: int) -> str | None:
        """The job folder Hydra will give trial ``number`` (default ``hydra.sweep.subdir`` only)."""
        node = self.config.hydra.sweep
        raw = OmegaConf.to_container(node, resolve=False).get("subdir")  # type: ignore[union-attr]
        return str(self.sweep_dir / str(number)) if raw == "${hydra.job.num}" else None

    def _release(self, a: Asked) -> None:
        self.mine.discard(trial_id_of(a.trial))
        if self.heartbeat is not None:
            self.heartbeat.release(trial_id_of(a.trial))

    def _run_batch(self, study: optuna.Study, batch: list[Asked]) -> list[tuple[int, Result]]:
        """Launch the batch's new trainings, tell every trial; return the launched (number, result)."""
        to_launch = mark_duplicates(study, batch) if self.settings.skip_duplicates else batch
        for a in to_launch:
            self._check_composes(a)
        launched = [a for a in to_launch if a.result is None]
        for group in contiguous(launched):
            self._launch(group)
        for a in batch:
            if a.same_as is None:
                self._finish(study, a, record)
        # Twins of trials another worker is still running: wait for their outcome (training the same
        # parameters twice would waste the slot); a twin that died is trained here after all.
        for a in batch:
            if isinstance(a.same_as, optuna.trial.FrozenTrial) and not a.same_as.state.is_finished():
                a.same_as = self._await(study, a.same_as)
                if a.same_as is None:
                    self._check_composes(a)
                    if a.result is None:
                        self._launch([a])
                    to_launch.append(a)
                    self._finish(study, a, record)
        for a in batch:
            if a.same_as is not None:
                self._finish(study, a, record_duplicate)
        return [(a.number, a.result) for a in to_launch if a.result is not None]

    def _finish(self, study: optuna.Study, a: Asked, how: Callable[[optuna.Study, Asked], Any]) -> None:
        """Tell one trial (``record`` or ``record_duplicate``), stop its heartbeat, print its line."""
        if a.result is not None and self.disk_full is not None and a.result.reason == self.disk_full:
            # Not the trial's fault: FAIL with the disk's report, not counted, its parameters retried.
            if a.job_dir:
                a.trial.set_user_attr(TrialAttr.JOB_DIR, a.job_dir)
            close_interrupted(study, self.state.storage, trial_id_of(a.trial), a.number, True, reason=self.disk_full)
        else:
            how(study, a)
        if self.tracker is not None:  # the child run's final state, read back from the study
            self.tracker.trial_told(trial_id_of(a.trial), a.job_dir)
        self._release(a)
        progress.print_trial(
            study, trial_id_of(a.trial), self.settings.n_trials, workers=self._workers_seen(study), worker=self.worker
        )

    def _workers_seen(self, study: optuna.Study) -> int:
        return max(self.settings.workers, self.role.count if self.role else 1)

    def _await(self, study: optuna.Study, twin: optuna.trial.FrozenTrial) -> optuna.trial.FrozenTrial | None:
        """Wait for another worker's trial to finish; its final state, or None when it was interrupted."""
        s = self.settings
        log.info("trial(s) of this worker repeat trial %d, running elsewhere: waiting for its outcome", twin.number)
        while True:
            frozen = self.state.storage.get_trial(trial_id_of(twin))
            if frozen.state.is_finished():
                return None if is_interrupted(frozen) else frozen
            fail_stale(study, s.grace_period, self.mine, s.retry_interrupted)
            time.sleep(min(max(s.heartbeat_interval / 2, 0.5), 5.0))

    def _check_composes(self, a: Asked) -> None:
        """Compose the job's config before launching: a bad override fails this trial, not the sweep.

        The launcher composes again, so only trials with a categorical value (a config-group option, a
        list) not yet seen are checked: a composition costs ~0.1 s, and continuous values that compose
        once compose always.
        """
        seen = _composition_keys(self.state.space, a.params)
        if seen <= self.composed:
            return
        try:
            self.hydra_context.config_loader.load_sweep_config(self.config, self._job_overrides(a))
        except Exception as exc:
            a.result = Result(Outcome.FAIL, reason=f"config composition failed: {type(exc).__name__}: {exc}", error=exc)
            return
        self.composed |= seen

    def _job_overrides(self, a: Asked) -> list[str]:
        env = trial_context.identity_env(
            for_jobs(self.state.spec),  # a URL with a password goes by reference: it is written nowhere
            a.trial.study.study_name,
            trial_id_of(a.trial),
            a.number,
            cache_dir=self.cache_dir,
            concurrent=self._concurrent(),
            worker=self.worker,
            workers=self._workers_seen(a.trial.study),
            devices=self.role.gpus if self.role else None,
            tracking=self.tracker.for_job(trial_id_of(a.trial), a.number, a.trial.params) if self.tracker else None,
        )
        return a.overrides + self.sweep_dir_override + trial_report.identity_overrides(env)

    def _concurrent(self) -> int:
        """Trials of this sweep running at once on this machine: the workers here, or a parallel batch."""
        if self.role is not None:
            return self.role.count if self.role.gpus is None and self.role.local else 1
        return 1 if is_basic_launcher(self.launcher) else self.settings.n_jobs

    def _launch(self, group: list[Asked]) -> None:
        with ExitStack() as stack:
            for a in group:  # same-process launchers (basic) let report() use these live trials
                stack.enter_context(trial_report.live_trial(a.trial))
            # initial_job_idx = the trial number: job folder N holds trial N, across reruns too
            try:
                returns = self.launcher.launch([self._job_overrides(a) for a in group], initial_job_idx=group[0].number)
            except OSError as exc:  # Hydra's own writes in the job folder (.hydra/*.yaml, the log)
                if not is_disk_full(exc):
                    raise
                reason = self._note_disk_full(exc, self.sweep_dir)
                for a in group:
                    a.result = Result(Outcome.FAIL, reason=reason)
                return
        for a, ret in zip(group, returns, strict=True):
            a.result = classify(ret.status == JobStatus.FAILED, ret._return_value, len(self.settings.directions))
            a.job_dir = _job_dir(ret)
            if a.result.outcome is Outcome.FAIL and is_disk_full(a.result.error):
                a.result = Result(
                    Outcome.FAIL, reason=self._note_disk_full(a.result.error, a.job_dir or self.sweep_dir)
                )
            if a.result.outcome is Outcome.COMPLETE and ret.cfg is not None:
                self.configs[a.number] = ret.cfg

    # ------------------------------------------------------------------ stop rules
    def _threshold_reached(self, study: optuna.Study) -> bool:
        threshold = self.settings.stop_threshold
        if threshold is None:
            return False
        maximize = self.settings.directions[0] == "maximize"
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.value is not None and (t.value >= threshold if maximize else t.value <= threshold):
                log.info(
                    "stop_threshold %g reached by trial %d (value %g): ending the sweep", threshold, t.number, t.value
                )
                return True
        return False

    def _grid_exhausted(self, study: optuna.Study) -> bool:
        if not self.state.grid or study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            return False
        sampler = study.sampler
        assert isinstance(sampler, optuna.samplers.GridSampler)
        if sampler.is_exhausted(study):
            log.info("grid sampler: every grid point has been tried; ending the sweep")
            return True
        return False


def _composition_keys(space: SearchSpace, params: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(name, value) for categorical values, (name, "*") for numeric ones: what a composition check covers."""
    keys = set()
    for name, value in params.items():
        spec = space.params.get(name)
        categorical = spec is None or spec.elements
        keys.add((name, repr(value) if categorical else "*"))
    return keys


def _job_dir(ret: JobReturn) -> str | None:
    output_dir = OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir", default=None) if ret.hydra_cfg else None
    return str(output_dir) if output_dir else None
