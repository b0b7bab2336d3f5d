"""MLflow's client for one tracking store: opening it, experiments, the tag and metric names clara-hydra writes.

The only module that imports MLflow (inside :func:`open_client`, so importing this module stays free).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clara_hydra.errors import shorten, with_fix
from clara_hydra.tracking.settings import INSTALL_FIX, TrackingError, artifact_root

if TYPE_CHECKING:
    from mlflow import MlflowClient

PARENT_TAG = "mlflow.parentRunId"  # MLflow's own tag: the UI nests a run under this parent
OBJECTIVE = "objective"  # the final value's metric (objective_0, objective_1, ... for several directions)
# What a job is told instead of a store URI that carries a password: "take the URI from your own config or
# environment" (the job resolves ``tracking.uri`` / ``MLFLOW_TRACKING_URI`` itself), so no job's Hydra config
# (``hydra.job.env_set``) holds the password.
URI_REF = "ref:tracking.uri"
PARAM_LIMIT = 6000  # MLflow's longest parameter value
TAG_LIMIT = 5000  # shorter than MLflow's limit (8000): reasons are tracebacks' last lines, kept readable

log = logging.getLogger(__name__)


class Tag(str, Enum):
    """The tags clara-hydra writes (``clara_hydra.*``), one table for the writer and every reader."""

    KIND = "clara_hydra.kind"  # study (a sweep's parent), trial (its child), run (a single run)
    STUDY = "clara_hydra.study"  # the Optuna study's name
    STUDY_KEY = "clara_hydra.study_key"  # which study instance a parent belongs to (see sweep.study_key)
    STORAGE = "clara_hydra.storage"  # the study's storage, password masked
    SWEEP_DIR = "clara_hydra.sweep_dir"
    TRIAL = "clara_hydra.trial"  # the trial number
    STATE = "clara_hydra.state"  # COMPLETE / PRUNED / FAIL (a single run: completed / pruned / failed)
    FAIL_REASON = "clara_hydra.fail_reason"
    PRUNE_REASON = "clara_hydra.prune_reason"
    DUPLICATE_OF = "clara_hydra.duplicate_of"  # the trial whose outcome this one reused (skip_duplicates)
    JOB_DIR = "clara_hydra.job_dir"
    OBJECTIVE = "clara_hydra.objective"  # the name of the validation key metric (val_mean_dice)


def mask(text: str) -> str:
    """Every ``scheme://user:password@`` in ``text`` with the password replaced by ``***``."""
    return re.sub(r"(://[^/:@\s'\"]*:)[^@/\s'\"]*@", r"\1***@", text)


def for_jobs(uri: str) -> str:
    """The store's URI as jobs are told it: the URI, or :data:`URI_REF` when it carries a password."""
    return uri if mask(uri) == uri else URI_REF


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """An exclusive lock on a local SQLite store (``<db>.lock``, ``flock``: released by the OS when its holder
    dies, however long it held it); nothing for other stores."""
    if not uri.startswith("sqlite:///") or uri.endswith(":memory:"):
        yield
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (the oldest-parent rule still holds)
        yield
        return
    path = Path(uri[len("sqlite:///") :] + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_client(uri: str) -> MlflowClient:
    """MLflow's client on ``uri`` (imports MLflow).

    Raises:
        TrackingError: MLflow is not installed.
    """
    try:
        from mlflow import MlflowClient
    except ImportError as exc:
        raise TrackingError(with_fix(f"+tracking=mlflow: MLflow is not installed ({exc})", INSTALL_FIX)) from exc
    # A new SQLite store announces its schema migration at INFO on every first use: noise in a sweep's log.
    for name in ("mlflow.store.db.utils", "alembic", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=uri)


def experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    """The id of experiment ``name``, created if missing (two processes creating it at once is fine).

    Raises:
        TrackingError: the store cannot be opened or refuses the experiment.
    """
    from mlflow.exceptions import MlflowException

    try:
        found = client.get_experiment_by_name(name)
        if found is None:
            try:
                return str(client.create_experiment(name, artifact_location=_artifacts(uri, name)))
            except MlflowException:  # created by another worker in between: use theirs
                found = client.get_experiment_by_name(name)
                if found is None:
                    raise
        if found.lifecycle_stage == "deleted":  # deleted in the UI: a new sweep brings it back
            client.restore_experiment(found.experiment_id)
        return str(found.experiment_id)
    except MlflowException as exc:
        raise TrackingError(
            with_fix(
                f"tracking.uri: the MLflow store {mask(uri)} cannot be used: {shorten(mask(str(exc)), 400)}",
                "check tracking.uri / MLFLOW_TRACKING_URI (default: sqlite:///<sweep root>/mlflow.db)",
            )
        ) from exc


def _artifacts(uri: str, name: str) -> str | None:
    root = artifact_root(uri)
    if root is None:
        return None
    return (Path(root) / re.sub(r"[^-\w.]", "_", name)).as_uri()


def param_values(params: Mapping[str, Any]) -> dict[str, str]:
    """Parameters as MLflow stores them: text, at most :data:`PARAM_LIMIT` characters, passwords masked."""
    return {str(k): shorten(mask(str(v)), PARAM_LIMIT) for k, v in params.items()}


def tag_value(value: Any) -> str:
    """A tag's text: masked and cut to :data:`TAG_LIMIT` characters."""
    return shorten(mask(str(value)), TAG_LIMIT)


def objective_metrics(values: list[float] | None) -> dict[str, float]:
    """``{"objective": v}``, or ``{"objective_0": v0, ...}`` for a study with several directions."""
    if not values:
        return {}
    if len(values) == 1:
        return {OBJECTIVE: float(values[0])}
    return {f"{OBJECTIVE}_{i}": float(v) for i, v in enumerate(values)}
