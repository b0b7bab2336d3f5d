"""What a job prints on the console: in a sweep, nothing at the default level (every detail in ``train.log``).

A sweep's console is the sweeper's: one line per finished trial (:mod:`clara_hydra.sweeper.progress`) and
the summary table. Hydra gives each job a logging config that copies every record to the console *and*
to the job's ``train.log``, so a 6-trial demo printed ~860 lines. During a sweep job the console handlers
of the root logger are raised above CRITICAL, and restored when the job returns; the file handler keeps
every record. ``hydra.verbose=true`` (Hydra's own switch) keeps the job's console output.

Done here rather than in a ``hydra/job_logging`` config because the same composed config serves single
runs (which keep their console log) and sweeps, and because a converted ``conf/`` is generated.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_SILENT = logging.CRITICAL + 1
# Hydra's launcher announces every job ("Launching 1 jobs locally", "#3 : lr=0.01 ..."): the per-trial
# line says the same once the trial is done.
LAUNCHER_LOGGERS = (
    "hydra._internal.core_plugins.basic_launcher",
    "hydra_plugins.hydra_joblib_launcher.joblib_launcher",
    "hydra_plugins.hydra_joblib_launcher._core",
)


def in_sweep() -> bool:
    """Whether this process runs a job of a Hydra multirun (``-m``)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return bool(HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN)
    except Exception:  # no Hydra context (a test, the compose API)
        return False


def verbose() -> bool:
    """Whether the user asked Hydra for verbose logging (``hydra.verbose=true`` or logger names)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return bool(HydraConfig.initialized() and HydraConfig.get().verbose)
    except Exception:
        return False


def show_bars() -> bool:
    """Whether tqdm progress bars may be drawn: on a terminal, outside a sweep (never into a log file)."""
    return sys.stderr.isatty() and not in_sweep()


@contextmanager
def quiet_sweep_job() -> Iterator[None]:
    """Inside a sweep job at the default level, keep the job's log records off the console.

    Example:
        >>> with quiet_sweep_job():  # in train.py's task function
        ...     value = task(cfg)
    """
    if not in_sweep() or verbose():
        yield
        return
    quiet_launcher()  # the basic launcher runs jobs in the sweeper's process: later jobs go unannounced
    changed = [(h, h.level) for h in logging.getLogger().handlers if _is_console(h)]
    for handler, _ in changed:
        handler.setLevel(_SILENT)
    try:
        yield
    finally:
        for handler, level in changed:
            handler.setLevel(level)


def quiet_launcher() -> None:
    """Keep Hydra's launchers from announcing each job (call once in the sweeper process, default level)."""
    if verbose():
        return
    for name in LAUNCHER_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _is_console(handler: logging.Handler) -> bool:
    if isinstance(handler, logging.FileHandler) or not isinstance(handler, logging.StreamHandler):
        return False
    stream = getattr(handler, "stream", None)
    return stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
