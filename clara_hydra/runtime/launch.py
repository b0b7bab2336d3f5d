"""Run a trial's entry function as N processes with torch's elastic agent, and turn their outcome into the trial's.

The process that runs the task (``python train.py``, or a sweep worker's trial) becomes the agent of
``torch.distributed.launcher.api.elastic_launch`` (what ``torchrun --standalone`` runs): it spawns one
process per rank, watches them, and when one exits with an error or is killed it stops the others at
once (``max_restarts=0``), so a dead rank fails the trial within seconds on any backend, not after a
collective's timeout. Nothing else of ours schedules anything.

Each rank gets the composed config and the job's Hydra config as plain containers (a spawned process
has no Hydra context: ``train.py``'s ``__main__`` block does not run there), rebuilds ``HydraConfig``,
sets up its logging (rank 0 appends to the job's log; the others keep quiet), joins the process group
and calls the entry function it was given (:func:`clara_hydra.runtime.task.run`, handed over by the task
itself: this module imports nothing of the task). Rank 0's outcome is the trial's:

- completed: the best key metric is returned;
- pruned (the decision broadcast by :func:`~clara_hydra.runtime.distributed.pruning_reporter`): every
  rank returns normally, and ``optuna.TrialPruned`` is raised here for the sweeper;
- a user error in a rank (missing data, bad argument): the same error class and message are raised here,
  so the error contract (exit 2, compact message) holds;
- anything else: :class:`RankFailedError` naming the rank and its error, or the signal that killed it;
- Ctrl-C: the agent stops every rank; ``KeyboardInterrupt`` is raised here (exit 130).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import signal
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clara_hydra import errors

log = logging.getLogger(__name__)

ENV_TIMEOUT = "CLARA_HYDRA_DDP_TIMEOUT"
# How long a rank waits in a collective for a peer that is alive but stuck. A dead peer is caught sooner:
# by the agent (it watches the processes every 0.1 s) and, on gloo, by the closed connection.
DEFAULT_TIMEOUT_S = 300
_NOISY_LOGGERS = ("torch.distributed.elastic", "torch.distributed.launcher", "torch.multiprocessing")
_HANDLED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")


RankEntry = Callable[[Any, str], float]
"""What every rank runs: ``entry(cfg, job_dir)`` returns the rank's best key metric. A module-level function:
the spawn start method pickles it by reference (its module and name) and each rank imports it."""


class RankFailedError(RuntimeError):
    """Raised in the launching process when a rank of a distributed trial failed with a non-user error
    or was killed; the message names the rank and the error or signal."""


@dataclass(frozen=True)
class RankPayload:
    """What every rank receives (pickled by the spawn start method)."""

    cfg: dict[str, Any]
    hydra: Any  # DictConfig with the job's ``hydra`` node, or None
    job_dir: str
    backend: str
    error_dir: str
    timeout_s: float


def timeout_s() -> float:
    """The collective timeout: ``CLARA_HYDRA_DDP_TIMEOUT`` seconds, default 300."""
    text = os.environ.get(ENV_TIMEOUT, "")
    try:
        return float(text) if text and float(text) > 0 else DEFAULT_TIMEOUT_S
    except ValueError:
        return DEFAULT_TIMEOUT_S


def run_distributed(entry: RankEntry, cfg: Any, job_dir: str, nproc: int) -> float:
    """Run ``entry(cfg, job_dir)`` on ``nproc`` processes and return rank 0's best key metric.

    Args:
        entry: what each rank runs (see :data:`RankEntry`), e.g. :func:`clara_hydra.runtime.task.run`.
        cfg: the composed config.
        job_dir: the job folder (``trial_summary.json``, checkpoints, the log).
        nproc: the number of processes (see :func:`~clara_hydra.runtime.distributed.process_count`).

    Raises:
        UserError: a rank's user error, re-raised with its class and message.
        optuna.TrialPruned: the sweep's pruner stopped the trial (every rank stopped).
        RankFailedError: a rank failed otherwise or was killed.
        KeyboardInterrupt: Ctrl-C (every rank is stopped first).
    """
    from omegaconf import OmegaConf
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from clara_hydra.runtime.device import cuda_available

    backend = "nccl" if cuda_available() else "gloo"
    scratch = tempfile.mkdtemp(prefix="clara-ddp-")
    payload = RankPayload(
        cfg=OmegaConf.to_container(cfg, resolve=False),  # type: ignore[arg-type]
        hydra=_hydra_config(),
        job_dir=os.fspath(job_dir),
        backend=backend,
        error_dir=os.path.join(scratch, "errors"),
        timeout_s=timeout_s(),
    )
    os.makedirs(payload.error_dir)
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=uuid.uuid4().hex,
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",  # torchrun --standalone: a free port on this machine
        max_restarts=0,  # a failed rank fails the trial; the sweep decides what comes next
        monitor_interval=0.1,
        start_method="spawn",
        logs_specs=DefaultLogsSpecs(log_dir=os.path.join(scratch, "logs")),
    )
    where = "GPU(s) " + (os.environ.get("CUDA_VISIBLE_DEVICES") or "all visible") if backend == "nccl" else "the CPU"
    log.info("training on %d processes (DistributedDataParallel, %s, on %s)", nproc, backend, where)
    started = time.monotonic()
    try:
        with _quiet_agent(), _restored_signals():
            results = elastic_launch(config, _rank_main)(entry, payload)
    except ChildFailedError as exc:
        raise _failure(exc, payload, nproc, time.monotonic() - started) from None
    except SignalException as exc:
        log.warning("stopped all %d ranks (%s)", nproc, signal.Signals(exc.sigval).name)
        _write_failed(job_dir, f"interrupted ({signal.Signals(exc.sigval).name})", nproc)
        if exc.sigval == signal.SIGINT:
            raise KeyboardInterrupt from None
        raise SystemExit(128 + int(exc.sigval)) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    outcome = results.get(0) or {}
    if outcome.get("status") == "pruned":
        import optuna

        raise optuna.TrialPruned(str(outcome.get("message", "")))
    return float(outcome["value"])


def _hydra_config() -> Any:
    """The job's Hydra config as a ``DictConfig`` (pickled as it is: ``HydraConfig.set_config`` needs the
    structured ``HydraConf`` node type that a plain container would lose), or ``None`` outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.instance().cfg if HydraConfig.initialized() else None


@contextmanager
def _quiet_agent() -> Iterator[None]:
    """The agent's own INFO/WARNING/ERROR lines (rendezvous, tracebacks of failed ranks) stay out of the log:
    the outcome is reported once, by us."""
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@contextmanager
def _restored_signals() -> Iterator[None]:
    """The agent installs its own SIGINT/SIGTERM handlers for good; a sweep needs its own back afterwards."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {}
    for name in _HANDLED_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is not None:
            saved[sig] = signal.getsignal(sig)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _failure(exc: Any, payload: RankPayload, nproc: int, seconds: float) -> BaseException:
    """The exception that stands for a failed distributed trial (see the module docstring)."""
    records = _error_records(payload.error_dir)
    failures = dict(exc.failures)
    if any(r.get("type") == "KeyboardInterrupt" for r in records) or any(
        f.exitcode == -signal.SIGINT for f in failures.values()
    ):  # Ctrl-C reached the ranks before this process's own handler ran: the same Ctrl-C
        _write_failed(payload.job_dir, "interrupted (SIGINT)", nproc)
        return KeyboardInterrupt()
    user = [r for r in records if r.get("user_error")]
    killed = [(rank, f) for rank, f in sorted(failures.items()) if f.exitcode is not None and f.exitcode < 0]
    if user:
        chosen = min(user, key=lambda r: r.get("time", 0.0))
        error = _user_error(chosen)
        _write_failed(payload.job_dir, f"{type(error).__name__}: {error}", nproc)
        return error
    if killed:
        rank, failure = killed[0]
        message = f"rank {rank} of {nproc} was killed by {failure.signal_name()} (exit code {failure.exitcode})"
    elif records:
        chosen = min(records, key=lambda r: r.get("time", 0.0))
        rank = int(chosen["rank"])
        message = f"rank {rank} of {nproc} failed: {chosen['type']}: {chosen['message']}"
        log.error("rank %d failed:\n%s", rank, chosen.get("traceback", "").rstrip())
    else:
        rank, failure = sorted(failures.items())[0]
        message = f"rank {rank} of {nproc} exited with code {failure.exitcode}"
    message += f"; the other ranks were stopped ({seconds:.1f} s after the start)"
    log.error("%s", message)
    _write_failed(payload.job_dir, message, nproc)
    return RankFailedError(message)


def _error_records(folder: str) -> list[dict[str, Any]]:
    out = []
    for path in sorted(Path(folder).glob("rank*.json")):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return out


def _user_error(record: dict[str, Any]) -> errors.UserError:
    """The rank's user error as the same class (looked up by name in :mod:`clara_hydra.errors` and
    :mod:`~clara_hydra.runtime.oom` only)."""
    from clara_hydra.runtime import oom

    name = str(record.get("type"))
    cls = oom.OutOfMemoryError if name == oom.OutOfMemoryError.__name__ else getattr(errors, name, None)
    message = str(record.get("message", ""))
    if isinstance(cls, type) and issubclass(cls, errors.UserError):
        try:
            return cls(message)
        except TypeError:
            pass
    return errors.BuildError(message)


def _write_failed(job_dir: str, error: str, nproc: int) -> None:
    """Make sure ``trial_summary.json`` says failed (rank 0 may have been stopped before writing it)."""
    from clara_hydra.runtime.summary import SUMMARY_FILE, read_summary

    data = read_summary(job_dir)
    if data.get("status") == "failed":
        return
    data.update(status="failed", error=error, world_size=nproc)
    path = Path(job_dir) / SUMMARY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str).replace("NaN", "null") + "\n")


# -- inside a rank ---------------------------------------------------------------------------------------


def _rank_main(entry: RankEntry, payload: RankPayload) -> dict[str, Any]:
    """The entry point of every rank (module level: the spawn start method pickles it, and ``entry``, by name)."""
    rank = int(os.environ.get("RANK", "0"))
    try:
        _setup(payload, rank)
        return _train(entry, payload)
    except BaseException as exc:
        from clara_hydra.runtime.monitor import is_trial_pruned

        if is_trial_pruned(exc):
            return {"status": "pruned", "message": str(exc)}
        _record_error(payload.error_dir, rank, exc)
        raise


def _setup(payload: RankPayload, rank: int) -> None:
    import torch
    import torch.distributed as dist

    import clara_hydra.runtime  # noqa: F401  (the resolvers)

    if payload.hydra is not None:
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().set_config(payload.hydra)
    _setup_logging(payload, rank)
    if payload.backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(payload.backend, timeout=datetime.timedelta(seconds=payload.timeout_s))
    # ignite sets up its distributed model lazily, with a collective (a new process group), at its first
    # idist call: in a rank-0-only handler (MONAI's CheckpointSaver) that call waits for ranks that never make
    # it. Made here, on every rank at the same point.
    import ignite.distributed as idist

    idist.sync()


def _train(entry: RankEntry, payload: RankPayload) -> dict[str, Any]:
    import torch.distributed as dist
    from omegaconf import OmegaConf

    from clara_hydra.runtime.console import quiet_sweep_job

    cfg = OmegaConf.create(payload.cfg)
    with quiet_sweep_job():
        value = entry(cfg, payload.job_dir)
    dist.destroy_process_group()
    return {"status": "completed", "value": value}


def _setup_logging(payload: RankPayload, rank: int) -> None:
    """Rank 0 appends to the job's log file (and the console outside a sweep); the others log errors only."""
    import warnings

    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if rank != 0:
        root.setLevel(logging.ERROR)
        warnings.simplefilter("ignore")  # rank 0 shows the same warnings once
        return
    fmt = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
    log_file = None
    with suppress(Exception):  # Hydra's job log format, when the job has one
        fmt = str(payload.hydra.hydra.job_logging.formatters.simple.format)
    try:
        from hydra.core.hydra_config import HydraConfig

        log_file = Path(payload.job_dir) / f"{HydraConfig.get().job.name}.log"
    except Exception:  # no Hydra context (the task called directly)
        log_file = None
    formatter = logging.Formatter(fmt)
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file is not None:
        handlers.append(logging.FileHandler(log_file, mode="a"))
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(logging.INFO)


def _record_error(folder: str, rank: int, exc: BaseException) -> None:
    """Leave the rank's error for the launching process (class, message, traceback, time)."""
    record = {
        "rank": rank,
        "type": type(exc).__name__,
        "user_error": isinstance(exc, errors.UserError),
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
        "time": time.time(),
    }
    with suppress(OSError):
        Path(folder, f"rank{rank}.json").write_text(json.dumps(record))
