"""Coordination on storages that offer no lock we can share: Redis, the gRPC proxy, in-memory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from clara_hydra.sweeper.coordination._base import Coordinator


class UnlockedCoordinator(Coordinator):
    """No study lock (the runner checks the budget again after ``ask``); heartbeats as trial attributes.

    A gRPC proxy serialises each call on its server but holds no lock across calls; Redis would need a lock
    of its own that nothing else in Optuna honours.
    """

    kind = "no study lock"
    locks = False

    @contextmanager
    def study_lock(self, study_name: str) -> Iterator[bool]:
        """Excludes nothing: yields False, so callers use the check-after-ask fallback."""
        yield False
