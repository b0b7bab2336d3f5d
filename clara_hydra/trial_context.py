"""Which sweep trial the current job is: the one contract between the sweeper and the runtime.

The sweeper adds ``++hydra.job.env_set.CLARA_HYDRA_OPTUNA_TRIAL=<json>`` to every job it launches, so
Hydra sets that environment variable around the task function in whatever process a launcher runs
it. The JSON object holds:

- ``number``, ``trial_id``, ``study``, ``storage``: the Optuna trial (the job may reopen it);
- ``cache_dir``: the sweep's disk data cache (``<stable sweep root>/cache``);
- ``concurrent``: how many trials of this sweep run at once on this machine (CPU thread sharing);
- ``worker``: the worker that runs it (``w1@host``), ``workers``: how many workers share the study,
  ``devices``: the GPUs it was given;
- ``tracking``: the trial's MLflow run (``uri``, ``run_id``) when the sweep is tracked (:mod:`clara_hydra.tracking`).

The runtime reads it through this module only; the sweeper writes it through :func:`identity_env`.
Nothing here imports Optuna, torch or the sweeper's internals at import time.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

ENV_TRIAL = "CLARA_HYDRA_OPTUNA_TRIAL"

log = logging.getLogger(__name__)

# Storage ids of the trials whose job runs in this very process (Hydra's basic launcher).
_in_process: set[int] = set()


def identity_env(
    storage_url: str,
    study_name: str,
    trial_id: int,
    number: int,
    cache_dir: str | None = None,
    *,
    concurrent: int | None = None,
    worker: str | None = None,
    workers: int | None = None,
    devices: list[str] | None = None,
    tracking: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment variable that tells a job which trial it is.

    Args:
        storage_url: the study's absolute storage URL.
        study_name: the study's name.
        trial_id: Optuna's storage-wide trial id.
        number: the trial's number in the study.
        cache_dir: the sweep's data cache folder, for jobs in other processes.
        concurrent: trials of this sweep running at once on this machine.
        worker: the id of the worker running the trial.
        workers: how many sweep workers share the study (each in its own process).
        devices: the GPU ids the worker was given (``CUDA_VISIBLE_DEVICES``), if any.
        tracking: the trial's MLflow run, ``{"uri": ..., "run_id": ...}``, if the sweep is tracked.

    Returns:
        Variable name -> value.
    """
    ident: dict[str, Any] = {"number": number, "trial_id": trial_id, "study": study_name, "storage": storage_url}
    extras = {
        "cache_dir": cache_dir,
        "concurrent": concurrent,
        "worker": worker,
        "workers": workers,
        "devices": devices,
        "tracking": tracking,
    }
    ident.update({k: v for k, v in extras.items() if v is not None})
    return {ENV_TRIAL: json.dumps(ident)}


def identity() -> dict[str, Any] | None:
    """The current trial's identity (see the module docstring), or ``None`` outside a sweep."""
    text = os.environ.get(ENV_TRIAL)
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        log.warning("%s is not valid JSON (%r): not reporting to any trial", ENV_TRIAL, text[:200])
        return None
    return value if isinstance(value, dict) else None


def in_sweep() -> bool:
    """Whether this code runs inside a trial of the ``clara_optuna`` sweeper."""
    return ENV_TRIAL in os.environ


def trial_number() -> int | None:
    """The current trial's number, or ``None`` outside a sweep."""
    ident = identity()
    return int(ident["number"]) if ident else None


def mark_in_process(trial_id: int, running: bool) -> None:
    """Record (or forget) that the job of ``trial_id`` runs in this process (called by the sweeper)."""
    if running:
        _in_process.add(trial_id)
    else:
        _in_process.discard(trial_id)


def runs_in_sweeper_process() -> bool:
    """Whether the current trial runs in the process of the study's only sweeper (Hydra's basic launcher).

    Then that process's in-memory data cache serves every trial. With several workers (``workers``),
    each keeps its own in-memory cache and the disk cache serves the others, so this is False there.
    """
    ident = identity()
    try:
        return ident is not None and int(ident["trial_id"]) in _in_process and int(ident.get("workers") or 1) <= 1
    except (KeyError, TypeError, ValueError):
        return False


def concurrent_trials() -> int:
    """How many trials of this sweep run at once on this machine (1 outside a sweep)."""
    ident = identity()
    if ident is None:
        return 1
    try:
        return max(int(ident.get("concurrent") or 1), 1)
    except (TypeError, ValueError):
        return 1


def cache_dir() -> str | None:
    """The sweep's disk data cache folder sent by the sweeper, or ``None``."""
    ident = identity()
    value = ident.get("cache_dir") if ident else None
    return str(value) if value else None


def worker() -> str | None:
    """The id of the sweep worker running this trial (``w1@host``), or ``None``."""
    ident = identity()
    value = ident.get("worker") if ident else None
    return str(value) if value else None


def given_devices() -> dict[str, Any]:
    """The devices this process was given: ``CUDA_VISIBLE_DEVICES`` and the sweep worker, for summaries."""
    ident = identity() or {}
    out: dict[str, Any] = {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    if ident.get("worker"):
        out["worker"] = ident["worker"]
    if ident.get("devices") is not None:
        out["gpus"] = ident["devices"]
    return out


def tracking_run() -> dict[str, str] | None:
    """The trial's MLflow run sent by a tracked sweep (``{"uri": ..., "run_id": ...}``), or ``None``."""
    ident = identity()
    value = ident.get("tracking") if ident else None
    if not isinstance(value, dict) or not value.get("run_id") or not value.get("uri"):
        return None
    return {"uri": str(value["uri"]), "run_id": str(value["run_id"])}
