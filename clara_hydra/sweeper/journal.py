"""The journal file a study lives in by default: writes that are whole or absent, a torn tail repaired.

Optuna's ``JournalFileBackend`` appends one JSON line per operation. A write cut short (a full disk,
a killed writer, a power loss) leaves half a line at the end; the next append then glues a whole
record to it, and from that line on the journal cannot be read (``JSONDecodeError``): every trial is
lost. :class:`SafeJournalFileBackend` is Optuna's backend with two changes, through its public
interface (``append_logs`` of ``BaseJournalBackend``, the lock object it accepts):

- an append that fails (``ENOSPC``) truncates the file back to where it began, under the journal's
  lock, so no half line is left behind by this process;
- a tail that is already torn (another process was killed mid-write, a power loss) is repaired
  before anything is appended, and whenever the journal is opened (:func:`repair_tail`): the damaged
  bytes are moved into ``<journal>.torn-<time>`` (named in one warning) and the journal is cut back to
  its last complete record.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from clara_hydra.errors import SweepError, with_fix
from clara_hydra.sweeper.disk import DiskFullError, disk_report, is_disk_full

log = logging.getLogger(__name__)

_CHUNK = 1 << 16


class SafeJournalFileBackend(JournalFileBackend):
    """``JournalFileBackend`` whose appends leave no half line (see the module docstring).

    Args:
        file_path: the journal file (created when missing; a torn tail is repaired at once).
    """

    def __init__(self, file_path: str) -> None:
        # Optuna's default lock for this backend, kept here so appends and repairs take the same one.
        self._clara_lock = JournalFileSymlinkLock(file_path)
        super().__init__(file_path, lock_obj=self._clara_lock)
        self._clara_path = file_path
        with _locked(self._clara_lock):
            repair_tail_locked(Path(file_path))

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Append ``logs`` as one write; on failure the file is cut back to its size before it."""
        data = ("\n".join(json.dumps(x, separators=(",", ":")) for x in logs) + "\n").encode("utf-8")
        with _locked(self._clara_lock):
            fd = os.open(self._clara_path, os.O_RDWR | os.O_APPEND)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    os.close(fd)
                    fd = -1
                    repair_tail_locked(Path(self._clara_path))
                    fd = os.open(self._clara_path, os.O_RDWR | os.O_APPEND)
                    size = os.fstat(fd).st_size
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                except OSError:
                    os.ftruncate(fd, size)  # frees what was written: the journal ends in a whole record
                    raise
            finally:
                if fd >= 0:
                    os.close(fd)


@contextmanager
def _locked(lock: JournalFileSymlinkLock) -> Iterator[None]:
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def repair_tail(path: Path) -> Path | None:
    """Repair a torn tail of a journal file under the journal's lock (see :func:`repair_tail_locked`)."""
    if not path.is_file():
        return None
    with _locked(JournalFileSymlinkLock(str(path))):
        return repair_tail_locked(path)


def repair_tail_locked(path: Path) -> Path | None:
    """Cut a journal back to its last complete record, keeping the damaged bytes aside; the caller holds the lock.

    A record is complete when its line ends with a newline and holds a JSON object. Bytes after the last
    complete record (half a line, a half line glued to a record by an earlier writer, zeros after a power
    loss) go to ``<journal>.torn-<UTC time>``.

    Returns:
        The file the damaged bytes were moved to, or ``None`` when the tail was whole.

    Raises:
        DiskFullError: the damaged bytes cannot be kept aside because the disk is full (nothing is cut).
    """
    size = path.stat().st_size
    if size == 0:
        return None
    with open(path, "rb") as f:
        cut = _scan_back(f, size)
        if cut == size:
            return None
        f.seek(cut)
        damaged = f.read()
    aside = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}")
    try:
        with open(aside, "wb") as out:
            out.write(damaged)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        aside.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise DiskFullError(
                with_fix(
                    f"the journal {path} ends in a torn record ({len(damaged)} bytes) that cannot be kept aside: "
                    f"{disk_report(path)}",
                    "free space on that disk, then rerun the same command (the journal is repaired then)",
                )
            ) from exc
        raise SweepError(f"cannot keep the torn end of the journal {path} in {aside}: {exc}") from exc
    os.truncate(path, cut)
    log.warning(
        "journal %s ended in a torn record (%d bytes; a full disk, a killed writer or a power loss): moved to %s; "
        "the study continues from its last complete record",
        path,
        len(damaged),
        aside,
    )
    return aside


def _scan_back(f: Any, size: int) -> int:
    """Walk back line by line from the end until a complete JSON line is found."""
    end = size
    # Bytes after the last newline are torn by definition.
    last_nl = _rfind_newline(f, end)
    if last_nl < 0:
        return 0
    end = last_nl + 1
    while end > 0:
        start = _rfind_newline(f, end - 1) + 1
        f.seek(start)
        line = f.read(end - start)
        if _is_record(line):
            return end
        end = start
    return 0


def _rfind_newline(f: Any, end: int) -> int:
    """The offset of the last newline before ``end``, or -1."""
    pos = end
    while pos > 0:
        step = min(_CHUNK, pos)
        pos -= step
        f.seek(pos)
        chunk = f.read(step)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return pos + i
    return -1


def _is_record(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
