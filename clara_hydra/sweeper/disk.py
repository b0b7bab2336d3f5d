"""A full disk: recognising it, naming it, and keeping room to record it.

When the disk under the sweep fills up, the running trial fails with a reason that names the disk
(its mount point and free space), the sweep stops with one compact message (:class:`DiskFullError`,
exit code 2) and, after space is freed, the same command resumes the study. Recording that outcome
needs a few hundred bytes on a disk that has none: :class:`Reserve` keeps a small file next to the
journal (``<journal>.reserve``) that is deleted at that moment, and created again by the next run.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path

from clara_hydra.errors import SweepError

log = logging.getLogger(__name__)

RESERVE_BYTES = 256 * 1024
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
# Messages of writers that drop the errno (torch.save's "file write failed" keeps only the text).
_FULL_TEXTS = ("No space left on device", "Disk quota exceeded")


class DiskFullError(SweepError):
    """Raised when a disk the sweep writes to is full; the message names it and its free space."""


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an exception it was raised from or during) is a full disk or quota."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return True
        if any(text in str(exc) for text in _FULL_TEXTS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def full_path(exc: BaseException | None) -> str | None:
    """The file name a full-disk ``OSError`` in the chain carries, if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS and exc.filename:
            return str(exc.filename)
        exc = exc.__cause__ or exc.__context__
    return None


def mount_point(path: str | Path) -> Path:
    """The mount point of the file system holding ``path`` (its nearest existing parent)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return p


def disk_report(path: str | Path) -> str:
    """``disk full at /data (mounted at /data): 0.0 MB free of 2.0 MB``: the words every full-disk reason uses."""
    mount = mount_point(path)
    try:
        usage = shutil.disk_usage(mount)
        space = f"{usage.free / 1e6:.1f} MB free of {usage.total / 1e6:.1f} MB"
    except OSError as exc:
        space = f"free space unknown ({exc.strerror})"
    return f"disk full at {path} (file system mounted at {mount}): {space}"


class Reserve:
    """A small file kept next to the journal, deleted when the disk fills so the outcome can be recorded.

    Args:
        path: the reserve file (``<journal>.reserve``); ``None`` for storages not on a local disk.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def create(self) -> None:
        """Create the reserve when missing (best effort: a disk too full for it is reported later)."""
        if self.path is None or self.path.exists():
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, RESERVE_BYTES)  # real blocks, not a sparse file
            finally:
                os.close(fd)
        except (OSError, AttributeError):
            self.release()

    def release(self) -> bool:
        """Delete the reserve; whether there was one."""
        if self.path is None:
            return False
        try:
            self.path.unlink()
        except OSError:
            return False
        return True
