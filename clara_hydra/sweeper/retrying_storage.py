"""An Optuna RDB storage that waits for its database (:mod:`clara_hydra.sweeper.rdb_retry`) and repeats writes safely.

:class:`RetryingStorage` wraps Optuna's public :class:`~optuna.storages.RDBStorage` (with Optuna's cache in
front of it, and its heartbeat), opened with ``pool_pre_ping`` (a connection the server closed is replaced
when it is taken from the pool, SQLAlchemy's "pessimistic" disconnect handling) and ``pool_recycle``, and
retries every storage call while the server cannot be reached. A retried read is harmless. A retried write
is safe because each write Optuna makes is idempotent or checked when it is repeated after a failure:

- attributes, parameters, intermediate values: an upsert of the same value;
- ``set_trial_state_values`` to a finished state: Optuna refuses a second one
  (``UpdateFinishedTrialError``); when the trial already holds the wanted state the earlier attempt went
  through, and that is success;
- ``set_trial_state_values(RUNNING)`` (taking an enqueued trial): a repeat answers ``False`` ("not
  WAITING any more"); when the trial is RUNNING since our first attempt began it was ours;
- ``create_new_trial``: every trial is created with a unique system attribute (``SystemAttr.CREATE_TOKEN``);
  after a failure the study is searched for it before a trial is created again;
- ``create_new_study``: a study that exists after a failed attempt is the one we created
  (``DuplicatedStudyError`` -> its id, what ``load_if_exists`` does anyway); ``delete_study`` likewise.

Optuna's ``create_new_trial`` also retries a failed commit by itself (up to five times, for deadlocks): a
commit whose reply was lost (the server died between committing and answering) makes a second trial
there. A restart does not lose replies (PostgreSQL answers a commit before it handles the shutdown), a
network cut can: when Optuna retried inside such a call, the token is looked up and any copy is closed at
once as ``interrupted`` (FAIL, not counted against ``n_trials``), with a warning.
``record_heartbeat`` is not retried: a beat missed during an outage is sent again by the next beat.
"""

from __future__ import annotations

import copy
import logging
import threading
import uuid
from collections.abc import Container, Sequence
from datetime import datetime, timedelta
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage

# Optuna exports no public name for the heartbeat interface; its heartbeat thread and fail_stale_trials find
# a storage's heartbeat by isinstance(storage, BaseHeartbeat). Pinned by tests/sweeper/test_rdb_retry.py.
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from clara_hydra.sweep_record.names import SystemAttr, TrialAttr
from clara_hydra.sweeper._optuna_private import stale_trial_ids, trial_id_of
from clara_hydra.sweeper.failures import INTERRUPTED
from clara_hydra.sweeper.rdb_retry import Retrier, is_connection_error

log = logging.getLogger(__name__)

# Seconds after which a pooled connection is replaced even when it looks alive (servers and firewalls
# close idle connections after minutes to hours).
POOL_RECYCLE_S = 1800

_rollbacks = threading.local()  # count: failed attempts inside this thread's current create_new_trial


class RetryingStorage(Retrier, BaseStorage, BaseHeartbeat):
    """An RDB storage whose calls wait for an unreachable database (module docstring).

    Wraps what :func:`optuna.storages.get_storage` makes of :class:`~optuna.storages.RDBStorage` (Optuna's
    cache in front of it), so every call keeps Optuna's caching and is retried here, at the public
    :class:`~optuna.storages.BaseStorage` interface. Every method of that interface and of Optuna's
    ``BaseHeartbeat`` is delegated (a test checks none is missing).

    Args:
        url: the SQLAlchemy URL.
        heartbeat_interval: Optuna's heartbeat interval (seconds) or ``None``.
        grace_period: seconds without a heartbeat after which a trial is stale.
        retry_for: seconds to keep retrying per outage (default: :func:`retry_seconds`).
    """

    def __init__(
        self,
        url: str,
        heartbeat_interval: int | None = None,
        grace_period: int | None = None,
        retry_for: float | None = None,
    ) -> None:
        from sqlalchemy import event

        super().__init__(url, retry_for)
        self.rdb = RDBStorage(
            url,
            engine_kwargs={"pool_pre_ping": True, "pool_recycle": POOL_RECYCLE_S},
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
        )
        # Optuna's session helper rolls back after every failed attempt, including the ones it retries by itself.
        event.listen(self.rdb.scoped_session, "after_soft_rollback", _note_rollback)
        self._inner: Any = optuna.storages.get_storage(self.rdb)  # Optuna's cache over the RDB storage

    def __setstate__(self, state: dict[str, Any]) -> None:  # unpickled in another process: a new session factory
        from sqlalchemy import event

        self.__dict__.update(state)
        event.listen(self.rdb.scoped_session, "after_soft_rollback", _note_rollback)

    @property
    def engine(self) -> Any:
        """The SQLAlchemy engine (the study lock takes PostgreSQL advisory locks on it)."""
        return self.rdb.engine

    # -- writes that need care when repeated --------------------------------------------------------

    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        def again(exc: BaseException) -> int:
            if isinstance(exc, optuna.exceptions.DuplicatedStudyError) and study_name is not None:
                return int(self._inner.get_study_id_from_name(study_name))
            raise exc

        return self._retry("create_new_study", lambda: self._inner.create_new_study(directions, study_name), again)

    def delete_study(self, study_id: int) -> None:
        def again(exc: BaseException) -> None:
            if not isinstance(exc, KeyError):
                raise exc

        self._retry("delete_study", lambda: self._inner.delete_study(study_id), again)

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        token = uuid.uuid4().hex
        template = _with_token(template_trial, token)
        state = {"failed": False}

        def call() -> int:
            if state["failed"]:  # an earlier attempt may have committed: find it before creating again
                found = self._by_token(study_id, token)
                if found:
                    return found[0]
            state["failed"] = True
            _rollbacks.count = 0
            trial_id = int(self._inner.create_new_trial(study_id, template))
            state["failed"] = False
            if getattr(_rollbacks, "count", 0):  # Optuna retried inside: a lost reply may have made two
                found = self._by_token(study_id, token)
                if len(found) > 1:
                    self._close_extra(found)
                    return found[0]
            return trial_id

        return self._retry("create_new_trial", call)

    def _close_extra(self, found: list[int]) -> None:
        """Close the copies of one trial as ``interrupted``: FAIL, not counted against ``n_trials``, not run."""
        for extra in found[1:]:
            self.set_trial_user_attr(extra, TrialAttr.FAIL_REASON, INTERRUPTED)
            self.set_trial_state_values(extra, TrialState.FAIL)
        log.warning(
            "a lost database reply made Optuna create trial ids %s for one trial: id %d is used, "
            "the others are closed as interrupted",
            found,
            found[0],
        )

    def _by_token(self, study_id: int, token: str) -> list[int]:
        trials = self.rdb.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
        return sorted(trial_id_of(t) for t in trials if t.system_attrs.get(SystemAttr.CREATE_TOKEN) == token)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        started = datetime.now()
        repeated = {"yes": False}

        def call() -> bool:
            try:
                done = bool(self._inner.set_trial_state_values(trial_id, state, values))
            except Exception as exc:
                repeated["yes"] = repeated["yes"] or is_connection_error(exc)
                raise
            if not done and repeated["yes"] and state == TrialState.RUNNING:
                t = self.rdb.get_trial(trial_id)  # RUNNING since our first attempt: that attempt took it
                ours = t.datetime_start is not None and t.datetime_start >= started - timedelta(seconds=1)
                return t.state == TrialState.RUNNING and ours
            return done

        def again(exc: BaseException) -> bool:
            if isinstance(exc, optuna.exceptions.UpdateFinishedTrialError) and state.is_finished():
                t = self.rdb.get_trial(trial_id)
                if t.state == state and (values is None or list(t.values or []) == list(values)):
                    return True  # the earlier attempt went through
            raise exc

        return self._retry("set_trial_state_values", call, again)

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self._inner.record_heartbeat(trial_id)
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            # A missed beat, not retried: the next beat is sent when the server is back (logged once).
            self.note_down(exc)

    # -- everything else: plain retry (reads, and writes that are upserts) ---------------------------

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._retry("set_study_user_attr", lambda: self._inner.set_study_user_attr(study_id, key, value))

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self._retry("set_study_system_attr", lambda: self._inner.set_study_system_attr(study_id, key, value))

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float, distribution: Any) -> None:
        self._retry(
            "set_trial_param",
            lambda: self._inner.set_trial_param(trial_id, param_name, param_value_internal, distribution),
        )

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self._retry(
            "set_trial_intermediate_value",
            lambda: self._inner.set_trial_intermediate_value(trial_id, step, intermediate_value),
        )

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._retry("set_trial_user_attr", lambda: self._inner.set_trial_user_attr(trial_id, key, value))

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._retry("set_trial_system_attr", lambda: self._inner.set_trial_system_attr(trial_id, key, value))

    def get_study_id_from_name(self, study_name: str) -> int:
        return int(self._retry("a read", lambda: self._inner.get_study_id_from_name(study_name)))

    def get_study_name_from_id(self, study_id: int) -> str:
        return str(self._retry("a read", lambda: self._inner.get_study_name_from_id(study_id)))

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return list(self._retry("a read", lambda: self._inner.get_study_directions(study_id)))

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return dict(self._retry("a read", lambda: self._inner.get_study_user_attrs(study_id)))

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return dict(self._retry("a read", lambda: self._inner.get_study_system_attrs(study_id)))

    def get_all_studies(self) -> list[Any]:  # FrozenStudy (no public import path)
        return list(self._retry("a read", lambda: self._inner.get_all_studies()))

    def get_trial_user_attrs(self, trial_id: int) -> dict[str, Any]:
        return dict(self._retry("a read", lambda: self._inner.get_trial_user_attrs(trial_id)))

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        return dict(self._retry("a read", lambda: self._inner.get_trial_system_attrs(trial_id)))

    def get_trial_param(self, trial_id: int, param_name: str) -> float:
        return float(self._retry("a read", lambda: self._inner.get_trial_param(trial_id, param_name)))

    def get_trial_params(self, trial_id: int) -> dict[str, Any]:
        return dict(self._retry("a read", lambda: self._inner.get_trial_params(trial_id)))

    def get_trial_number_from_id(self, trial_id: int) -> int:
        return int(self._retry("a read", lambda: self._inner.get_trial_number_from_id(trial_id)))

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return int(
            self._retry("a read", lambda: self._inner.get_trial_id_from_study_id_trial_number(study_id, trial_number))
        )

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self._retry("a read", lambda: self._inner.get_trial(trial_id))

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return list(self._retry("a read", lambda: self._inner.get_all_trials(study_id, deepcopy, states)))

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        return self._retry("a read", lambda: self._inner.get_best_trial(study_id))

    def get_n_trials(self, study_id: int, state: tuple[TrialState, ...] | TrialState | None = None) -> int:
        return int(self._retry("a read", lambda: self._inner.get_n_trials(study_id, state)))

    def check_trial_is_updatable(self, trial_id: int, trial_state: TrialState) -> None:
        self._inner.check_trial_is_updatable(trial_id, trial_state)

    def remove_session(self) -> None:
        self._inner.remove_session()

    def get_heartbeat_interval(self) -> int | None:
        return self._inner.get_heartbeat_interval()

    def get_heartbeat_stale_trial_callback(self) -> Any:
        return self._inner.get_heartbeat_stale_trial_callback()

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        # Optuna's BaseHeartbeat declares this abstract method under a private name (pinned by
        # tests/sweeper/test_rdb_retry.py); Optuna's fail_stale_trials and our heartbeat module call it.
        return list(self._retry("a read", lambda: stale_trial_ids(self._inner, study_id)))


def _note_rollback(session: Any, previous_transaction: Any) -> None:
    """SQLAlchemy's ``after_soft_rollback`` hook: count failed attempts inside this thread's current call."""
    _rollbacks.count = getattr(_rollbacks, "count", 0) + 1


def _with_token(template: FrozenTrial | None, token: str) -> FrozenTrial:
    if template is None:  # what RDBStorage creates without a template: a RUNNING trial started now
        template = FrozenTrial(
            number=-1,
            state=TrialState.RUNNING,
            value=None,
            values=None,
            datetime_start=datetime.now(),
            datetime_complete=None,
            params={},
            distributions={},
            user_attrs={},
            system_attrs={},
            intermediate_values={},
            trial_id=-1,
        )
    else:
        template = copy.deepcopy(template)
    template.system_attrs = {**template.system_attrs, SystemAttr.CREATE_TOKEN.value: token}
    return template
