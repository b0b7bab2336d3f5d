"""The task function behind ``python train.py``: build the objects, run MONAI's engines, return the objective.

Order of work (each step logged): heavy imports, determinism, datasets (caching), model, evaluator, trainer,
then ``trainer.run()`` (the trainer's ``ValidationHandler`` runs the evaluator every
``num_interval_per_valid`` epochs). A config without a ``train`` section (a Clara validation config) runs
the evaluator once. The objective is the best validation key metric (maximised, as in Clara).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from clara_hydra import resolvers
from clara_hydra.errors import EXIT_USER_ERROR, FULL_ERROR_ENV, BuildError, UserError
from clara_hydra.runtime.monitor import Monitor, is_trial_pruned
from clara_hydra.runtime.summary import TrialSummary

log = logging.getLogger(__name__)


def main(cfg: DictConfig) -> float:
    """Entry point for ``@hydra.main``: :func:`run` with the user-error policy.

    In a single run a :class:`UserError` is printed as one compact block and the process exits with code 2
    (Hydra would otherwise print it as a crash and exit 1). In a multirun it is re-raised so the sweeper
    records the trial as failed and goes on. ``CLARA_HYDRA_FULL_ERROR=1`` keeps the traceback.
    """
    try:
        return run(cfg)
    except UserError as exc:
        if os.environ.get(FULL_ERROR_ENV) or _is_multirun():
            raise
        print(f"clara-hydra: {exc}", file=sys.stderr)
        print(f"(set {FULL_ERROR_ENV}=1 for the traceback)", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)  # SystemExit passes through Hydra's own error handler untouched


def run(cfg: DictConfig, job_dir: str | os.PathLike[str] | None = None) -> float:
    """Train (or, for a validation config, evaluate) the composed config and return the best key metric.

    Args:
        cfg: the composed config (a converted Clara config plus overrides).
        job_dir: where ``trial_summary.json`` goes; default: Hydra's job output folder, else the cwd.

    Returns:
        The best value of the validation key metric (e.g. ``val_mean_dice``).

    Raises:
        UserError: bad config, missing data, refused target (see :mod:`clara_hydra.errors`).
        optuna.TrialPruned: the sweep's pruner stopped this trial (after ``trial_summary.json`` is written).
    """
    started = time.perf_counter()
    summary = TrialSummary(Path(job_dir) if job_dir else Path(resolvers.job_dir()))
    with summary.timed("importing"):
        import ignite  # noqa: F401  (timed here: heavy imports are paid inside the task, once per process)
        import monai  # noqa: F401
        import torch  # noqa: F401

        from clara_hydra.runtime.build import Builder
        from clara_hydra.runtime.cache import build_dataset
        from clara_hydra.runtime.cache_settings import CacheSettings
        from clara_hydra.runtime.device import DevicePolicy, apply_determinism, configure_threads

    policy = DevicePolicy()
    if not policy.cuda:
        configure_threads(_concurrent_trials())
    cache_settings = CacheSettings.from_config(cfg)
    summary.device = policy.device
    seed = apply_determinism(cfg)
    log.info("device %s, seed %s, cudnn_benchmark %s", policy.device, seed, bool(cfg.get("cudnn_benchmark", False)))
    builder = Builder(cfg, rank=_rank(), kwargs_policy=policy.adjust)
    trainer_path, evaluator_path, dataset_paths = _layout(cfg)
    monitor: Monitor | None = None
    try:
        with summary.timed("caching_data"):
            for path in dataset_paths:  # reused from an earlier trial of this process when its prefix matches
                t0 = time.perf_counter()
                dataset = build_dataset(builder, path, cache_settings, device=policy.device)
                log.info("built %s: %s (%.2f s)", path, type(dataset).__name__, time.perf_counter() - t0)
        evaluator = _build_logged(builder, evaluator_path)
        trainer = _build_logged(builder, trainer_path) if trainer_path else None
        summary.amp = bool(getattr(trainer or evaluator, "amp", False))
        monitor = Monitor(evaluator, trainer, summary)
        monitor.attach()
        with summary.timed("training"):
            (trainer or evaluator).run()
    except BaseException as exc:
        status = "pruned" if is_trial_pruned(exc) else "failed"
        summary.write(status=status, error=None if status == "pruned" else f"{type(exc).__name__}: {exc}")
        raise
    summary.seconds["training"] -= summary.seconds.get("validating", 0.0)
    if monitor.pruned is not None:
        summary.write(status="pruned")
        log.info("trial pruned at epoch %s (%s = %.4f)", summary.last_epoch, summary.name, summary.last_value)
        raise monitor.pruned
    if summary.best_value is None:
        raise BuildError(f"{evaluator_path}: the evaluator never produced its key metric (did validation run?)")
    summary.write(status="completed")
    log.info(
        "best %s = %.4f at epoch %s (device %s, %.1f s)",
        summary.name,
        summary.best_value,
        summary.best_epoch,
        policy.device,
        time.perf_counter() - started,
    )
    return float(summary.best_value)


def _layout(cfg: DictConfig) -> tuple[str | None, str, list[str]]:
    """Paths of the trainer (None for a validation config), the evaluator and the datasets to cache first."""
    train, validate = cfg.get("train"), cfg.get("validate")
    if isinstance(validate, DictConfig) and "evaluator" in validate:
        evaluator = "validate.evaluator"
    elif "evaluator" in cfg:
        evaluator = "evaluator"
    else:
        raise BuildError(
            "the config has no evaluator (validate.evaluator or a top-level evaluator): nothing to validate"
        )
    trainer = "train.trainer" if isinstance(train, DictConfig) and "trainer" in train else None
    prefixes = [p for p, sec in (("train", train), ("validate", validate)) if isinstance(sec, DictConfig)] or [""]
    datasets = [f"{p}.dataset" if p else "dataset" for p in prefixes]
    return trainer, evaluator, [d for d in datasets if _has(cfg, d)]


def _has(cfg: DictConfig, path: str) -> bool:
    node: Any = cfg
    for part in path.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False
        node = node._get_node(part)
    return True


def _build_logged(builder: Any, path: str) -> Any:
    t0 = time.perf_counter()
    obj = builder.build(path)
    log.info("built %s: %s (%.2f s)", path, type(obj).__name__, time.perf_counter() - t0)
    return obj


def _concurrent_trials() -> int:
    """Trials of this sweep running at once (1 outside a sweep, or when the sweeper is not importable)."""
    try:
        from clara_hydra.trial_context import concurrent_trials
    except ImportError:
        return 1
    return concurrent_trials()


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
