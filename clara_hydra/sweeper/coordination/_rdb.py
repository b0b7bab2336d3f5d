"""Coordination on an RDB storage: PostgreSQL advisory locks; Optuna's own heartbeat when enabled.

SQLite and MySQL take no study lock (``study_lock`` yields False, the check-after-ask fallback): a SQLite
file is refused for more than one worker (``workers>1``), so no other process asks on it; MySQL's named
locks are not used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from clara_hydra.sweeper._optuna_private import heartbeat_enabled, stale_trial_ids, study_id_of
from clara_hydra.sweeper.coordination._base import Coordinator

if TYPE_CHECKING:
    import optuna

# A fixed key for PostgreSQL advisory locks taken by clara-hydra ("clara" in ASCII) plus a per-use offset
# (offset 0 is storage.py's schema lock).
PG_LOCK_BASE = 0x636C617261 << 16


class RDBCoordinator(Coordinator):
    """PostgreSQL: a session advisory lock keyed by the study name; others: no lock.

    Args:
        storage: the (retrying) RDB storage, or Optuna's cache in front of one with heartbeats.
    """

    kind = "RDB"

    def __init__(self, storage: Any) -> None:
        super().__init__(storage)
        self.engine = getattr(storage, "engine", None)  # None: Optuna's cache in front of the storage
        self._optuna = heartbeat_enabled(storage)

    @property
    def locks(self) -> bool:  # type: ignore[override]
        """True on PostgreSQL only (and only given the storage itself, not Optuna's cache in front of it)."""
        return self.engine is not None and self.engine.dialect.name == "postgresql"

    @property
    def optuna_heartbeat(self) -> bool:
        """Whether the storage was opened with a heartbeat interval (Optuna's heartbeat table)."""
        return self._optuna

    def beat(self, trial_id: int) -> None:
        """Optuna's ``record_heartbeat`` when enabled, else the attribute beat."""
        if self._optuna:
            self.storage.record_heartbeat(trial_id)
        else:
            super().beat(trial_id)

    def stale_by_storage_clock(self, study: optuna.Study) -> set[int]:
        """Optuna's stale trials (heartbeat older than the storage's grace period, database clock)."""
        return set(stale_trial_ids(self.storage, study_id_of(study))) if self._optuna else set()

    @contextmanager
    def study_lock(self, study_name: str) -> Iterator[bool]:
        """A PostgreSQL session advisory lock (released by the server when the holder's connection dies).

        Taken through the storage's retrier, so a worker waits for a restarting server.
        """
        engine = self.engine
        if engine is None or not self.locks:
            yield False
            return
        import sqlalchemy

        from clara_hydra.sweeper.rdb_retry import is_connection_error

        key = PG_LOCK_BASE + 1 + int.from_bytes(hashlib.sha1(study_name.encode()).digest()[:2], "big")

        def take() -> Any:
            conn = engine.connect()
            try:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            except BaseException:
                conn.close()
                raise
            return conn

        retrying = getattr(self.storage, "retrying", None)  # RetryingStorage: wait for a restarting server
        conn = retrying("the study lock", take) if retrying is not None else take()
        try:
            yield True
        finally:
            try:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
            except Exception as exc:
                if not is_connection_error(exc):
                    raise  # a lost connection took its session's advisory locks with it: nothing to release
            finally:
                conn.close()
