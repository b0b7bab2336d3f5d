"""The structured configs of the ``clara_optuna`` sweeper, registered in Hydra's ConfigStore.

Groups (select with ``override hydra/sweeper/sampler: random`` in a defaults list, or
``hydra/sweeper/sampler=random`` on the command line):

- ``hydra/sweeper``: ``clara_optuna`` (:class:`ClaraOptunaSweeperConf`)
- ``hydra/sweeper/sampler``: ``tpe`` (default), ``random``, ``grid``, ``cmaes``, ``gp``, ``qmc``, ``nsgaii``
- ``hydra/sweeper/pruner``: ``median`` (default), ``percentile``, ``successive_halving``, ``hyperband``,
  ``threshold``, ``patient``, ``nop``

Every sampler and pruner argument defaults to ``null``, which means "Optuna's own default": null
arguments are dropped before the object is built
(:func:`clara_hydra.sweeper.optuna_objects.instantiate_dropping_nulls`), so each installed Optuna
release (4.x or 5.x, whose defaults differ, e.g. TPE's ``constant_liar``) keeps its own defaults, and
a node with only ``seed`` set is ``TPESampler(seed=...)``. The ``threshold`` pruner needs ``lower`` or
``upper`` set (Optuna's rule).

This module must stay light: Hydra imports it during plugin discovery, so it imports no Optuna.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from clara_hydra.keywords import Sweep

PROVIDER = "clara_hydra"
SWEEPER_TARGET = "hydra_plugins.clara_optuna_sweeper.clara_optuna_sweeper.ClaraOptunaSweeper"


# ---------------------------------------------------------------- samplers (hydra/sweeper/sampler)
@dataclass
class SamplerConf:
    """Base of the sampler nodes: a ``_target_`` and the seed every Optuna sampler takes."""

    _target_: str = MISSING
    seed: int | None = None


@dataclass
class TPESamplerConf(SamplerConf):
    """``optuna.samplers.TPESampler`` (the default sampler)."""

    _target_: str = "optuna.samplers.TPESampler"
    n_startup_trials: int | None = None
    n_ei_candidates: int | None = None
    multivariate: bool | None = None
    group: bool | None = None
    constant_liar: bool | None = None
    consider_endpoints: bool | None = None
    prior_weight: float | None = None
    warn_independent_sampling: bool | None = None


@dataclass
class RandomSamplerConf(SamplerConf):
    """``optuna.samplers.RandomSampler``."""

    _target_: str = "optuna.samplers.RandomSampler"


@dataclass
class GridSamplerConf(SamplerConf):
    """``optuna.samplers.GridSampler``: Clara's run-every-combination mode for discrete spaces.

    Its ``search_space`` is filled from ``params`` at run time; the sweep ends when the grid is exhausted.
    """

    _target_: str = "optuna.samplers.GridSampler"


@dataclass
class CmaEsSamplerConf(SamplerConf):
    """``optuna.samplers.CmaEsSampler`` (needs the ``cmaes`` package)."""

    _target_: str = "optuna.samplers.CmaEsSampler"
    x0: dict[str, Any] | None = None
    sigma0: float | None = None
    n_startup_trials: int | None = None
    warn_independent_sampling: bool | None = None
    consider_pruned_trials: bool | None = None
    popsize: int | None = None
    use_separable_cma: bool | None = None
    with_margin: bool | None = None
    lr_adapt: bool | None = None


@dataclass
class GPSamplerConf(SamplerConf):
    """``optuna.samplers.GPSampler`` (Gaussian process; uses torch and scipy)."""

    _target_: str = "optuna.samplers.GPSampler"
    n_startup_trials: int | None = None
    deterministic_objective: bool | None = None
    warn_independent_sampling: bool | None = None


@dataclass
class QMCSamplerConf(SamplerConf):
    """``optuna.samplers.QMCSampler`` (quasi-Monte Carlo; uses scipy)."""

    _target_: str = "optuna.samplers.QMCSampler"
    qmc_type: str | None = None
    scramble: bool | None = None
    warn_asynchronous_seeding: bool | None = None
    warn_independent_sampling: bool | None = None


@dataclass
class NSGAIISamplerConf(SamplerConf):
    """``optuna.samplers.NSGAIISampler``: the multi-objective sampler (``direction: [maximize, minimize]``)."""

    _target_: str = "optuna.samplers.NSGAIISampler"
    population_size: int | None = None
    mutation_prob: float | None = None
    crossover_prob: float | None = None
    swapping_prob: float | None = None


SAMPLERS: dict[str, type[SamplerConf]] = {
    "tpe": TPESamplerConf,
    "random": RandomSamplerConf,
    "grid": GridSamplerConf,
    "cmaes": CmaEsSamplerConf,
    "gp": GPSamplerConf,
    "qmc": QMCSamplerConf,
    "nsgaii": NSGAIISamplerConf,
}


# ---------------------------------------------------------------- pruners (hydra/sweeper/pruner)
@dataclass
class MedianPrunerConf:
    """``optuna.pruners.MedianPruner`` (the default, as in ``optuna.create_study``)."""

    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int | None = None
    n_warmup_steps: int | None = None
    interval_steps: int | None = None
    n_min_trials: int | None = None


@dataclass
class PercentilePrunerConf:
    """``optuna.pruners.PercentilePruner``; ``percentile`` is required by Optuna, 25.0 here."""

    _target_: str = "optuna.pruners.PercentilePruner"
    percentile: float = 25.0
    n_startup_trials: int | None = None
    n_warmup_steps: int | None = None
    interval_steps: int | None = None
    n_min_trials: int | None = None


@dataclass
class SuccessiveHalvingPrunerConf:
    """``optuna.pruners.SuccessiveHalvingPruner`` (``min_resource`` may be ``auto`` or an int)."""

    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: Any = None
    reduction_factor: int | None = None
    min_early_stopping_rate: int | None = None
    bootstrap_count: int | None = None


@dataclass
class HyperbandPrunerConf:
    """``optuna.pruners.HyperbandPruner`` (``max_resource`` may be ``auto`` or an int: the epochs)."""

    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int | None = None
    max_resource: Any = None
    reduction_factor: int | None = None
    bootstrap_count: int | None = None


@dataclass
class ThresholdPrunerConf:
    """``optuna.pruners.ThresholdPruner``: prune when a reported value leaves [lower, upper]."""

    _target_: str = "optuna.pruners.ThresholdPruner"
    lower: float | None = None
    upper: float | None = None
    n_warmup_steps: int | None = None
    interval_steps: int | None = None


@dataclass
class PatientPrunerConf:
    """``optuna.pruners.PatientPruner`` around a wrapped pruner (a median pruner unless set)."""

    _target_: str = "optuna.pruners.PatientPruner"
    wrapped_pruner: Any = field(default_factory=lambda: {"_target_": "optuna.pruners.MedianPruner"})
    patience: int = 3
    min_delta: float | None = None


@dataclass
class NopPrunerConf:
    """``optuna.pruners.NopPruner``: never prune (Clara's behaviour)."""

    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class QuickstartPrunerConf(PercentilePrunerConf):
    """The demo sweep's pruner (``experiment=quickstart``, 8 epochs, validation every epoch).

    It prunes only trials clearly behind: the bottom quarter at an epoch (``percentile: 75`` keeps the top
    75%), judged from epoch 4 (before it, every demo trial's Dice is noise around 0.06-0.23) once two trials
    are complete. Measured on the demo's 8 trials without pruning (seed 0): the median pruner from epoch 2
    stopped the eventual second best (0.901, at 0.073 when judged); this one keeps the 4 best (0.93, 0.90,
    0.89, 0.83) and prunes the 4 that ended at 0.43-0.81, also with the best trial moved to any position.
    """

    percentile: float = 75.0
    n_startup_trials: int | None = 2
    n_warmup_steps: int | None = 4


# Options for the shipped experiments, outside the Optuna pruner table: an experiment selects its pruner as an
# option (``override /hydra/sweeper/pruner: quickstart``) rather than setting keys of the default one, so
# ``hydra/sweeper/pruner=<any>`` on the command line replaces it whole (keys of one pruner class do not
# exist in another: ``Key 'n_startup_trials' not in 'NopPrunerConf'``).
EXPERIMENT_PRUNERS: dict[str, type[Any]] = {"quickstart": QuickstartPrunerConf}


PRUNERS: dict[str, type[Any]] = {
    "median": MedianPrunerConf,
    "percentile": PercentilePrunerConf,
    "successive_halving": SuccessiveHalvingPrunerConf,
    "hyperband": HyperbandPrunerConf,
    "threshold": ThresholdPrunerConf,
    "patient": PatientPrunerConf,
    "nop": NopPrunerConf,
}


# ---------------------------------------------------------------- the sweeper (hydra/sweeper)
@dataclass
class ClaraOptunaSweeperConf:
    """``hydra/sweeper: clara_optuna``: the upstream ``hydra-optuna-sweeper`` keys plus Clara's extras.

    Upstream keys (same meaning; two defaults changed on purpose, see below):

    - ``sampler``, ``direction`` (``minimize``/``maximize`` or a list of them), ``storage``, ``study_name``,
      ``n_trials``, ``n_jobs``, ``max_failure_rate``, ``params``, ``custom_search_space``.
    - ``n_jobs`` = trials asked per batch (the launcher may run a batch in parallel). Default 1, not
      upstream's 2: with the in-process launcher a batch runs one job after another anyway, and batches of
      one let the sampler, the pruner and ``stop_threshold`` see every result before the next trial.
    - ``max_failure_rate`` = the fraction of failed trials in a batch above which the sweep stops (upstream's
      meaning). Unset (null) = 1.0 (never), not upstream's 0.0: one diverging configuration must not abort
      a sweep; ``fail_fast`` then stops a sweep whose trials all fail. Set explicitly, it is upstream's rule
      alone: ``fail_fast`` is off unless also set (``max_failure_rate: 1.0`` never stops for failures).
    - ``storage: null`` = a journal file at a stable place (not upstream's in-memory study); see
      :mod:`clara_hydra.sweeper.storage`. ``study_name: null`` = ``hydra.job.name``, so reruns resume.

    Extras:

    - ``pruner``: a ``hydra/sweeper/pruner`` option (default ``median``, like ``optuna.create_study``).
    - ``baseline_trial``: run the composed defaults (no search overrides) as the study's first trial.
    - ``skip_duplicates``: a parameter set already COMPLETE is not trained again; its value is reused.
    - ``stop_threshold``: end the sweep once a completed value reaches it (``>=`` when maximizing).
    - ``keep_best``: only the best N trial folders keep checkpoint files (Clara's ``num_mmars_to_keep``).
    - ``report_interval``: seconds between rewrites of ``report.html`` during a sweep (default 30, longer when
      a rewrite would take over a tenth of the sweep's time; 0: after every batch). It is always written at
      the end, and on demand by ``clara-hydra report SWEEP_FOLDER``.
    - ``fail_fast``: stop with an error when the first K trials of a run all raise (0: never; default 3,
      or 0 when ``max_failure_rate`` is set).
    - ``retry_interrupted``: trials left RUNNING by a dead run are marked FAIL ("interrupted") on resume;
      when true their parameters are enqueued again.
    - ``workers``: worker processes that each ask, train and tell their own trials (no batch barrier);
      ``null`` = one per ``gpus`` list, else 1. ``gpus``: Clara's ``"0:1:2,3"`` (one worker per
      ``:``-separated list of GPU ids) or a list of such lists.
    - ``heartbeat_interval`` / ``grace_period`` (seconds, Optuna's names and meaning): a worker records a
      heartbeat for its running trial every interval; a trial without one for the grace period (default
      twice the interval) is failed as ``interrupted`` by a live worker and its parameters retried once.
    - ``terminator``: ``regret`` stops the sweep once Optuna's regret bound (how much the best value may
      still improve) falls below the objective's noise; ``null`` (default) = off.
      ``terminator_min_trials``: complete trials before the first check (Optuna's 20).
      ``terminator_error``: the noise: ``auto`` (the best trial's cross-validation/seed scores, else
      ``median``), ``median`` (Optuna's heuristic) or a number in the objective's units.
      See :mod:`clara_hydra.sweeper.terminator`.
    - ``warm_start``: ``SWEEP_FOLDER_OR_STORAGE[:study]``: a new study starts with the finished trials of
      that study that fit the space, its best retried first. See :mod:`clara_hydra.sweeper.warm_start`.
    """

    _target_: str = SWEEPER_TARGET
    # Hydra must not build the sampler/pruner nodes itself: their nulls mean "Optuna's default" and are
    # dropped first (optuna_objects.instantiate_dropping_nulls), and the grid needs its search space.
    _recursive_: bool = False
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "median"}])

    sampler: Any = MISSING
    pruner: Any = MISSING
    direction: Any = "minimize"
    storage: Any = None
    study_name: str | None = None
    n_trials: int = 20
    n_jobs: int = 1
    # null = not set: our default (1.0 plus fail_fast); set = upstream's meaning (see the docstring).
    max_failure_rate: float | None = None
    params: dict[str, Any] | None = None
    custom_search_space: str | None = None
    # Upstream's deprecated key (name -> {type, low, high, step, log, choices}): read into ``params`` with
    # upstream's warning; ignored when ``params`` is set too.
    search_space: dict[str, Any] | None = None

    baseline_trial: bool = True
    skip_duplicates: bool = True
    stop_threshold: float | None = None
    keep_best: int | None = None
    report_interval: float = 30.0
    # null = 3, or 0 when max_failure_rate is set explicitly (upstream's rule then decides alone).
    fail_fast: int | None = None
    retry_interrupted: bool = True
    # Parallel and distributed sweeps (clara_hydra.sweeper.workers, .heartbeat).
    workers: int | None = None
    gpus: Any = None
    heartbeat_interval: int = 10
    grace_period: int | None = None
    # Stopping early (clara_hydra.sweeper.terminator): Optuna's Terminator, off by default.
    terminator: str | None = None
    terminator_min_trials: int = 20
    terminator_error: Any = "auto"
    # Seeding a new study with an earlier one's finished trials (clara_hydra.sweeper.warm_start).
    warm_start: str | None = None


def register_configs() -> None:
    """Store the sweeper, sampler and pruner nodes in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(group="hydra/sweeper", name=Sweep.SWEEPER_NAME, node=ClaraOptunaSweeperConf, provider=PROVIDER)
    for name, sampler in SAMPLERS.items():
        cs.store(group="hydra/sweeper/sampler", name=name, node=sampler, provider=PROVIDER)
    for name, pruner in {**PRUNERS, **EXPERIMENT_PRUNERS}.items():
        cs.store(group="hydra/sweeper/pruner", name=name, node=pruner, provider=PROVIDER)
