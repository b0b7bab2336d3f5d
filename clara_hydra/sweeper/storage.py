"""Where a study lives: parsing ``hydra.sweeper.storage`` and opening it.

=============================================  =============================================================
``storage``                                    Optuna storage
=============================================  =============================================================
``null`` (default)                             journal file ``<stable sweep root>/optuna/<study_name>.journal``
``journal:///abs/path.journal``                ``JournalStorage(JournalFileBackend(path))``
``journal://rel/path.journal``, ``x.journal``  the same, relative to the directory the command was started in
any other path with no ``://``                 a journal file too, except ``*.db``/``*.sqlite``/``*.sqlite3``
``*.db`` path, ``sqlite:///rel.db``            ``RDBStorage`` on SQLite (relative paths made absolute)
``postgresql://user:pw@host/db``, ``mysql://``  ``RDBStorage`` (SQLAlchemy URL; needs the DB driver)
``redis://host:6379``                          ``JournalStorage(JournalRedisBackend(url))`` (needs ``redis``)
``grpc://host:13000``                          ``GrpcStorageProxy`` (Optuna's gRPC proxy; needs ``grpcio``)
=============================================  =============================================================

The *stable sweep root* is ``hydra.sweep.dir`` cut before its first path component that uses
``${now:...}``: with Hydra's default ``multirun/${now:%Y-%m-%d}/${now:%H-%M-%S}`` the journal is
``multirun/optuna/<study_name>.journal`` under the launch directory, so rerunning the same command
finds the same study; a ``hydra.sweep.dir`` without a timestamp is itself the root. Every URL is made
absolute, because jobs may run in other working directories or processes.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from clara_hydra.errors import SweepError, shorten, with_fix
from clara_hydra.sweeper.coordination._rdb import PG_LOCK_BASE

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

JOURNAL_SCHEME = "journal://"
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_TIMESTAMP = "${now:"


@dataclass(frozen=True)
class StorageSpec:
    """A resolved storage.

    Args:
        url: canonical absolute URL (``journal:///abs/x.journal``, ``sqlite:////abs/x.db``, ...).
    """

    url: str

    @property
    def display(self) -> str:
        """The URL with any password masked, for logs and result files."""
        return mask_password(self.url)

    @property
    def journal_path(self) -> Path | None:
        """The journal file, for a journal-file storage."""
        return Path(self.url[len(JOURNAL_SCHEME) :]) if self.url.startswith(JOURNAL_SCHEME) else None


def mask_password(url: str) -> str:
    """``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db``."""
    return re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", url)


# What a job is told instead of a storage URL that carries a password: "read hydra.sweeper.storage from
# your own Hydra config". The job resolves it in its own process (``${oc.env:OPTUNA_DB}`` reads its
# environment), so the password is written into no job config, identity or log.
STORAGE_REF = "ref:hydra.sweeper.storage"


def for_jobs(spec: StorageSpec) -> str:
    """The storage as jobs are told it: the URL, or :data:`STORAGE_REF` when the URL carries a password."""
    return spec.url if spec.display == spec.url else STORAGE_REF


def from_job_config(reference: str, study_name: str) -> str:
    """The storage URL a job was told (:func:`for_jobs`), resolving :data:`STORAGE_REF` from the job's Hydra config.

    Raises:
        SweepError: a reference outside a Hydra job.
    """
    if reference != STORAGE_REF:
        return reference
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        raise SweepError(f"the trial's storage is given as {STORAGE_REF}, but this process runs no Hydra job")
    hydra_cfg = HydraConfig.get()
    # A password implies a URL (never the default journal), so no sweep folder is needed to resolve it.
    return resolve_storage(
        hydra_cfg.sweeper.get("storage"), study_name, OmegaConf.create({}), cwd=hydra_cfg.runtime.cwd
    ).url


def resolve_storage(setting: Any, study_name: str, cfg: DictConfig, cwd: str | None = None) -> StorageSpec:
    """Turn the ``storage`` setting into an absolute URL.

    Args:
        setting: ``hydra.sweeper.storage`` (``None`` or a string).
        study_name: the study name (names the default journal file).
        cfg: the sweeper's composed config (for ``hydra.sweep.dir``).
        cwd: the launch directory that relative paths start from (default: the current one).

    Returns:
        The resolved storage.

    Raises:
        SweepError: the setting is not a string.
    """
    base = Path(cwd or os.getcwd())
    if setting is None:
        path = stable_sweep_root(cfg, base) / "optuna" / f"{safe_filename(study_name)}.journal"
        return StorageSpec(JOURNAL_SCHEME + str(path))
    if not isinstance(setting, str) or not setting.strip():
        raise SweepError(
            with_fix(
                f"hydra.sweeper.storage: expected a URL or a path, got {setting!r}",
                "e.g. sqlite:///sweep.db, journal:///abs/sweep.journal, postgresql://user:pw@host/db, or null",
            )
        )
    text = setting.strip()
    if text.startswith(JOURNAL_SCHEME):
        return StorageSpec(JOURNAL_SCHEME + str(_absolute(text[len(JOURNAL_SCHEME) :], base)))
    if text.startswith("sqlite:///"):
        rest = text[len("sqlite:///") :]
        return StorageSpec("sqlite:///" + str(_absolute(rest, base)) if rest and rest != ":memory:" else text)
    if "://" in text:
        return StorageSpec(text)  # postgresql://, mysql://, redis://: already location-independent
    path = _absolute(text, base)
    if path.suffix in SQLITE_SUFFIXES:
        return StorageSpec("sqlite:///" + str(path))
    return StorageSpec(JOURNAL_SCHEME + str(path))


def open_storage(
    url: str, heartbeat_interval: int | None = None, grace_period: int | None = None, wait: bool = False
) -> BaseStorage:
    """Open (creating if needed) the Optuna storage behind a URL from :func:`resolve_storage`.

    A database server's storage (PostgreSQL, MySQL) waits for the server while it restarts
    (:mod:`clara_hydra.sweeper.retrying_storage`).

    Args:
        url: the canonical URL.
        heartbeat_interval: for RDB storages, enable Optuna's heartbeats with this interval (seconds).
        grace_period: for RDB storages, seconds without a heartbeat after which a trial is stale.
        wait: wait for an unreachable database server while opening it, too (a job reopening its trial).

    Returns:
        An Optuna storage object.

    Raises:
        SweepError: the storage cannot be opened (missing driver, unreachable server, bad path).
    """
    import optuna

    try:
        if url.startswith(JOURNAL_SCHEME):
            from optuna.storages.journal import JournalStorage

            from clara_hydra.sweeper.journal import SafeJournalFileBackend

            path = Path(url[len(JOURNAL_SCHEME) :])
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(SafeJournalFileBackend(str(path)))
        if url.startswith("grpc://"):
            # Optuna's gRPC storage proxy (optuna.storages.run_grpc_proxy_server in front of a database).
            from optuna.storages import GrpcStorageProxy

            host, _, port = url[len("grpc://") :].rstrip("/").rpartition(":")
            with warnings.catch_warnings():  # "experimental" since Optuna 4.2: noise to a sweep's user
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return GrpcStorageProxy(host=host or "localhost", port=int(port))
        if url.startswith(("redis://", "rediss://")):
            from optuna.storages.journal import JournalRedisBackend, JournalStorage

            return JournalStorage(JournalRedisBackend(url))
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        rdb_url = with_available_driver(url)
        if not rdb_url.startswith("sqlite"):  # a server: its restarts and outages are waited for
            from clara_hydra.sweeper.rdb_retry import Retrier
            from clara_hydra.sweeper.retrying_storage import RetryingStorage

            def server() -> BaseStorage:
                with _schema_lock(rdb_url), warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return RetryingStorage(rdb_url, heartbeat_interval=heartbeat_interval, grace_period=grace_period)

            # A job reopening its trial waits for the server too; a sweep that starts reports a server it cannot
            # reach at once (a wrong host, a stopped server).
            return Retrier(rdb_url).retrying("opening the storage", server) if wait else server()
        with _schema_lock(rdb_url), warnings.catch_warnings():
            # Heartbeats are "experimental" in Optuna since 2.9; the warning is noise to a sweep's user.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(rdb_url, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    except (ImportError, OSError, ValueError, optuna.exceptions.StorageInternalError) as exc:
        from clara_hydra.sweeper.disk import DiskFullError, disk_report, full_path, is_disk_full

        if is_disk_full(exc):
            where = full_path(exc) or url[len(JOURNAL_SCHEME) :]
            raise DiskFullError(
                with_fix(
                    f"hydra.sweeper.storage: cannot open {mask_password(url)}: {disk_report(where)}",
                    "free space on that disk, then rerun the same command",
                )
            ) from exc
        raise SweepError(
            with_fix(
                f"hydra.sweeper.storage: cannot open {mask_password(url)}: {type(exc).__name__}: {exc}",
                "check the URL, the server and its driver "
                "(postgresql needs a driver: pip install 'clara-hydra[postgres]' installs psycopg 3)",
            )
        ) from exc
    except Exception as exc:  # SQLAlchemy's OperationalError and friends: same advice
        if type(exc).__module__.startswith("sqlalchemy"):
            raise SweepError(
                with_fix(
                    f"hydra.sweeper.storage: cannot open {mask_password(url)}: {shorten(str(exc), 400)}",
                    "check the URL, that the server is running and reachable, and the user's rights",
                )
            ) from exc
        raise


def with_available_driver(url: str) -> str:
    """``postgresql://`` with the PostgreSQL driver that is installed.

    SQLAlchemy 2.0 maps a bare ``postgresql://`` to psycopg2, SQLAlchemy 2.1 to psycopg (3), which the
    ``postgres`` extra installs. Name psycopg2 explicitly when it is the only driver there (an older setup).
    """
    import importlib.util

    bare = url.startswith("postgresql://")
    if bare and importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


def stable_sweep_root(cfg: DictConfig, base: Path) -> Path:
    """``hydra.sweep.dir`` cut before its first timestamped component, resolved and made absolute.

    Args:
        cfg: the composed config.
        base: the directory relative paths start from.

    Returns:
        A directory that is the same for every rerun of the same command.
    """
    raw = _raw_value(cfg, "hydra.sweep.dir") or "multirun"
    cut = raw.find(_TIMESTAMP)
    if cut >= 0:
        raw = raw[:cut].rpartition("/")[0] if "/" in raw[:cut] else ""
    resolved = _resolve_text(cfg, raw) if "${" in raw else raw
    return _absolute(resolved or ".", base)


def safe_filename(name: str) -> str:
    """A study name usable as a file name."""
    return re.sub(r"[^-\w.]", "_", name).strip(".") or "study"


def _absolute(path: str, base: Path) -> Path:
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else (base / p).resolve()


def _raw_value(cfg: DictConfig, key: str) -> str | None:
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, default=None)
    if not isinstance(parent, DictConfig) or leaf not in parent:
        return None
    raw = OmegaConf.to_container(parent, resolve=False).get(leaf)  # type: ignore[union-attr]
    return None if raw is None else str(raw)


def _resolve_text(cfg: DictConfig, text: str) -> str:
    """Resolve interpolations in ``text`` against ``cfg`` (``runs/${name}`` -> ``runs/exp1``)."""
    try:
        node = OmegaConf.create({"value": text}, parent=cfg)
        return str(node.value)
    except Exception:
        return "multirun"


@contextmanager
def _schema_lock(url: str) -> Iterator[None]:
    """Serialise Optuna's table creation on a fresh PostgreSQL database across processes.

    Several workers starting together on an empty database each run ``CREATE TYPE``/``CREATE TABLE``
    and all but one fail (``UniqueViolation ... studydirection``): SQLAlchemy's ``create_all`` checks,
    then creates, without a lock. A session-level advisory lock around the storage's start-up makes the
    others wait and then find the tables. Other databases: no lock. (Key offset 0; the study locks are
    in clara_hydra.sweeper.coordination._rdb.)
    """
    if not url.startswith("postgresql"):
        yield
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": PG_LOCK_BASE})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": PG_LOCK_BASE})
    finally:
        engine.dispose()
