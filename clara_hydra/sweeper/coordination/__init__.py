"""One coordination contract (``_base.Coordinator``) with one private module per storage kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clara_hydra.sweeper._optuna_private import heartbeat_enabled
from clara_hydra.sweeper.coordination._base import Coordinator

__all__ = ["Coordinator", "coordinator_for"]


def coordinator_for(storage: Any, journal: Path | None = None) -> Coordinator:
    """The coordinator for ``storage``, chosen by what the storage is.

    Args:
        storage: the study's Optuna storage (a ``RetryingStorage`` counts as the RDB storage it wraps).
        journal: the journal file's path when ``storage`` is a journal-file storage (``StorageSpec.journal_path``);
            only it is needed for the study lock, so heartbeats and stale trials work without it.

    Returns:
        A journal, RDB or unlocked coordinator.
    """
    if journal is not None:
        from clara_hydra.sweeper.coordination._journal import JournalCoordinator

        return JournalCoordinator(storage, journal)
    # An RDB storage has ``engine``; a study's own storage may be Optuna's cache in front of it, which has no
    # engine (so no study lock) but passes Optuna's heartbeat through.
    if getattr(storage, "engine", None) is not None or heartbeat_enabled(storage):
        from clara_hydra.sweeper.coordination._rdb import RDBCoordinator

        return RDBCoordinator(storage)
    from clara_hydra.sweeper.coordination._unlocked import UnlockedCoordinator

    return UnlockedCoordinator(storage)
