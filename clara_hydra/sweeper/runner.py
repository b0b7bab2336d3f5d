"""The sweep loop: ask a batch of trials, launch their jobs with Hydra's launcher, tell the outcomes.

:class:`SweepRunner` is the plugin's engine and a small loop over one explicit :class:`SweepState`:

1. open (:func:`clara_hydra.sweeper.opening.open_run`): check the space, open the storage and the study,
   claim the sweep folder, enqueue the baseline trial; ``workers > 1`` in one command then only starts the
   workers (:func:`clara_hydra.sweeper.workers.coordinate`) and waits for them;
2. per batch of ``n_jobs`` trials: fail the trials of dead workers (:mod:`.heartbeat`), ask under the
   study's lock (RUNNING trials of every worker count against ``n_trials``), run the batch (duplicates
   reuse an outcome, the rest are Hydra jobs: :class:`clara_hydra.sweeper.jobs.Jobs`), apply the stop
   rules (``fail_fast``, ``max_failure_rate``, ``stop_threshold``, the terminator, an exhausted grid),
   delete checkpoints outside the best ``keep_best``, and refresh the result files on their timer;
3. finish: stop the heartbeat, write the result files and the report, end the tracked runs, print the
   summary. Whatever ends the loop (Ctrl-C, a full disk, a launcher crash), the trials this process holds
   are closed first: nothing stays RUNNING.

Any number of these loops may run on one study at once (``workers``, or the same command on several
machines).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method
from omegaconf import DictConfig
from optuna.trial import TrialState

from clara_hydra.errors import SweepError
from clara_hydra.runtime.console import quiet_launcher
from clara_hydra.sweep_record import SystemAttr, TrialAttr
from clara_hydra.sweeper import terminator
from clara_hydra.sweeper._optuna_private import trial_id_of
from clara_hydra.sweeper.batch import Asked, contiguous, mark_duplicates, record, record_duplicate
from clara_hydra.sweeper.checkpoints import prune_checkpoints
from clara_hydra.sweeper.disk import is_disk_full
from clara_hydra.sweeper.failures import INTERRUPTED, FailFast, Result, check_failure_rate
from clara_hydra.sweeper.heartbeat import Heartbeat, fail_stale
from clara_hydra.sweeper.jobs import Jobs
from clara_hydra.sweeper.live import live_progress
from clara_hydra.sweeper.opening import open_run
from clara_hydra.sweeper.progress import print_trial
from clara_hydra.sweeper.results import print_summary
from clara_hydra.sweeper.resume import budget_used, close_interrupted, is_interrupted, past_budget
from clara_hydra.sweeper.settings import Settings
from clara_hydra.sweeper.state import SweepState
from clara_hydra.sweeper.workers import coordinate, tag_log_records

log = logging.getLogger(__name__)


class SweepRunner:
    """Runs one sweep of the ``clara_optuna`` plugin (created by the plugin's ``setup``).

    Args:
        settings: the ``hydra.sweeper`` keys.
        hydra_context: Hydra's context (config loader, callbacks).
        task_function: the ``@hydra.main`` function.
        config: the composed multirun config.

    Attributes:
        state: the run's state, once :meth:`run` has opened the study (None before; the plugin's Ctrl-C
            summary reads it).
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
        self.jobs = Jobs(self.launcher, hydra_context, config)
        self.custom = _custom_search_space(self.settings.custom_search_space)
        self.state: SweepState | None = None

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
        quiet_launcher()
        state = self.state = open_run(self.settings, self.config, arguments, self.launcher)
        if state.settings.workers > 1 and state.role is None:
            coordinate(state, self.launcher, self._launcher_for, str(self.config.hydra.runtime.cwd))
            return
        if state.role is not None:
            tag_log_records(state.worker)
        state.heartbeat = Heartbeat(state.storage, state.settings.heartbeat_interval)
        interrupted = False
        try:
            # A coordinator's workers leave the live bar to it (one bar per terminal).
            with live_progress(state.study, state.settings.n_trials, enabled=False if state.role else None):
                self._loop(state)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            state.heartbeat.stop()
            state.write_results()
            if state.tracker is not None:
                state.tracker.end(state.study, interrupted)
        if interrupted and state.role is not None:
            # A worker of a coordinator: its trial is closed (and retried); the coordinator reports.
            print(f"{state.worker}: interrupted (Ctrl-C); its running trial was closed and will be retried")
            raise SystemExit(130)
        if interrupted:
            raise KeyboardInterrupt  # the plugin prints the summary and exits with 130, no traceback
        if state.role is None:  # a worker started by a coordinator leaves the summary to it
            print_summary(state.study, state.sweep_dir)

    # ------------------------------------------------------------------ the loop
    def _loop(self, state: SweepState) -> None:
        s, study = state.settings, state.study
        fail_fast = FailFast(min(s.fail_fast, max(s.n_trials - budget_used(study), 0)))
        stop = terminator.start(study, s.terminator, state.space.params)
        poll = min(max(s.heartbeat_interval / 2, 0.5), 5.0)
        while not (_threshold_reached(state) or _grid_exhausted(state) or (stop and stop.check(study))):
            fail_stale(study, s.grace_period, state.mine, s.retry_interrupted)
            batch: list[Asked] = []
            try:
                with state.coordinator.study_lock(study.study_name) as locked:
                    # RUNNING trials of every worker hold their place: the study never exceeds n_trials.
                    room = s.n_trials - budget_used(study, running=True)
                    for _ in range(min(s.n_jobs, room)):
                        batch.append(self._ask(state))
                if not locked:
                    batch = _within_budget(state, batch)
                if not batch:
                    if not _others_busy(state):
                        break
                    # The budget is spent, but other workers still run trials: stay until they end, and
                    # fail (and retry) those of a worker that died rather than leaving them RUNNING.
                    time.sleep(poll)
                    continue
                launched = _run_batch(state, self.jobs, batch)
            except BaseException as exc:  # Ctrl-C, a launcher crash or a full disk: close what this run holds
                full = is_disk_full(exc)
                reason = state.note_disk_full(exc) if full else INTERRUPTED
                for a in batch:
                    close_interrupted(
                        study, state.storage, trial_id_of(a.trial), a.number, full or s.retry_interrupted, reason
                    )
                    state.release(a.trial)
                if full:
                    state.write_results()
                    raise state.stop_for_disk() from None
                raise
            if state.disk_full is not None:
                state.write_results()
                raise state.stop_for_disk()
            for number, result in launched:
                fail_fast.add(number, result)
            check_failure_rate(launched, s.max_failure_rate)
            if s.keep_best is not None and state.owns_sweep_dir():
                prune_checkpoints(study, s.keep_best, state.sweep_dir)
            state.write_results(final=False)
            if state.disk_full is not None:
                raise state.stop_for_disk()

    def _ask(self, state: SweepState) -> Asked:
        with warnings.catch_warnings():
            # Optuna warns that RDB heartbeats belong to Study.optimize; our Heartbeat runs them for the
            # ask/tell loop on purpose. Filtered here only, so a -W error run (upstream's tests) stays clean.
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
            trial = state.study.ask()
        try:
            state.hold(trial)
            return self._prepare(state, trial)
        except BaseException as exc:  # a full disk, Ctrl-C, a bad custom space: the trial is not left RUNNING
            full = is_disk_full(exc)
            reason = state.note_disk_full(exc) if full else INTERRUPTED
            retry = full or state.settings.retry_interrupted
            close_interrupted(state.study, state.storage, trial_id_of(trial), trial.number, retry, reason)
            state.release(trial)
            raise

    def _prepare(self, state: SweepState, trial: optuna.Trial) -> Asked:
        """Suggest an asked trial's parameters and record its overrides and planned folder."""
        space = state.space
        fixed = list(space.fixed_overrides)
        baseline = bool(trial.user_attrs.get(TrialAttr.BASELINE))
        if baseline:
            # Clara's unsearched configuration: record the defaults that lie in the space, override nothing.
            params = space.suggest(trial, only=state.baseline_values.keys())
            overrides = list(fixed)
        else:
            params = space.suggest(trial)
            if self.custom is not None:
                try:
                    self.custom(self.config, trial)
                except Exception as exc:
                    raise SweepError(
                        f"hydra.sweeper.custom_search_space: {state.settings.custom_search_space} raised "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                params.update({k: v for k, v in trial.params.items() if k not in params})
            overrides = space.overrides(params)
        trial.set_user_attr(TrialAttr.OVERRIDES, overrides[len(fixed) :])
        trial.set_user_attr(TrialAttr.FIXED_OVERRIDES, fixed)
        planned = state.planned_job_dir(trial.number)
        if planned is not None:
            # Recorded before the job runs: a kill between the job's end and its record still leaves
            # the folder known, so keep_best can clean its checkpoints later.
            trial.set_user_attr(TrialAttr.JOB_DIR, planned)
        return Asked(trial, params, overrides, fixed, baseline)

    def _launcher_for(self, task_function: TaskFunction) -> Any:
        return Plugins.instance().instantiate_launcher(
            config=self.config, hydra_context=self.hydra_context, task_function=task_function
        )


def _custom_search_space(target: str | None) -> Callable[[DictConfig, optuna.Trial], Any] | None:
    """Upstream's ``custom_search_space``: a function ``(cfg, trial)`` that suggests more parameters."""
    if not target:
        return None
    try:
        return get_method(target)
    except Exception as exc:
        raise SweepError(f"hydra.sweeper.custom_search_space: cannot import {target}: {exc}") from exc


# ---------------------------------------------------------------------- one batch


def _run_batch(state: SweepState, jobs: Jobs, batch: list[Asked]) -> list[tuple[int, Result]]:
    """Launch the batch's new trainings and tell every trial of it.

    Returns:
        (number, result) of each trial launched here (the stop rules judge them).
    """
    to_launch = mark_duplicates(state.study, batch) if state.settings.skip_duplicates else batch
    for a in to_launch:
        jobs.check_composes(state, a)
    for group in contiguous([a for a in to_launch if a.result is None]):
        jobs.launch(state, group)
    for a in batch:
        if a.same_as is None:
            _tell(state, a, record)
    # Twins of trials another worker is still running: wait for their outcome (training the same
    # parameters twice would waste the slot); a twin that died is trained here after all.
    for a in batch:
        if isinstance(a.same_as, optuna.trial.FrozenTrial) and not a.same_as.state.is_finished():
            a.same_as = _await(state, a.same_as)
            if a.same_as is None:
                jobs.check_composes(state, a)
                if a.result is None:
                    jobs.launch(state, [a])
                to_launch.append(a)
                _tell(state, a, record)
    for a in batch:
        if a.same_as is not None:
            _tell(state, a, record_duplicate)
    return [(a.number, a.result) for a in to_launch if a.result is not None]


def _tell(state: SweepState, a: Asked, how: Callable[[optuna.Study, Asked], Any]) -> None:
    """Tell one trial (``record`` or ``record_duplicate``), stop its heartbeat, print its line."""
    study = state.study
    if a.result is not None and state.disk_full is not None and a.result.reason == state.disk_full:
        # Not the trial's fault: FAIL with the disk's report, not counted, its parameters retried.
        if a.job_dir:
            a.trial.set_user_attr(TrialAttr.JOB_DIR, a.job_dir)
        close_interrupted(study, state.storage, trial_id_of(a.trial), a.number, True, reason=state.disk_full)
    else:
        how(study, a)
    if state.tracker is not None:  # the child run's final state, read back from the study
        state.tracker.trial_told(trial_id_of(a.trial), a.job_dir)
    state.release(a.trial)
    print_trial(study, trial_id_of(a.trial), state.settings.n_trials, workers=state.workers, worker=state.worker)


def _await(state: SweepState, twin: optuna.trial.FrozenTrial) -> optuna.trial.FrozenTrial | None:
    """Wait for another worker's trial to finish; its final state, or None when it was interrupted."""
    s = state.settings
    log.info("trial(s) of this worker repeat trial %d, running elsewhere: waiting for its outcome", twin.number)
    while True:
        frozen = state.storage.get_trial(trial_id_of(twin))
        if frozen.state.is_finished():
            return None if is_interrupted(frozen) else frozen
        fail_stale(state.study, s.grace_period, state.mine, s.retry_interrupted)
        time.sleep(min(max(s.heartbeat_interval / 2, 0.5), 5.0))


# ---------------------------------------------------------------------- budget and stop rules
def _within_budget(state: SweepState, batch: list[Asked]) -> list[Asked]:
    """Without a study lock (Redis, gRPC proxy): give back trials asked beyond ``n_trials`` by a race.

    Two workers may count the same free place and both ask. Counting the trials that hold a place in
    trial-number order, every worker agrees on who is past the budget: the later trial is closed as
    ``interrupted`` (it never ran and does not count; an enqueued one is enqueued again).
    """
    over = past_budget(state.study.get_trials(deepcopy=False), state.settings.n_trials)
    kept = []
    for a in batch:
        if a.number not in over:
            kept.append(a)
            continue
        log.info("trial %d was asked beyond n_trials by workers asking at once: given back", a.number)
        # An enqueued trial (the baseline, a retry) goes back into the queue; a sampled one just goes.
        tid = trial_id_of(a.trial)
        enqueued = SystemAttr.OPTUNA_FIXED_PARAMS in state.storage.get_trial_system_attrs(tid)
        close_interrupted(state.study, state.storage, tid, a.number, retry=enqueued)
        state.release(a.trial)
    return kept


def _others_busy(state: SweepState) -> bool:
    """Whether trials of other workers are RUNNING (this worker waits for them before it ends)."""
    running = state.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return any(trial_id_of(t) not in state.mine for t in running)


def _threshold_reached(state: SweepState) -> bool:
    threshold = state.settings.stop_threshold
    if threshold is None:
        return False
    maximize = state.settings.directions[0] == "maximize"
    for t in state.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.value is not None and (t.value >= threshold if maximize else t.value <= threshold):
            log.info("stop_threshold %g reached by trial %d (value %g): ending the sweep", threshold, t.number, t.value)
            return True
    return False


def _grid_exhausted(state: SweepState) -> bool:
    study = state.study
    if not state.grid or study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        return False
    sampler = study.sampler
    assert isinstance(sampler, optuna.samplers.GridSampler)
    if sampler.is_exhausted(study):
        log.info("grid sampler: every grid point has been tried; ending the sweep")
        return True
    return False
