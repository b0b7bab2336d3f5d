"""RetryingStorage without a server: what it delegates, which errors it retries, its setting.

The behaviour against a real PostgreSQL server (restarts, outages, repeated writes) is tested in
tests/sweeper/test_postgres_restart.py.
"""

from __future__ import annotations

import pytest

from clara_hydra.errors import SweepError

optuna = pytest.importorskip("optuna")
sqlalchemy = pytest.importorskip("sqlalchemy")


def test_optunas_heartbeat_interface_is_where_we_import_it_from() -> None:
    # retrying_storage imports BaseHeartbeat from optuna.storages._heartbeat (no public name): Optuna's heartbeat
    # thread and fail_stale_trials find a storage's heartbeat by isinstance against this class.
    from optuna.storages import RDBStorage
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

    assert issubclass(RDBStorage, BaseHeartbeat)
    assert "_get_stale_trial_ids" in BaseHeartbeat.__abstractmethods__
    assert callable(is_heartbeat_enabled)


def test_every_storage_method_is_delegated() -> None:
    from optuna.storages import BaseStorage
    from optuna.storages._heartbeat import BaseHeartbeat

    from clara_hydra.sweeper.retrying_storage import RetryingStorage

    names = {n for c in (BaseStorage, BaseHeartbeat) for n, v in vars(c).items() if callable(v)}
    names -= {"__init__", "get_failed_trial_callback"}  # the latter calls get_heartbeat_stale_trial_callback
    missing = sorted(n for n in names if n not in vars(RetryingStorage))
    assert missing == [], f"Optuna's storage interface gained methods RetryingStorage does not delegate: {missing}"
    assert not RetryingStorage.__abstractmethods__


def _refused() -> BaseException:
    """A real OperationalError: SQLAlchemy failing to open its database (SQLite in a missing folder)."""
    engine = sqlalchemy.create_engine("sqlite:////nonexistent-dir/x/y.db")
    try:
        with engine.connect():
            pass
    except Exception as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("connected")


def test_which_errors_are_retried() -> None:
    from clara_hydra.sweeper.rdb_retry import _cause, is_connection_error

    refused = _refused()
    assert isinstance(refused, sqlalchemy.exc.OperationalError)
    assert is_connection_error(refused)
    try:  # Optuna's session helper wraps it: found in the chain
        raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from refused
    except optuna.exceptions.StorageInternalError as wrapped:
        assert is_connection_error(wrapped)
        assert "unable to open database file" in _cause(wrapped)
    integrity = sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))
    assert not is_connection_error(integrity)
    assert not is_connection_error(ValueError("x"))
    invalidated = sqlalchemy.exc.DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)
    assert is_connection_error(invalidated)


def test_the_retry_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from clara_hydra.sweeper.rdb_retry import DEFAULT_RETRY_S, RETRY_ENV, retry_seconds

    monkeypatch.delenv(RETRY_ENV, raising=False)
    assert retry_seconds() == DEFAULT_RETRY_S == 60
    monkeypatch.setenv(RETRY_ENV, "0")
    assert retry_seconds() == 0
    monkeypatch.setenv(RETRY_ENV, "2.5")
    assert retry_seconds() == 2.5
    for bad in ("-1", "soon", "inf", "nan"):
        monkeypatch.setenv(RETRY_ENV, bad)
        with pytest.raises(SweepError, match=rf"{RETRY_ENV}: expected seconds >= 0, got '{bad}'"):
            retry_seconds()


def test_where_names_the_server_without_the_password() -> None:
    from clara_hydra.sweeper.rdb_retry import where

    assert where("postgresql+psycopg://u:secret@db.example:5433/sweeps") == "PostgreSQL at db.example:5433/sweeps"
    assert where("mysql://u:secret@h/x") == "MySQL at h/x"
