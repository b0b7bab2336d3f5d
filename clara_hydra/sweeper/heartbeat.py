"""Heartbeats for the ask/tell loop, and failing the trials of dead workers.

What depends on the storage kind (how a beat is recorded, how staleness is judged, the study lock) is the
coordination contract, :mod:`clara_hydra.sweeper.coordination`; this module runs the beating thread and
fails the stale trials its coordinator finds.

Optuna records heartbeats only inside ``study.optimize`` and only on RDB storages; our workers use
ask/tell and the default storage is a journal file, so a worker runs :class:`Heartbeat` itself: one
daemon thread that, every ``heartbeat_interval`` seconds, records a heartbeat for each trial the worker
is running.

- RDB storages with heartbeats enabled (PostgreSQL, MySQL): Optuna's own ``record_heartbeat``; staleness
  is judged by the database's clock (Optuna's stale-trial query), so the machines' clocks need
  not agree.
- Other storages (the journal file, Redis, the gRPC proxy): a trial system attribute holding the time
  of the last beat. A journal file lives on one machine (or one shared file system), where the clocks of
  the processes agree.

A worker also records, on every trial it claims, its host, pid and the pid's start time. A live worker
on the same host can then tell at once that a trial's worker is gone (SIGKILL, a crash, Ctrl-C of a
whole process group): its pid no longer exists or now belongs to another process. That check needs
no grace period and is why a rerun after ``kill -9`` on one machine retries the dead trial at once;
across machines the heartbeat's grace period decides.

A stale trial is marked FAIL with the reason ``interrupted`` by whichever live worker sees it first
(the state change is a compare-and-swap in every Optuna storage, so exactly one wins) and its
parameters are enqueued once more (``retry_of``); a retry that dies again is not retried a second time.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from clara_hydra.sweep_record import TrialAttr
from clara_hydra.sweeper._optuna_private import storage_of, trial_id_of
from clara_hydra.sweeper.coordination import coordinator_for
from clara_hydra.sweeper.failures import INTERRUPTED

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)


class Heartbeat:
    """A daemon thread recording a heartbeat for every trial this worker is running.

    Args:
        storage: the study's storage.
        interval: seconds between beats.
    """

    def __init__(self, storage: Any, interval: int) -> None:
        self.storage = storage
        self.interval = interval
        self._trials: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._coordinator = coordinator_for(storage)

    def claim(self, trial: optuna.Trial, worker: str) -> None:
        """Mark ``trial`` as run by this worker (id, host, pid) and start beating for it."""
        tid = self._coordinator.claim(trial, worker)
        if self._coordinator.optuna_heartbeat:
            self._beat(tid)  # Optuna's first beat; a failure is logged like any other beat's
        with self._lock:
            self._trials.add(tid)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="clara-heartbeat", daemon=True)
            self._thread.start()

    def release(self, trial_id: int) -> None:
        """Stop beating for a trial (it is finished)."""
        with self._lock:
            self._trials.discard(trial_id)

    def stop(self) -> None:
        """End the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                trials = list(self._trials)
            for tid in trials:
                self._beat(tid)

    def _beat(self, trial_id: int) -> None:
        import optuna

        try:
            self._coordinator.beat(trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            self.release(trial_id)  # told meanwhile (or failed as stale by another worker)
        except Exception as exc:  # a storage hiccup must not kill the worker: the next beat retries
            log.warning("heartbeat for trial id %d not recorded: %s: %s", trial_id, type(exc).__name__, exc)


def fail_stale(study: optuna.Study, grace_period: int, mine: set[int], retry: bool) -> list[int]:
    """Fail the trials of dead workers as ``interrupted`` and enqueue each one's parameters once more.

    Args:
        study: the study.
        grace_period: see :meth:`clara_hydra.sweeper.coordination.Coordinator.stale_trials`.
        mine: this worker's running trials (left alone).
        retry: enqueue the parameters again (``retry_interrupted``); a retry is not retried twice.

    Returns:
        The numbers of the trials this worker failed (another worker may have won some of the races).
    """
    import optuna
    from optuna.trial import TrialState

    storage = storage_of(study)
    failed = []
    for t, why in coordinator_for(storage_of(study)).stale_trials(study, grace_period, mine):
        try:
            storage.set_trial_user_attr(trial_id_of(t), TrialAttr.FAIL_REASON, INTERRUPTED)
            if not storage.set_trial_state_values(trial_id_of(t), state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # its worker finished it after all, or another worker failed it first
        failed.append(t.number)
        again = retry and TrialAttr.RETRY_OF not in t.user_attrs
        if again:
            attrs: dict[str, Any] = {TrialAttr.RETRY_OF: t.number}
            if t.user_attrs.get(TrialAttr.BASELINE):
                attrs[TrialAttr.BASELINE] = True
            study.enqueue_trial(dict(t.params), user_attrs=attrs)
        log.warning(
            "trial %d failed as %s: %s%s",
            t.number,
            INTERRUPTED,
            why,
            "; its parameters are retried" if again else ("" if not retry else "; it was a retry already"),
        )
    return failed
