"""Coordination on a journal file (the default storage): a lock file next to the journal, attribute beats."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from clara_hydra.sweeper.coordination._base import Coordinator


class JournalCoordinator(Coordinator):
    """Optuna's ``JournalFileOpenLock`` on ``<journal>.ask.lock``; heartbeats as trial system attributes.

    Args:
        storage: the journal storage.
        journal: the journal file's path.
    """

    kind = "journal file"
    locks = True

    def __init__(self, storage: Any, journal: Path) -> None:
        super().__init__(storage)
        self.journal = journal

    @contextmanager
    def study_lock(self, study_name: str) -> Iterator[bool]:
        """One lock file per journal (one study per journal); a dead holder's is broken after 10 s (Optuna's rule)."""
        from optuna.storages.journal import JournalFileOpenLock

        lock = JournalFileOpenLock(str(self.journal) + ".ask", grace_period=10)
        lock.acquire()
        try:
            yield True
        finally:
            # Held past the grace period and broken by another worker: nothing left to undo.
            with suppress(RuntimeError):
                lock.release()
