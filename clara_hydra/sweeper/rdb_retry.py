"""Waiting for a database server that restarts or drops off the network, instead of ending the sweep.

:class:`Retrier` retries a call while the database cannot be reached, with backoff, for at most
``CLARA_HYDRA_STORAGE_RETRY`` seconds per outage (default 60; 0 turns retrying off). The outage is logged
once per server and process; when it lasts longer, :class:`StorageUnreachableError` (exit 2, one block)
stops the sweep, and the next run of the same command closes the trial that was running as interrupted.

Only connection-level failures are retried: SQLAlchemy's ``OperationalError`` and ``InterfaceError``,
or a ``DBAPIError`` that invalidated its connection, anywhere in the exception's chain (Optuna wraps
them into ``StorageInternalError``). Which calls may be repeated safely is the storage's business:
:class:`clara_hydra.sweeper.retrying_storage.RetryingStorage` wraps Optuna's RDB storage with it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from clara_hydra.errors import SweepError, shorten, with_fix

log = logging.getLogger(__name__)

RETRY_ENV = "CLARA_HYDRA_STORAGE_RETRY"
DEFAULT_RETRY_S = 60.0
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
_local = threading.local()  # depth: the outermost storage call retries


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

    def note_down(self, exc: BaseException) -> None:
        """Record (and log, once per outage) that the server is unreachable, for a call that is not retried."""
        self._down(_outage(self.where), exc, time.monotonic())

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
