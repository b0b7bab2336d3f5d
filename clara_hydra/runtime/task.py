"""The task function behind ``python train.py``: build the objects, run MONAI's engines, return the objective.

Order of work (each step logged): heavy imports, determinism, datasets (caching), model, evaluator, trainer,
then ``trainer.run()`` (the trainer's ``ValidationHandler`` runs the evaluator every
``num_interval_per_valid`` epochs). A config without a ``train`` section (a Clara validation config) runs
the evaluator once. The objective is the best validation key metric (maximised, as in Clara).

With ``multi_gpu: true`` (or a sweep worker given several GPUs) :func:`run` first hands the trial, and
itself as the ranks' entry function, to :func:`clara_hydra.runtime.launch.run_distributed`, which starts one
process per GPU (or ``nproc_per_node`` gloo processes on the CPU); each rank then runs :func:`run`, on its
share of the data (:mod:`clara_hydra.runtime.distributed`), and rank 0 alone writes the summary.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from clara_hydra import resolvers
from clara_hydra.errors import BuildError, UserError, exit_code_for, shorten, with_fix
from clara_hydra.runtime.cache import DataCache
from clara_hydra.runtime.monitor import Monitor, is_trial_pruned
from clara_hydra.runtime.summary import TrialSummary
from clara_hydra.tracking.job import attach as track_validations
from clara_hydra.tracking.job import job_tracking
from clara_hydra.tracking.untracked import import_monai

log = logging.getLogger(__name__)
# This process's data cache, a session object handed to every trial's builder: the trials of a sweep run by
# Hydra's basic launcher (one process) share their preprocessed data through it.
_PROCESS_DATA_CACHE = DataCache()
_SETTLE_SECONDS = 10.0  # how long an exiting run waits for loader threads still inside C++ code


def main(cfg: DictConfig) -> float:
    """Entry point for ``@hydra.main``: :func:`run` under the error contract of every command.

    In a single run a :class:`UserError` is printed as one compact block and the process exits with code 2,
    Ctrl-C with code 130 (:func:`clara_hydra.errors.exit_code_for`, the CLI's helper; Hydra would print a
    crash and exit 1). In a multirun both are re-raised: the sweeper records a failed trial and goes on, or
    stops on Ctrl-C with its summary. ``CLARA_HYDRA_FULL_ERROR=1`` keeps the traceback.
    """
    try:
        with job_tracking(cfg):  # MLflow, only with a `tracking` node (+tracking=mlflow)
            return run(cfg)
    except (UserError, KeyboardInterrupt) as exc:
        if _is_multirun():
            raise
        code = exit_code_for(exc)
        if code is None:
            raise
        _settle_threads()
        sys.exit(code)  # SystemExit passes through Hydra's own error handler untouched


def _settle_threads(timeout: float = _SETTLE_SECONDS) -> None:
    """Wait (bounded) for the process's other threads before exiting on an error.

    A pool that loaded data when the error came (MONAI's ``CacheDataset`` fill uses ``ThreadPool``, whose
    ``terminate()`` does not join) may still be inside nibabel/torch; exiting under it makes the C++ runtime
    abort with ``terminate called without an active exception`` (exit 134 instead of 2).
    """
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        # Only pool workers: ThreadPool's are named "Thread-N (worker)"; long-lived helpers (TensorBoard's
        # writer, tqdm's monitor) would hold the exit for the whole timeout.
        if thread is threading.current_thread() or not thread.is_alive() or not _is_pool_worker(thread.name):
            continue
        thread.join(max(deadline - time.monotonic(), 0.0))


def _is_pool_worker(name: str) -> bool:
    return name.endswith("(worker)") or name.startswith(("ThreadPoolExecutor-", "clara-cache"))


def run(cfg: DictConfig, job_dir: str | os.PathLike[str] | None = None, data_cache: DataCache | None = None) -> float:
    """Train (or, for a validation config, evaluate) the composed config and return the best key metric.

    Args:
        cfg: the composed config (a converted Clara config plus overrides).
        job_dir: where ``trial_summary.json`` goes; default: Hydra's job output folder, else the cwd.
        data_cache: the session's data cache (default: this process's, shared by the trials it runs).

    Returns:
        The best value of the validation key metric (e.g. ``val_mean_dice``).

    Raises:
        UserError: bad config, missing data, refused target (see :mod:`clara_hydra.errors`).
        optuna.TrialPruned: the sweep's pruner stopped this trial (after ``trial_summary.json`` is written).
    """
    started = time.perf_counter()
    folder = Path(job_dir) if job_dir else Path(resolvers.job_dir())
    from clara_hydra.runtime import distributed

    ctx = distributed.current()
    if ctx is None and (nproc := distributed.processes_for(cfg)) > 1:
        from clara_hydra.runtime.launch import run_distributed

        return run_distributed(run, cfg, os.fspath(folder), nproc)  # this process becomes the ranks' agent
    summary = TrialSummary(folder)
    with summary.timed("importing"):
        import ignite  # noqa: F401  (timed here: heavy imports are paid inside the task, once per process)

        import_monai(cfg)  # not tracked: MONAI's import leaves MLflow out (clara_hydra.tracking.untracked)
        import monai  # noqa: F401
        import torch  # noqa: F401

        from clara_hydra.runtime.build import Builder
        from clara_hydra.runtime.cache import build_dataset
        from clara_hydra.runtime.cache_settings import CacheSettings
        from clara_hydra.runtime.device import DevicePolicy, apply_determinism, configure_threads, warn_multi_gpu

    if not _is_multirun():  # in a sweep the sweeper says it once, not every trial
        warn_multi_gpu(cfg)
    policy = DevicePolicy(device=ctx.device if ctx is not None else None)
    world = ctx.world_size if ctx is not None else 1
    if not policy.cuda:
        configure_threads(_concurrent_trials() * world)  # the ranks of a trial share the cores too
    cache_settings = CacheSettings.from_config(cfg)
    summary.device = policy.device
    seed = apply_determinism(cfg)
    log.info("device %s, seed %s, cudnn_benchmark %s", policy.device, seed, bool(cfg.get("cudnn_benchmark", False)))
    rank_policy = distributed.DistributedPolicy(ctx, policy.adjust) if ctx is not None else None
    builder = Builder(
        cfg, rank=ctx.rank if ctx else 0, kwargs_policy=rank_policy.adjust if rank_policy else policy.adjust
    )
    trainer_path, evaluator_path, dataset_paths = _layout(cfg)
    if trainer_path:
        _check_epochs(cfg, f"{trainer_path}.max_epochs")
    monitor: Monitor | None = None
    try:
        shards: dict[str, list[Any]] = {}
        if ctx is not None:
            summary.rank_devices = distributed.gather_devices(ctx)
            summary.world_size = ctx.world_size
            shards = distributed.shard_datasets(builder, dataset_paths, ctx)  # before the cache sees the data
            distributed.write_debug(ctx, folder, shards)
        with summary.timed("caching_data"):
            for path in dataset_paths:  # reused from an earlier trial of this process when its prefix matches
                t0 = time.perf_counter()
                cache = _PROCESS_DATA_CACHE if data_cache is None else data_cache
                dataset = build_dataset(builder, path, cache_settings, cache, device=policy.device)
                if rank_policy is not None and path in shards:
                    rank_policy.sharded.add(id(dataset))
                log.info("built %s: %s (%.2f s)", path, type(dataset).__name__, time.perf_counter() - t0)
        evaluator = _build_logged(builder, evaluator_path)
        trainer = _build_logged(builder, trainer_path) if trainer_path else None
        summary.amp = bool(getattr(trainer or evaluator, "amp", False))
        if ctx is not None and rank_policy is not None:
            from clara_hydra.runtime.monitor import reporter

            distributed.attach_buffer_sync(evaluator, rank_policy)
            monitor = Monitor(evaluator, trainer, summary, report=distributed.pruning_reporter(reporter(), ctx))
            monitor.main = ctx.is_main
        else:
            monitor = Monitor(evaluator, trainer, summary)
        monitor.attach()
        track_validations(evaluator, trainer)  # rank 0, only when tracked
        from clara_hydra.runtime.data_errors import engine_data_error, quiet_engine_errors
        from clara_hydra.runtime.divergence import DivergenceGuard

        guard = DivergenceGuard()
        if trainer is not None:
            guard.attach(trainer)
        quiet_engine_errors(trainer, evaluator)
        with summary.timed("training"):
            try:
                (trainer or evaluator).run()
            except Exception as exc:
                datasets = {p: builder.built[p] for p in dataset_paths if p in builder.built}
                data_error = engine_data_error(exc, cfg, datasets)
                if data_error is None:
                    raise
                raise data_error from exc
        guard.raise_if_diverged(_divergence_hint(cfg))
    except BaseException as exc:
        from clara_hydra.runtime import oom

        status = "pruned" if is_trial_pruned(exc) else "failed"
        error: BaseException = exc
        if oom.is_cuda_oom(exc):  # FAIL "out of memory" with the amounts; the GPU's other trials live on
            error = oom.describe(exc, f"rank {ctx.rank}" if ctx is not None else "")
            oom.release_cached_memory()
        if ctx is None or ctx.is_main:  # rank 0 writes for the trial
            summary.write(status=status, error=None if status == "pruned" else f"{type(error).__name__}: {error}")
        if isinstance(error, UserError) and not _is_multirun() and (hint := _quickstart_hint()):
            raise _with_hint(error, hint) from exc
        if error is not exc:
            raise error from exc
        raise
    summary.seconds["training"] -= summary.seconds.get("validating", 0.0)
    main = ctx is None or ctx.is_main
    if ctx is not None:
        built = {p: builder.built[p] for p in dataset_paths if p in builder.built}
        distributed.write_debug(ctx, folder, shards, summary.history, built)
    if monitor.pruned is not None:
        if main:
            summary.write(status="pruned")
        log.info("trial pruned at epoch %s (%s = %.4f)", summary.last_epoch, summary.name, summary.last_value)
        raise monitor.pruned
    if summary.best_value is None:
        raise BuildError(f"{evaluator_path}: the evaluator never produced its key metric (did validation run?)")
    if main:
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


def _with_hint(exc: UserError, hint: str) -> UserError:
    try:
        return type(exc)(f"{exc}\n    {hint}")
    except TypeError:  # an error class with another constructor (ConfigError): leave it as it is
        return exc


def _quickstart_hint() -> str:
    """For a tree with an ``experiment/quickstart`` option not chosen (the repo's ``conf/``), how to run it."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return ""
    runtime = HydraConfig.get().runtime
    choices = runtime.choices
    if "experiment" not in choices or choices.get("experiment") not in (None, "null"):
        return ""
    for source in runtime.config_sources:
        quickstart = Path(source.path) / "experiment" / "quickstart.yaml"
        if source.provider == "main" and source.schema == "file" and quickstart.is_file():
            return (
                "or try this tree at CPU size on the synthetic demo data first: python train.py experiment=quickstart"
            )
    return ""


def _divergence_hint(cfg: DictConfig) -> str:
    lr = cfg.get("learning_rate") if "learning_rate" in cfg else None
    return f"lower learning_rate (now {lr})" if lr is not None else ""


def _check_epochs(cfg: DictConfig, path: str) -> None:
    """The trainer's ``max_epochs`` must be a whole number >= 1; the message names the key the user sets.

    ignite would fail later without naming it (``epochs=-1``: a start-epoch error; ``epochs=abc``: a
    comparison of str and int).
    """
    try:
        value = OmegaConf.select(cfg, path, throw_on_missing=False)
    except OmegaConfBaseException:
        return  # the builder words interpolation errors
    if value is None or value == "???":
        return
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return
    key = _source_key(cfg, path)
    shown = f"{key}={shorten(repr(value))}" + (f" (used as {path})" if key != path else "")
    raise BuildError(with_fix(f"{shown}: must be a whole number of epochs >= 1", f"e.g. `python train.py {key}=10`"))


def _source_key(cfg: DictConfig, path: str) -> str:
    """The key a value comes from: ``epochs`` for ``max_epochs: ${epochs}``, else ``path`` itself."""
    parent, _, leaf = path.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig):
        return path
    raw = node._get_node(leaf)
    text = raw._value() if raw is not None else None
    if isinstance(text, str) and text.startswith("${") and text.endswith("}") and text.count("${") == 1:
        inner = text[2:-1]
        if ":" not in inner and OmegaConf.select(cfg, inner, default=None) is not None:
            return _source_key(cfg, inner)
    return path


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


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
