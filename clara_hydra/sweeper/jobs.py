"""Trials as Hydra jobs: their overrides, a composition check before launching, and the launch itself.

Parallelism is the launcher's (Hydra's basic launcher, joblib, submitit...): a group of consecutive trial
numbers is one ``launcher.launch`` call whose first job number is the first trial's, so job folder N holds
trial N across reruns too. A job learns which trial it is from one environment variable set through
``hydra.job.env_set`` (:func:`clara_hydra.trial_context.identity_env`); a storage URL with a password goes
there by reference only.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf

from clara_hydra import trial_context
from clara_hydra.sweeper import trial_report
from clara_hydra.sweeper._optuna_private import job_result, trial_id_of
from clara_hydra.sweeper.batch import Asked
from clara_hydra.sweeper.disk import is_disk_full
from clara_hydra.sweeper.failures import Outcome, Result, classify
from clara_hydra.sweeper.space import SearchSpace
from clara_hydra.sweeper.state import SweepState
from clara_hydra.sweeper.storage import for_jobs


@dataclass
class Jobs:
    """Launches trials' jobs with Hydra's launcher.

    Args:
        launcher: the Hydra launcher (instantiated by Hydra's plugin registry).
        hydra_context: Hydra's context (its config loader composes a job's config for the check).
        config: the composed multirun config.
    """

    launcher: Any
    hydra_context: HydraContext
    config: DictConfig

    def check_composes(self, state: SweepState, a: Asked) -> None:
        """Compose the job's config before launching: a bad override fails this trial, not the sweep.

        The launcher composes again, so only trials with a categorical value (a config-group option, a
        list) not yet seen are checked: a composition costs ~0.05 s, and continuous values that compose
        once compose always.
        """
        seen = _composition_keys(state.space, a.params)
        if seen <= state.composed:
            return
        try:
            self.hydra_context.config_loader.load_sweep_config(self.config, self.overrides(state, a))
        except Exception as exc:
            a.result = Result(Outcome.FAIL, reason=f"config composition failed: {type(exc).__name__}: {exc}", error=exc)
            return
        state.composed |= seen

    def overrides(self, state: SweepState, a: Asked) -> list[str]:
        """The job's overrides: the trial's, the resumed study's folder, and the trial identity."""
        tid = trial_id_of(a.trial)
        env = trial_context.identity_env(
            for_jobs(state.spec),  # a URL with a password goes by reference: it is written nowhere
            state.study.study_name,
            tid,
            a.number,
            cache_dir=state.cache_dir,
            concurrent=state.concurrent,
            worker=state.worker,
            workers=state.workers,
            devices=state.role.gpus if state.role else None,
            tracking=state.tracker.for_job(tid, a.number, a.trial.params) if state.tracker else None,
        )
        return a.overrides + state.sweep_dir_override + trial_report.identity_overrides(env)

    def launch(self, state: SweepState, group: list[Asked]) -> None:
        """Run a group of consecutive trials' jobs; set each one's result, job folder and config."""
        with ExitStack() as stack:
            for a in group:  # same-process launchers (basic) let report() use these live trials
                stack.enter_context(trial_report.live_trial(a.trial))
            # initial_job_idx = the trial number: job folder N holds trial N, across reruns too
            try:
                returns = self.launcher.launch(
                    [self.overrides(state, a) for a in group], initial_job_idx=group[0].number
                )
            except OSError as exc:  # Hydra's own writes in the job folder (.hydra/*.yaml, the log)
                if not is_disk_full(exc):
                    raise
                reason = state.note_disk_full(exc, state.sweep_dir)
                for a in group:
                    a.result = Result(Outcome.FAIL, reason=reason)
                return
        n_objectives = len(state.settings.directions)
        for a, ret in zip(group, returns, strict=True):
            a.result = classify(ret.status == JobStatus.FAILED, job_result(ret), n_objectives)
            a.job_dir = _job_dir(ret)
            if a.result.outcome is Outcome.FAIL and is_disk_full(a.result.error):
                reason = state.note_disk_full(a.result.error, a.job_dir or state.sweep_dir)
                a.result = Result(Outcome.FAIL, reason=reason)
            if a.result.outcome is Outcome.COMPLETE and ret.cfg is not None:
                state.configs[a.number] = ret.cfg


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
