"""The disk copy of the data cache, for trials that run in separate processes.

Layout: ``<root>/<key>/item_00000.pt ...`` with the key of :func:`clara_hydra.runtime.cache.cache_key`, so an
entry is valid exactly when the in-memory one would be (same prefix config, same files, same sizes/mtimes).

Why not MONAI's ``PersistentDataset``: its ``_cachecheck`` writes each item into a fresh directory of the
*system* temp folder and then ``shutil.move``s it into ``cache_dir``. When the two are on different file
systems (``/tmp`` as tmpfs, the cache on a shared disk: the usual cluster setup) the move is a copy, so a
concurrent reader can open a half-written file; it then deletes that file as corrupt while the writer is
still writing it. Here each writer writes a temporary file *inside the entry's folder* and ``os.replace``s it
into place, which is atomic on POSIX: a reader sees no file or a complete one. Two writers of the same item
both write complete, identical files and the last rename wins, so concurrent trials need no lock.

Files are read with ``torch.load(weights_only=False)`` because cached items are MONAI ``MetaTensor``s with
their metadata; only files this module wrote in the user's own cache folder are read.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import Any

from clara_hydra.runtime.cache_settings import CacheSettings

log = logging.getLogger(__name__)


def disk_wanted(settings: CacheSettings) -> bool:
    """Whether to use the disk cache: as configured, else (auto) when this trial runs outside the sweeper.

    In the sweeper's own process (Hydra's basic launcher) the in-memory cache already serves every trial,
    and writing a disk copy would only cost time.
    """
    if settings.disk is not None:
        return settings.disk
    try:
        from clara_hydra.sweeper.trial_report import in_sweep, runs_in_sweeper_process
    except ImportError:  # the sweeper is optional for the runtime
        return False
    return in_sweep() and not runs_in_sweeper_process()


def default_root(settings: CacheSettings) -> Path:
    """``settings.dir``, else the sweep's ``<stable root>/cache`` (sent by the sweeper), else the user cache."""
    if settings.dir is not None:
        return settings.dir
    try:
        from clara_hydra.sweeper.trial_report import identity
    except ImportError:
        identity = dict
    ident = identity() or {}
    if ident.get("cache_dir"):
        return Path(str(ident["cache_dir"]))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "clara-hydra" / "data"


@dataclass
class DiskCache:
    """One entry's folder; :meth:`fill` reads what is there and computes and writes the rest.

    Args:
        folder: ``<root>/<key>``.
    """

    folder: Path

    @classmethod
    def for_key(cls, key: str, settings: CacheSettings) -> DiskCache:
        """The folder of ``key`` under the configured root (created)."""
        folder = default_root(settings) / key
        folder.mkdir(parents=True, exist_ok=True)
        return cls(folder)

    def item_path(self, index: int) -> Path:
        """The file of item ``index``."""
        return self.folder / f"item_{index:05d}.pt"

    def fill(self, dataset: Any, items: list[Any]) -> tuple[int, int]:
        """Fill ``items`` (a ``CacheDataset``'s cache list) from disk, computing missing items with the dataset.

        Args:
            dataset: a MONAI ``CacheDataset``; its ``_load_cache_item`` runs the deterministic prefix.
            items: the list to fill, ``cache_num`` long.

        Returns:
            (items read from disk, items computed and written).
        """

        def one(index: int) -> tuple[Any, bool]:
            value = self.load(index)
            if value is not None:
                return value, True
            value = dataset._load_cache_item(index)  # MONAI's own prefix run, as CacheDataset fills its cache
            self.save(index, value)
            return value, False

        workers = max(int(getattr(dataset, "num_workers", 1) or 1), 1)
        with ThreadPool(workers) as pool:
            results = pool.map(one, range(len(items)))
        items[:] = [value for value, _ in results]
        loaded = sum(1 for _, from_disk in results if from_disk)
        return loaded, len(results) - loaded

    def load(self, index: int) -> Any | None:
        """Item ``index`` from disk, or ``None`` when it is not there (or unreadable: then recomputed)."""
        import torch

        path = self.item_path(index)
        if not path.is_file():
            return None
        try:
            return torch.load(path, weights_only=False)  # our own files: MetaTensors need full unpickling
        except Exception as exc:  # a file from an older torch/MONAI: recompute and overwrite
            log.warning("disk cache: cannot read %s (%s: %s); recomputing it", path, type(exc).__name__, exc)
            return None

    def save(self, index: int, value: Any) -> None:
        """Write item ``index`` atomically: a temporary file in the same folder, then ``os.replace``."""
        import torch

        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".item_{index:05d}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(value, f)
            os.replace(tmp, self.item_path(index))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
