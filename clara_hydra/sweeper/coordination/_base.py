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

3. **Stale trials of dead workers** (:meth:`Coordinator.stale_trials`, with the storage's own clock where it
   keeps one: :meth:`Coordinator.stale_by_storage_clock`). A RUNNING trial is stale when its worker on this host is
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
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from clara_hydra.sweep_record.names import SystemAttr, TrialAttr
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

    def stale_trials(
        self, study: optuna.Study, grace_period: int, mine: set[int]
    ) -> list[tuple[optuna.trial.FrozenTrial, str]]:
        """The RUNNING trials of dead workers, with why they are judged dead.

        Args:
            study: the study.
            grace_period: seconds without a heartbeat after which a trial is stale.
            mine: storage ids of the trials this worker runs (never stale).

        Returns:
            (trial, explanation) pairs.
        """
        from optuna.trial import TrialState

        running = [
            t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if trial_id_of(t) not in mine
        ]
        if not running:
            return []
        optuna_stale = self.stale_by_storage_clock(study)
        now = time.time()
        found = []
        for t in running:
            who = t.user_attrs.get(TrialAttr.WORKER, "an earlier run")
            alive = owner_alive(t)
            if alive is False:
                found.append((t, f"its worker {who} (pid {t.system_attrs.get(SystemAttr.WORKER_PID)}) is gone"))
                continue
            if alive is True:
                continue
            if trial_id_of(t) in optuna_stale:
                found.append((t, f"no heartbeat from {who} for over {grace_period} s"))
                continue
            if self.optuna_heartbeat:
                # A trial without an Optuna heartbeat was started by an older run: judge it by its start.
                if SystemAttr.HEARTBEAT not in t.system_attrs and _age(t, now, start_only=True) > grace_period:
                    found.append((t, f"started {int(_age(t, now, start_only=True))} s ago by {who}, no heartbeat"))
                continue
            age = _age(t, now)
            if age > grace_period:
                found.append((t, f"no heartbeat from {who} for {int(age)} s (grace period {grace_period} s)"))
        return found


def process_start(pid: int) -> str | None:
    """An identity of the process ``pid`` that a reused pid does not share: boot id + start time (Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        return None
    # Fields after the command name (which may hold spaces): state, ..., start time in clock ticks (22).
    fields = stat.rsplit(")", 1)[-1].split()
    if len(fields) <= 19 or fields[0] in ("Z", "X"):
        return None  # a zombie (killed, not yet reaped by its parent: a coordinator waiting on another) is dead
    return f"{boot}:{fields[19]}"


def owner_alive(frozen: optuna.trial.FrozenTrial) -> bool | None:
    """Whether the worker that claimed a trial is alive: True/False when it ran on this host, else None."""
    attrs = frozen.system_attrs
    if attrs.get(SystemAttr.WORKER_HOST) != socket.gethostname() or SystemAttr.WORKER_PID not in attrs:
        return None
    started = attrs.get(SystemAttr.WORKER_PID_START)
    if started is None:
        return None
    return process_start(int(attrs[SystemAttr.WORKER_PID])) == started


def _age(t: optuna.trial.FrozenTrial, now: float, start_only: bool = False) -> float:
    beat = None if start_only else t.system_attrs.get(SystemAttr.HEARTBEAT)
    if isinstance(beat, (int, float)):
        return now - float(beat)
    start = t.datetime_start
    if start is None:
        return 0.0
    return (datetime.now() - start).total_seconds() if start.tzinfo is None else now - start.timestamp()
