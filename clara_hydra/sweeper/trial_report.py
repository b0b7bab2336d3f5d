"""Report intermediate values from inside a trial, so the sweep's pruner can stop it early.

The runtime calls :func:`report` after every validation::

    from clara_hydra.sweeper.trial_report import report
    report(metric_value, epoch)   # raises optuna.TrialPruned when the pruner says stop

and lets ``optuna.TrialPruned`` propagate out of the task function; the sweeper records the trial as
PRUNED. Outside a sweep (``python train.py`` without ``-m``, or another sweeper) :func:`report` does
nothing.

How a job knows its trial: :mod:`clara_hydra.trial_context` (the sweeper adds one
``++hydra.job.env_set.CLARA_HYDRA_OPTUNA_TRIAL=...`` override to every job, so Hydra itself sets that
environment variable around the task function, in whatever process a launcher runs it; the user's
config is untouched). When the job runs in the sweeper's own
process (Hydra's basic launcher) the live ``optuna.Trial`` is used directly; otherwise (joblib,
submitit) the job reopens the study from the storage URL and builds ``optuna.trial.Trial(study,
trial_id)``, with the pruner rebuilt from ``hydra.sweeper.pruner`` of the job's Hydra config.

This module is imported by the runtime on every run: it imports Optuna only inside a sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from clara_hydra.sweeper._optuna_private import trial_id_of

# The job-side identity lives in the neutral module both the runtime and the sweeper import; these
# names stay importable from here for tasks written against earlier releases.
from clara_hydra.trial_context import (
    ENV_TRIAL,
    concurrent_trials,
    identity,
    identity_env,
    in_sweep,
    mark_in_process,
    runs_in_sweeper_process,
    trial_number,
)

if TYPE_CHECKING:
    import optuna

__all__ = [
    "ENV_TRIAL",
    "concurrent_trials",
    "current_trial",
    "identity",
    "identity_env",
    "identity_overrides",
    "in_sweep",
    "live_trial",
    "report",
    "runs_in_sweeper_process",
    "trial_number",
]

log = logging.getLogger(__name__)

# trial_id -> the sweeper's own Trial object, while its job runs in the sweeper's process.
_live: dict[int, optuna.Trial] = {}
# (storage URL, study, trial_id) -> a Trial rebuilt from the storage in a launcher's worker process.
_reopened: dict[tuple[str, str, int], optuna.Trial] = {}


def identity_overrides(env: dict[str, str]) -> list[str]:
    """Hydra overrides that make Hydra set ``env`` around the job (``hydra.job.env_set``).

    Args:
        env: from :func:`clara_hydra.trial_context.identity_env`.

    Returns:
        ``++hydra.job.env_set.NAME='value'`` overrides (``++``: add, or replace a value from the config).
    """
    from clara_hydra.sweeper.grammar import quote

    return [f"++hydra.job.env_set.{name}={quote(value)}" for name, value in env.items()]


@contextmanager
def live_trial(trial: optuna.Trial) -> Iterator[None]:
    """Make ``trial`` the one :func:`report` uses while its job runs in this process."""
    _live[trial_id_of(trial)] = trial
    mark_in_process(trial_id_of(trial), True)
    try:
        yield
    finally:
        _live.pop(trial_id_of(trial), None)
        mark_in_process(trial_id_of(trial), False)


def current_trial() -> optuna.Trial | None:
    """The running trial: the live one when in the sweeper's process, else reopened from storage.

    Returns:
        The trial, or ``None`` outside a sweep.
    """
    ident = identity()
    if ident is None:
        return None
    trial_id = int(ident["trial_id"])
    if trial_id in _live:
        return _live[trial_id]
    from clara_hydra.sweeper.storage import from_job_config

    study_name = str(ident["study"])
    url = from_job_config(str(ident["storage"]), study_name)
    key = (url, study_name, trial_id)
    if key not in _reopened:
        _reopened[key] = _reopen(url, study_name, trial_id)
    return _reopened[key]


def report(value: float, step: int) -> None:
    """Report an intermediate objective value; raise ``optuna.TrialPruned`` when the pruner says stop.

    Args:
        value: the validation key metric at this step.
        step: the step (the epoch); each step is reported once.

    Raises:
        optuna.TrialPruned: the sweep's pruner decided to stop this trial. Let it propagate out of
            the task function: the sweeper then records the trial as PRUNED.
    """
    trial = current_trial()
    if trial is None:
        return
    import optuna

    if len(trial.study.directions) > 1:
        return  # Optuna cannot prune multi-objective trials; reporting would raise
    trial.report(float(value), int(step))
    if trial.should_prune():
        raise optuna.TrialPruned(f"pruned at step {step} (value {float(value):.6g})")


def _reopen(url: str, study_name: str, trial_id: int) -> optuna.Trial:
    import optuna

    from clara_hydra.sweeper.optuna_objects import build_pruner
    from clara_hydra.sweeper.storage import open_storage

    study = optuna.load_study(
        study_name=study_name,
        storage=open_storage(url, wait=True),  # a restarting database server is waited for
        # Trial() calls sampler.before_trial: a random sampler does nothing there (a grid sampler would
        # try to assign a grid point); sampling never happens in the job.
        sampler=optuna.samplers.RandomSampler(),
        pruner=build_pruner(_pruner_node()),
    )
    log.debug("reopened trial id %d of study %s from %s", trial_id, study_name, url)
    return optuna.trial.Trial(study, trial_id)


def _pruner_node() -> object:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        log.warning("no Hydra config in this job: intermediate values are stored, but nothing is pruned")
        return None
    return HydraConfig.get().sweeper.get("pruner")
