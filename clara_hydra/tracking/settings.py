"""The ``tracking`` node of a composed config and where its store lives. Imports no MLflow.

``+tracking=mlflow`` adds the node (the option file is ``clara_hydra/tracking/conf/tracking/mlflow.yaml``,
found by every config tree through clara-hydra's search-path plugin). Its keys:

=================  ============================================================================================
``backend``        ``mlflow`` (the only one)
``uri``            the tracking store; ``null``: ``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<root>/mlflow.db``
                   with ``<root>`` the sweep's stable root (``multirun/``, beside ``multirun/optuna/``) or, for a
                   single run, ``hydra.run.dir`` cut before its timestamp (``outputs/``)
``experiment_name`` ``null``: the study's name (``hydra.sweeper.study_name``, else the job's name)
``run_name``       a single run's name, or a sweep's parent run's name; ``null``: the job folder / the study name
``tags``           extra tags on every run of this command
=================  ============================================================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from clara_hydra.errors import UserError, shorten, suggest, with_fix

ENV_URI = "MLFLOW_TRACKING_URI"
BACKEND = "mlflow"
DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
INSTALL_FIX = "pip install -e '.[mlflow]' (MLflow's client, mlflow-skinny), or leave out +tracking=mlflow"
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_TIMESTAMP = "${now:"


class TrackingError(UserError, RuntimeError):
    """Raised when tracking was asked for and cannot start: MLflow is not installed, the ``tracking`` node is
    wrong, or the store cannot be opened."""


@dataclass(frozen=True)
class TrackingSettings:
    """The ``tracking`` node, checked.

    Args:
        backend: ``mlflow``.
        uri: the store's URI as written (``None``: the environment's or the default).
        experiment_name: the MLflow experiment (``None``: the study's name).
        run_name: the run's name (``None``: chosen by the caller).
        tags: extra tags of every run.
    """

    backend: str = BACKEND
    uri: str | None = None
    experiment_name: str | None = None
    run_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: DictConfig | Mapping[str, Any]) -> TrackingSettings | None:
        """The settings of a composed config, or ``None`` when it has no ``tracking`` node (tracking off).

        Raises:
            TrackingError: the node is not a mapping, has an unknown key or a value of the wrong type.
        """
        if "tracking" not in cfg:
            return None
        node = cfg["tracking"]
        if node is None:
            return None
        if OmegaConf.is_config(node):
            node = OmegaConf.to_container(node, resolve=True)
        if not isinstance(node, Mapping):
            raise TrackingError(with_fix(f"tracking: expected a mapping, got {shorten(node)}", "use +tracking=mlflow"))
        known = {"backend", "uri", "experiment_name", "run_name", "tags"}
        for key in node:
            if key not in known:
                raise TrackingError(
                    with_fix(
                        f"tracking.{key}: unknown key", suggest(str(key), known) or f"the keys are {sorted(known)}"
                    )
                )
        backend = node.get("backend", BACKEND)
        if backend != BACKEND:
            raise TrackingError(with_fix(f"tracking.backend: {backend!r} is not supported", "use backend: mlflow"))
        for key in ("uri", "experiment_name", "run_name"):
            value = node.get(key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise TrackingError(
                    with_fix(f"tracking.{key}: expected a non-empty string or null, got {shorten(value)}", "")
                )
        tags = node.get("tags") or {}
        if not isinstance(tags, Mapping):
            raise TrackingError(with_fix(f"tracking.tags: expected a mapping, got {shorten(tags)}", "e.g. {team: ct}"))
        return cls(
            backend=BACKEND,
            uri=node.get("uri"),
            experiment_name=node.get("experiment_name"),
            run_name=node.get("run_name"),
            tags={str(k): str(v) for k, v in tags.items()},
        )

    def store_uri(self, default_root: Path, cwd: Path) -> str:
        """The store's absolute URI: ``uri``, else ``MLFLOW_TRACKING_URI``, else ``<default_root>/mlflow.db``.

        Relative SQLite and folder paths are made absolute against ``cwd`` (jobs may run elsewhere); a path
        without a scheme is SQLite for ``*.db``/``*.sqlite``, else a ``file:`` store.
        """
        text = self.uri or os.environ.get(ENV_URI) or ""
        if not text.strip():
            return "sqlite:///" + str(default_root / DB_FILE)
        return absolute_uri(text.strip(), cwd)


def absolute_uri(text: str, cwd: Path) -> str:
    """``sqlite:///rel.db`` or ``rel/x.db`` -> ``sqlite:////abs/rel.db``; ``file:rel`` or ``rel/`` -> ``file:///abs``.

    >>> absolute_uri("runs.db", Path("/w"))
    'sqlite:////w/runs.db'
    >>> absolute_uri("http://host:5000", Path("/w"))
    'http://host:5000'
    """
    if text.startswith("sqlite:///"):
        rest = text[len("sqlite:///") :]
        return "sqlite:///" + str(_absolute(rest, cwd)) if rest and rest != ":memory:" else text
    if text.startswith("file:"):
        rest = text[len("file:") :]
        return text if rest.startswith("//") else _absolute(rest, cwd).as_uri()
    if "://" in text or text in ("databricks",):
        return text
    path = _absolute(text, cwd)
    return "sqlite:///" + str(path) if path.suffix in _SQLITE_SUFFIXES else path.as_uri()


def artifact_root(uri: str) -> str | None:
    """Where a new experiment of a local SQLite store keeps its artifacts: ``<db folder>/mlartifacts``.

    MLflow's own default is ``./mlruns`` under whatever folder the process started in; other stores (a
    tracking server, a remote database) keep their own default (``None``).
    """
    if not uri.startswith("sqlite:///") or uri.endswith(":memory:"):
        return None
    return str(Path(uri[len("sqlite:///") :]).parent / ARTIFACTS_DIR)


def stable_root(raw_dir: str, resolved_dir: str, cwd: Path) -> Path:
    """A run or sweep folder setting cut before its first ``${now:...}`` component, absolute.

    Args:
        raw_dir: the setting as written (``outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}``).
        resolved_dir: the same, resolved (used when it has no timestamp).
        cwd: the launch folder.
    """
    resolved = _absolute(resolved_dir or ".", cwd)
    cut = raw_dir.find(_TIMESTAMP)
    if cut < 0:
        return resolved
    # The components from the timestamped one to the end are dropped from the resolved folder.
    start = raw_dir.rfind("/", 0, cut) + 1
    dropped = len([part for part in raw_dir[start:].split("/") if part])
    return resolved.parents[dropped - 1] if 0 < dropped <= len(resolved.parents) else resolved


def _absolute(path: str, base: Path) -> Path:
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else (base / p).resolve()
