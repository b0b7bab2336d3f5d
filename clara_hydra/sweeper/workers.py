"""Many workers, one study: the worker processes of ``hydra.sweeper.workers=N`` and their GPUs.

A *worker* is one ``python train.py -m ...`` process that asks, trains and tells its own trials
against the shared storage, one at a time, without waiting for the others (Optuna's advice for
asynchronous parallel studies; Hydra's maintainers give the same). ``workers=N`` in one command makes
the command a coordinator: it checks the settings, creates the study and its baseline trial, then
starts N workers, each the same command line with ``CLARA_HYDRA_WORKER`` set (its index, its GPUs),
waits for them, and writes the results and the summary. Where the processes run is the launcher's
business:

- Hydra's basic launcher (the default install): N local child processes.
- Any other launcher (``hydra/launcher=joblib``, ``submitit_local``, ``submitit_slurm``): N launcher
  jobs, each running one worker, so on SLURM the workers are cluster jobs (each running many trials).

Running the same command by hand on other machines against one ``postgresql://`` storage joins the
study too: a worker may join or leave at any time.

GPUs: ``gpus: "0:1:2,3"`` (Clara's form) gives worker 1 GPU 0, worker 2 GPU 1 and worker 3 GPUs 2
and 3, through ``CUDA_VISIBLE_DEVICES`` set in the worker's environment before it starts, so before
CUDA initialises; its trials see their GPUs as ``cuda:0``... A worker with several GPUs trains each
trial on all of them, one DDP process per GPU (:mod:`clara_hydra.runtime.distributed`). A GPU may be
named for several workers: ``"0:0"`` runs two workers (two trials at once) on GPU 0. On the CPU, each
worker's trials get ``cores // workers`` torch threads.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clara_hydra.errors import SweepError, with_fix
from clara_hydra.sweeper._optuna_private import is_basic_launcher, job_result
from clara_hydra.sweeper.worker_role import ENV_WORKER, WorkerRole

if TYPE_CHECKING:
    from clara_hydra.sweeper.state import SweepState

log = logging.getLogger(__name__)


def worker_env(role: WorkerRole, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a worker process: its role, its GPUs, its share of the CPU threads.

    ``CUDA_VISIBLE_DEVICES`` is set here, in the environment the process starts with, so it holds
    before anything in the worker initialises CUDA. Without GPUs the CPU threads are shared out
    (``CLARA_HYDRA_THREADS``, unless the user set it), so N workers do not oversubscribe the cores.
    """
    from clara_hydra.runtime.device import ENV_THREADS, usable_cores, visible_devices_env

    env = dict(os.environ if base is None else base)
    env[ENV_WORKER] = role.to_env()
    env.update(visible_devices_env(role.gpus))
    if role.gpus is None and role.local and not env.get(ENV_THREADS):
        env[ENV_THREADS] = str(max(usable_cores() // role.count, 1))
    return env


def worker_command() -> list[str]:
    """The command line that started this process, to start a worker with (``python train.py -m ...``)."""
    script = sys.argv[0] if sys.argv else ""
    if not script or script == "-c" or not os.path.exists(script):
        raise SweepError(
            with_fix(
                "hydra.sweeper.workers > 1 starts worker processes with this command line, "
                f"but it was not started from a script (argv[0]={script!r})",
                "run the sweep as `python train.py -m ...`, or start one process per worker yourself "
                "(workers=1 each) against the same storage",
            )
        )
    return [sys.executable, os.path.abspath(script), *sys.argv[1:]]


@dataclass
class WorkerJob:
    """The task function of a launcher job that runs one worker (picklable for joblib and submitit).

    Args:
        command: the worker's command line.
        cwd: where it starts (the launch directory: relative paths keep their meaning).
        roles: the role of each worker, by job index.
    """

    command: list[str]
    cwd: str
    roles: list[WorkerRole]

    def __call__(self, cfg: Any) -> int:
        from hydra.core.hydra_config import HydraConfig

        role = self.roles[int(HydraConfig.get().job.num)]
        code = subprocess.call(self.command, cwd=self.cwd, env=worker_env(role))
        if code != 0:
            raise SweepError(f"worker w{role.index} exited with code {code}")
        return code


def run_local(command: list[str], cwd: str, roles: Sequence[WorkerRole]) -> list[int]:
    """Start one child process per worker and wait for all of them; return their exit codes.

    Hydra's basic launcher runs jobs one after another in its own process, so it cannot run workers
    side by side; child processes of the same command are the plain way to do it (no scheduling: every
    worker pulls its own trials from the storage).

    On Ctrl-C the children (same process group, so they got the SIGINT too) close their trials; they
    are waited for, and sent SIGTERM if they take longer than 30 s.
    """
    procs = [subprocess.Popen(command, cwd=cwd, env=worker_env(role)) for role in roles]
    log.info("started %d worker process(es): pids %s", len(procs), [p.pid for p in procs])
    try:
        return [p.wait() for p in procs]
    except KeyboardInterrupt:
        deadline = time.monotonic() + 30
        for p in procs:
            try:
                p.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGTERM)
                p.wait()
        raise


def is_local_launcher(launcher: Any) -> bool:
    """Whether a Hydra launcher runs its jobs on this machine (basic, joblib, submitit_local, ray local...)."""
    name = type(launcher).__name__.lower()
    return any(word in name for word in ("basic", "joblib", "local"))


def run_with_launcher(launcher_factory: Any, command: list[str], cwd: str, roles: Sequence[WorkerRole]) -> list[int]:
    """Run one launcher job per worker (joblib, submitit...); each job runs the worker's command.

    Args:
        launcher_factory: ``task_function -> launcher`` (Hydra's ``instantiate_launcher`` with our context).
        command: the worker command line.
        cwd: the launch directory.
        roles: one role per worker.

    Returns:
        0 per finished job, 1 per failed one.
    """
    from hydra.core.utils import JobStatus

    launcher = launcher_factory(WorkerJob(command, cwd, list(roles)))
    if not is_local_launcher(launcher):
        roles = [WorkerRole(r.index, r.count, r.gpus, local=False) for r in roles]
        launcher = launcher_factory(WorkerJob(command, cwd, list(roles)))
    # Worker jobs get their own folders (workers/0, ...), away from the trial folders (job N = trial N).
    returns = launcher.launch([["hydra.sweep.subdir=workers/${hydra.job.num}"] for _ in roles], initial_job_idx=0)
    codes = []
    for role, ret in zip(roles, returns, strict=True):
        if ret.status == JobStatus.FAILED:
            log.warning("worker w%d failed: %s", role.index, job_result(ret))
            codes.append(1)
        else:
            codes.append(0)
    return codes


def coordinate(state: SweepState, launcher: Any, launcher_for: Callable[[Any], Any], cwd: str) -> None:
    """``workers > 1``: start the workers (local processes or launcher jobs), wait, write the results.

    Args:
        state: the opened sweep (the coordinator runs no trial itself).
        launcher: the sweep's Hydra launcher (the basic one means local child processes).
        launcher_for: ``task_function -> launcher`` (Hydra's ``instantiate_launcher`` with our context).
        cwd: the launch directory.

    Raises:
        KeyboardInterrupt: after Ctrl-C, once the workers are gone and the results written.
        SweepError: a worker stopped with an error.
    """
    from clara_hydra.sweeper.results import print_summary

    s, study = state.settings, state.study
    gpus: list[list[str] | None] = list(s.gpus) if s.gpus else [None] * s.workers
    roles = [WorkerRole(i + 1, s.workers, g) for i, g in enumerate(gpus)]
    command = worker_command()
    where = f" (GPUs {s.gpus})" if s.gpus else ""
    log.info("starting %d workers on study '%s'%s", s.workers, study.study_name, where)
    interrupted = False
    try:
        # No live bar here: the workers print their lines straight to the same terminal, and rich can
        # keep only its own process's output above a bar.
        codes = (
            run_local(command, cwd, roles)
            if is_basic_launcher(launcher)
            else run_with_launcher(launcher_for, command, cwd, roles)
        )
    except KeyboardInterrupt:
        interrupted, codes = True, []
    state.write_results()
    if state.tracker is not None:
        state.tracker.end(study, interrupted)
    if interrupted or 130 in codes or -2 in codes:
        raise KeyboardInterrupt  # the plugin prints the summary and exits with 130
    print_summary(study, state.sweep_dir)
    failed = [f"w{r.index} (exit code {c})" for r, c in zip(roles, codes, strict=True) if c != 0]
    if failed:
        raise SweepError(
            with_fix(
                f"worker(s) {', '.join(failed)} of study '{study.study_name}' stopped with an error",
                "see the worker's messages above; rerun the same command to resume the study",
            )
        )


def tag_log_records(worker: str) -> None:
    """Prefix every log record of this process with ``[worker]`` (the worker processes of a coordinator).

    A record factory rather than a handler filter: Hydra replaces the logging handlers for every job,
    a factory stays for the life of the process, so the sweeper's lines and each trial's ``train.log``
    carry the worker's id.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_clara_worker", None) == worker:
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.msg = f"[{worker}] {record.msg}"
        return record

    factory._clara_worker = worker  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
