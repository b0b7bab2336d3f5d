"""The sweep loop: ask a batch of trials, launch their jobs with Hydra's launcher, tell the outcomes.

One batch = ``n_jobs`` trials. Per batch: ask (the baseline trial first, enqueued retries next),
reuse the values of parameter sets already COMPLETE (``skip_duplicates``), launch the rest (job number
= trial number), record COMPLETE/PRUNED/FAIL with reasons, apply the stop rules (``fail_fast``,
``max_failure_rate``, ``stop_threshold``, an exhausted grid), delete checkpoints outside the best
``keep_best``, and rewrite the result files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from optuna.trial import TrialState

from clara_hydra.errors import SweepError
from clara_hydra.sweeper import trial_report
from clara_hydra.sweeper.batch import ATTR_FIXED, Asked, contiguous, mark_duplicates, record, record_duplicate
from clara_hydra.sweeper.checkpoints import prune_checkpoints
from clara_hydra.sweeper.failures import FailFast, Outcome, Result, check_failure_rate, classify
from clara_hydra.sweeper.grammar import quote
from clara_hydra.sweeper.optuna_objects import build_pruner, build_sampler
from clara_hydra.sweeper.results import (
    ATTR_BASELINE,
    ATTR_OVERRIDES,
    print_summary,
    write_all,
)
from clara_hydra.sweeper.resume import STUDY_ATTR_SWEEP_DIR, budget_used, close_interrupted, close_stale
from clara_hydra.sweeper.settings import Settings
from clara_hydra.sweeper.space import SearchSpace
from clara_hydra.sweeper.storage import open_storage, resolve_storage, stable_sweep_root

log = logging.getLogger(__name__)


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

    # ------------------------------------------------------------------ setup
    def run(self, arguments: list[str]) -> None:
        """Run the sweep until the study holds ``n_trials`` finished trials or a stop rule fires.

        Args:
            arguments: the command line's task overrides.
        """
        s = self.settings
        self.space = SearchSpace.from_config(s.params, arguments)
        study_name = s.study_name or str(self.config.hydra.job.name)
        self.spec = resolve_storage(s.storage, study_name, self.config, cwd=str(self.config.hydra.runtime.cwd))
        self.storage = open_storage(self.spec.url)
        cwd = Path(str(self.config.hydra.runtime.cwd))
        # Jobs in other processes keep their disk data cache next to the study (clara_hydra.runtime.diskcache).
        self.cache_dir = str(stable_sweep_root(self.config, cwd) / "cache")
        study = self._open_study(study_name)
        existing = study.get_trials(deepcopy=False)
        closed = close_stale(study, self.storage, s.retry_interrupted)
        self._continue_sweep_dir(study)
        study.sampler = build_sampler(s.sampler, self.space, seed_offset=len(existing))
        study.pruner = build_pruner(s.pruner)
        self.grid = isinstance(study.sampler, optuna.samplers.GridSampler)
        self.baseline_values = self.space.baseline(self.config) if s.baseline_trial else {}
        if s.baseline_trial and not any(t.user_attrs.get(ATTR_BASELINE) for t in existing):
            study.enqueue_trial(self.baseline_values, user_attrs={ATTR_BASELINE: True})
        self._log_header(study, existing, closed)
        self._save_multirun_config()
        try:
            self._loop(study)
        finally:
            write_all(study, self.sweep_dir, self.spec.display, self.configs)
        print_summary(study, self.sweep_dir)

    def _open_study(self, study_name: str) -> optuna.Study:
        study = optuna.create_study(
            study_name=study_name,
            storage=self.storage,
            directions=self.settings.directions,  # type: ignore[arg-type]  # checked by parse_directions
            load_if_exists=True,
        )
        found = [d.name.lower() for d in study.directions]
        if found != self.settings.directions:
            raise SweepError(
                f"study '{study_name}' in {self.spec.display} has direction(s) {found}, the config says "
                f"{self.settings.directions}\n    fix: set another hydra.sweeper.study_name or storage"
            )
        return study

    def _continue_sweep_dir(self, study: optuna.Study) -> None:
        """Keep a study in one sweep folder across reruns (Hydra's default folder has a timestamp)."""
        stored = study.user_attrs.get(STUDY_ATTR_SWEEP_DIR)
        if stored is None:
            study.set_user_attr(STUDY_ATTR_SWEEP_DIR, str(self.sweep_dir))
            return
        if Path(stored) == self.sweep_dir:
            return
        log.info("resuming study '%s': continuing in its sweep folder %s", study.study_name, stored)
        self.sweep_dir = Path(stored)
        with read_write(self.config.hydra), open_dict(self.config.hydra):
            self.config.hydra.sweep.dir = stored  # the launcher reads this (it holds the same config object)
        self.sweep_dir_override = [f"hydra.sweep.dir={quote(stored)}"]

    def _log_header(self, study: optuna.Study, existing: Sequence[Any], closed: list[int]) -> None:
        s = self.settings
        log.info("Study '%s' in %s", study.study_name, self.spec.display)
        log.info(
            "Sampler %s, pruner %s, direction(s) %s, n_trials %d (total), n_jobs %d",
            type(study.sampler).__name__,
            type(study.pruner).__name__,
            s.directions,
            s.n_trials,
            s.n_jobs,
        )
        for spec in self.space.params.values():
            log.info("  %s: %s", spec.name, spec.distribution)
        if existing:
            log.info("Resuming: %d trial(s) in the study, %d count against n_trials", len(existing), budget_used(study))
        if closed:
            log.info("Closed trial(s) %s left running by an earlier run", closed)

    def _save_multirun_config(self) -> None:
        path = self.sweep_dir / "multirun.yaml"
        if not path.exists():  # a resumed run keeps the first run's record
            self.sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.config, path)

    # ------------------------------------------------------------------ the loop
    def _loop(self, study: optuna.Study) -> None:
        s = self.settings
        fail_fast = FailFast(min(s.fail_fast, max(s.n_trials - budget_used(study), 0)))
        while (used := budget_used(study)) < s.n_trials:
            if self._threshold_reached(study) or self._grid_exhausted(study):
                break
            batch: list[Asked] = []
            try:
                for _ in range(min(s.n_jobs, s.n_trials - used)):
                    batch.append(self._ask(study))
                launched = self._run_batch(study, batch)
            except BaseException:
                for a in batch:  # Ctrl-C or a launcher crash: close what this run still holds
                    close_interrupted(study, self.storage, a.trial._trial_id, a.number, s.retry_interrupted)
                raise
            for number, result in launched:
                fail_fast.add(number, result)
            check_failure_rate(launched, s.max_failure_rate)
            if s.keep_best is not None:
                prune_checkpoints(study, s.keep_best)
            write_all(study, self.sweep_dir, self.spec.display, self.configs)

    def _ask(self, study: optuna.Study) -> Asked:
        trial = study.ask()
        baseline = bool(trial.user_attrs.get(ATTR_BASELINE))
        if baseline:
            # Clara's unsearched configuration: record the defaults that lie in the space, override nothing.
            params = self.space.suggest(trial, only=self.baseline_values.keys())
            overrides = list(self.space.fixed_overrides)
        else:
            params = self.space.suggest(trial)
            if self.custom is not None:
                try:
                    self.custom(self.config, trial)
                except Exception as exc:
                    raise SweepError(
                        f"hydra.sweeper.custom_search_space: {self.settings.custom_search_space} raised "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                params.update({k: v for k, v in trial.params.items() if k not in params})
            overrides = self.space.overrides(params)
        trial.set_user_attr(ATTR_OVERRIDES, overrides[len(self.space.fixed_overrides) :])
        trial.set_user_attr(ATTR_FIXED, list(self.space.fixed_overrides))
        return Asked(trial, params, overrides, list(self.space.fixed_overrides), baseline)

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
                record(study, a)
        for a in batch:
            if a.same_as is not None:
                record_duplicate(study, a)
        return [(a.number, a.result) for a in to_launch if a.result is not None]

    def _check_composes(self, a: Asked) -> None:
        """Compose the job's config before launching: a bad override fails this trial, not the sweep.

        The launcher composes again, so only trials with a categorical value (a config-group option, a
        list) not yet seen are checked: a composition costs ~0.1 s, and continuous values that compose
        once compose always.
        """
        seen = _composition_keys(self.space, a.params)
        if seen <= self.composed:
            return
        try:
            self.hydra_context.config_loader.load_sweep_config(self.config, self._job_overrides(a))
        except Exception as exc:
            a.result = Result(Outcome.FAIL, reason=f"config composition failed: {type(exc).__name__}: {exc}", error=exc)
            return
        self.composed |= seen

    def _job_overrides(self, a: Asked) -> list[str]:
        env = trial_report.identity_env(
            self.spec.url, a.trial.study.study_name, a.trial._trial_id, a.number, cache_dir=self.cache_dir
        )
        return a.overrides + self.sweep_dir_override + trial_report.identity_overrides(env)

    def _launch(self, group: list[Asked]) -> None:
        with ExitStack() as stack:
            for a in group:  # same-process launchers (basic) let report() use these live trials
                stack.enter_context(trial_report.live_trial(a.trial))
            # initial_job_idx = the trial number: job folder N holds trial N, across reruns too
            returns = self.launcher.launch([self._job_overrides(a) for a in group], initial_job_idx=group[0].number)
        for a, ret in zip(group, returns, strict=True):
            a.result = classify(ret.status == JobStatus.FAILED, ret._return_value, len(self.settings.directions))
            a.job_dir = _job_dir(ret)
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
        if not self.grid or study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
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
