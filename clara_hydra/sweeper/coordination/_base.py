"""The coordination contract: what the workers of one study share beyond Optuna's storage interface.

Optuna's storages make each call atomic (a trial's state change is a compare-and-swap in every one), but a
sweep also needs three things Optuna offers only inside ``study.optimize`` or not at all. A
:class:`Coordinator` supplies them for one storage; :func:`clara_hydra.sweeper.coordination.coordinator_for`
picks the module for the storage's kind (``_journal``, ``_rdb``, ``_unlocked``), the way Optuna keeps one
module per storage behind ``optuna/storages/_base.py``. Every kind is tested against this contract by one
parametrised supplier (tests/sweeper/test_coordination.py).

1. **Ask under a study lock** (:meth:`Coordinator.study_lock`). A context manager all workers of one study
   share, held while a worker counts the budget and asks a trial, so ``n_trials`` is exact and the baseline
   trial unique when workers start together. It yields whether a lock is really held:

   - ``True``: no other holder of the same study's lock, in any process or on any machine that uses the same
     storage, is inside its block at the same time. A holder that dies releases it (PostgreSQL: with its
     connection; journal file: broken by the next asker after Optuna's 10 s grace period).
   - ``False`` (:attr:`Coordinator.locks` is False): nothing is excluded. Callers must then check after
     ``ask`` (count again and close a trial over the budget) - the check-after-ask fallback.

   Callers may assume the lock is not re-entrant and must hold it only for storage calls (never a trial).

2. **The heartbeat of a running trial** (:meth:`Coordinator.claim`, :meth:`Coordinator.beat`). ``claim``
   records, on a trial a worker starts, its host, pid, the pid's start time and a first attribute beat;
   ``beat`` records that the trial is still alive. Heartbeats are kept by Optuna itself on an RDB storage
   opened with a heartbeat interval (:attr:`Coordinator.optuna_heartbeat`, judged by the database's clock),
   otherwise as the trial system attribute ``SystemAttr.HEARTBEAT`` (the time of the last beat, judged by
   the clock of the process that reads it: one machine or one shared file system). An attribute beat on a
   finished trial raises Optuna's ``UpdateFinishedTrialError`` (the caller stops beating for it); Optuna's
   RDB heartbeat records it harmlessly (only RUNNING trials are ever judged stale).

3. **Stale trials of dead workers** (:meth:`Coordinator.stale_by_storage_clock` plus
   ``clara_hydra.sweeper.heartbeat.stale_trials``). A RUNNING trial is stale when its worker on this host is
   gone (pid absent or reused: no grace period), or when it had no beat for longer than the grace period.
   Callers may assume a trial they claimed and still beat for is never reported stale to them (they pass it
   in ``mine``) and that failing a stale trial is safe against other workers doing the same (the state
   change is a compare-and-swap: exactly one wins).
"""

from __future__ import annotations

import os
import socket
import time
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar

from clara_hydra.sweep_record import SystemAttr, TrialAttr
from clara_hydra.sweeper._optuna_private import trial_id_of

if TYPE_CHECKING:
    import optuna


class Coordinator(ABC):
    """Study lock, heartbeats and stale-trial detection for one storage (see the module docstring).

    Args:
        storage: the study's (possibly retrying) Optuna storage.
    """

    kind: ClassVar[str]
    locks: ClassVar[bool]  # whether study_lock really excludes other holders

    def __init__(self, storage: Any) -> None:
        self.storage = storage

    @abstractmethod
    def study_lock(self, study_name: str) -> AbstractContextManager[bool]:
        """Hold the study's lock while counting the budget and asking; yields whether a lock is held."""

    @property
    def optuna_heartbeat(self) -> bool:
        """Whether Optuna's own heartbeat (RDB, database clock) is recorded rather than an attribute."""
        return False

    def claim(self, trial: optuna.Trial, worker: str) -> int:
        """Mark ``trial`` as run by this worker (id, host, pid, pid start) with a first attribute beat.

        Returns:
            The trial's storage id. With :attr:`optuna_heartbeat` the caller records Optuna's first beat.
        """
        from clara_hydra.sweeper.heartbeat import process_start

        trial.set_user_attr(TrialAttr.WORKER, worker)
        pid = os.getpid()
        tid = trial_id_of(trial)
        self.storage.set_trial_system_attr(tid, SystemAttr.WORKER_HOST, socket.gethostname())
        self.storage.set_trial_system_attr(tid, SystemAttr.WORKER_PID, pid)
        self.storage.set_trial_system_attr(tid, SystemAttr.WORKER_PID_START, process_start(pid))
        # The first beat also as an attribute on every storage: on an RDB storage it marks the trial as
        # one whose staleness Optuna's heartbeat table decides (trials of older runs have none).
        self.storage.set_trial_system_attr(tid, SystemAttr.HEARTBEAT, time.time())
        return tid

    def beat(self, trial_id: int) -> None:
        """Record that the trial is alive (on a finished trial an attribute beat raises UpdateFinishedTrialError)."""
        self.storage.set_trial_system_attr(trial_id, SystemAttr.HEARTBEAT, time.time())

    def stale_by_storage_clock(self, study: optuna.Study) -> set[int]:
        """Ids of RUNNING trials the storage itself judges stale (by its own clock); none by default."""
        return set()
