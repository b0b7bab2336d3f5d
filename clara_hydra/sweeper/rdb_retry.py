"""A database server that restarts or drops off the network for a while does not end a sweep.

:class:`RetryingStorage` wraps Optuna's public :class:`~optuna.storages.RDBStorage` (with Optuna's cache
in front of it, and its heartbeat), opened with ``pool_pre_ping`` (a connection the
server closed is replaced when it is taken from the pool, SQLAlchemy's "pessimistic" disconnect handling)
and ``pool_recycle``, and with every storage call retried with backoff while the server cannot be
reached, for at most ``CLARA_HYDRA_STORAGE_RETRY`` seconds per outage (default 60; 0 turns retrying off).
The outage is logged once; when it lasts longer, :class:`StorageUnreachableError` (exit 2, one block)
stops the sweep, and the next run of the same command closes the trial that was running as interrupted.

Only connection-level failures are retried: SQLAlchemy's ``OperationalError`` and ``InterfaceError``,
or a ``DBAPIError`` that invalidated its connection, anywhere in the exception's chain (Optuna wraps
them into ``StorageInternalError``). A retried read is harmless. A retried write is safe because each
write Optuna makes is idempotent or checked when it is repeated after a failure:

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
import os
import threading
import time
import uuid
from collections.abc import Callable, Container, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import optuna
from optuna.storages import BaseStorage, RDBStorage

# Optuna exports no public name for the heartbeat interface; its heartbeat thread and fail_stale_trials find
# a storage's heartbeat by isinstance(storage, BaseHeartbeat). Pinned by tests/sweeper/test_rdb_retry.py.
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from clara_hydra.errors import SweepError, shorten, with_fix
from clara_hydra.sweep_record import SystemAttr, TrialAttr
from clara_hydra.sweeper._optuna_private import stale_trial_ids, trial_id_of
from clara_hydra.sweeper.failures import INTERRUPTED

log = logging.getLogger(__name__)

RETRY_ENV = "CLARA_HYDRA_STORAGE_RETRY"
DEFAULT_RETRY_S = 60.0
# Seconds after which a pooled connection is replaced even when it looks alive (servers and firewalls
# close idle connections after minutes to hours).
POOL_RECYCLE_S = 1800
_BACKOFF = (0.25, 0.5, 1.0, 2.0)  # then every 2 s: a restarted server is found within 2 s

T = TypeVar("T")


class StorageUnreachableError(SweepError):
    """Raised when the database of an RDB storage stays unreachable longer than the retry bound."""


def retry_seconds() -> float:
    """``CLARA_HYDRA_STORAGE_RETRY`` (seconds to keep retrying per outage), default 60.

    Raises:
        SweepError: not a number >= 0.
    """
    text = os.environ.get(RETRY_ENV, "").strip()
    if not text:
        return DEFAULT_RETRY_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise SweepError(
            with_fix(
                f"{RETRY_ENV}: expected seconds >= 0, got {text!r}",
                f"e.g. {RETRY_ENV}=120 waits up to two minutes for the database; 0 does not retry",
            )
        )
    return value


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` or an exception in its cause/context chain is a lost or refused connection."""
    from sqlalchemy import exc as sa_exc

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (sa_exc.OperationalError, sa_exc.InterfaceError)):
            return True
        if isinstance(cur, sa_exc.DBAPIError) and cur.connection_invalidated:
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def where(url: str) -> str:
    """``PostgreSQL at host:port/db`` for a SQLAlchemy URL (no user, no password)."""
    from sqlalchemy.engine import make_url

    try:
        u = make_url(url)
    except Exception:
        return "the database"
    names = {"postgresql": "PostgreSQL", "mysql": "MySQL", "mariadb": "MariaDB"}
    name = names.get(u.get_backend_name(), u.get_backend_name())
    port = f":{u.port}" if u.port else ""
    return f"{name} at {u.host or 'localhost'}{port}/{u.database or ''}"


class _Outage:
    """One outage per database and process, shared by its storages and threads: logged once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.since: float | None = None


_outages: dict[str, _Outage] = {}
_outages_lock = threading.Lock()
_local = threading.local()  # depth: the outermost storage call retries; rollbacks: failed attempts inside it


def _outage(key: str) -> _Outage:
    with _outages_lock:
        return _outages.setdefault(key, _Outage())


class Retrier:
    """Retries calls to one database server while it is unreachable (module docstring).

    Args:
        url: the SQLAlchemy URL (names the server in messages; never its password).
        retry_for: seconds to keep retrying per outage (default: :func:`retry_seconds`).
    """

    def __init__(self, url: str, retry_for: float | None = None) -> None:
        self.retry_for = retry_seconds() if retry_for is None else retry_for
        self.where = where(url)

    def retrying(self, what: str, call: Callable[[], T]) -> T:
        """``call()``, retried while the database is unreachable (work outside Optuna's storage calls)."""
        return self._retry(what, call)

    # -- the retry loop -------------------------------------------------------------------------

    def _retry(self, what: str, call: Callable[[], T], again: Callable[[BaseException], T] | None = None) -> T:
        """``call()``, retried while the database is unreachable; ``again(exc)`` answers a repeated attempt.

        ``again`` is called instead of re-raising when a repeated attempt (after a connection error)
        raises a non-connection error: it decides whether the earlier attempt went through.
        """
        if getattr(_local, "depth", 0):  # inside another storage call: the outermost one retries
            return call()
        outage = _outage(self.where)
        attempt = 0
        _local.depth = 1
        try:
            while True:
                try:
                    result = call()
                except Exception as exc:
                    if not is_connection_error(exc):
                        if attempt and again is not None:
                            return again(exc)
                        raise
                    attempt += 1
                    self._wait(outage, what, exc, attempt)
                    continue
                self._recovered(outage)
                return result
        finally:
            _local.depth = 0

    def _wait(self, outage: _Outage, what: str, exc: BaseException, attempt: int) -> None:
        now = time.monotonic()
        self._down(outage, exc, now)
        since = outage.since if outage.since is not None else now
        left = since + self.retry_for - now
        if left <= 0:
            raise StorageUnreachableError(
                with_fix(
                    f"storage unreachable for {now - since:.0f} s ({self.where}) during {what}: {_cause(exc)}",
                    "start the database server (or restore the network), then rerun the same command: the sweep "
                    f"resumes where it stopped; {RETRY_ENV}=<seconds> waits longer (now {self.retry_for:g})",
                )
            ) from None
        time.sleep(min(_BACKOFF[min(attempt, len(_BACKOFF)) - 1], left))

    def _down(self, outage: _Outage, exc: BaseException, now: float) -> None:
        with outage.lock:
            if outage.since is None:
                outage.since = now
                log.warning(
                    "storage unreachable (%s), retrying for up to %g s: %s", self.where, self.retry_for, _cause(exc)
                )

    def _recovered(self, outage: _Outage) -> None:
        if outage.since is None:
            return
        with outage.lock:
            if outage.since is not None:
                log.warning("storage reachable again (%s) after %.1f s", self.where, time.monotonic() - outage.since)
                outage.since = None


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
            _local.rollbacks = 0
            trial_id = int(self._inner.create_new_trial(study_id, template))
            state["failed"] = False
            if getattr(_local, "rollbacks", 0):  # Optuna retried inside: a lost reply may have made two
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
            self._down(_outage(self.where), exc, time.monotonic())

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
    _local.rollbacks = getattr(_local, "rollbacks", 0) + 1


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


def _cause(exc: BaseException) -> str:
    """The driver's own words (``connection refused``, ``terminating connection``), one line."""
    from sqlalchemy import exc as sa_exc

    said = type(exc).__name__
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:  # the deepest exception that says something
        seen.add(id(cur))
        lines = str(cur.orig if isinstance(cur, sa_exc.DBAPIError) else cur).strip().splitlines()
        if lines and lines[0].strip() not in ("", "()", "None"):
            said = lines[0].strip()
        cur = cur.__cause__ or cur.__context__
    return shorten(said, 200)
