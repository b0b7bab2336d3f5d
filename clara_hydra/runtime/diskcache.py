"""The disk copy of the data cache, for trials that run in separate processes.

Layout: ``<root>/<key>/item_00000.pt ...`` with the key of :func:`clara_hydra.runtime.cache_plan.cache_key`, so an
entry is valid exactly when the in-memory one would be (same prefix config, same files, same sizes/mtimes).

Why not MONAI's ``PersistentDataset``: its ``_cachecheck`` writes each item into a fresh directory of the
*system* temp folder and then ``shutil.move``s it into ``cache_dir``. When the two are on different file
systems (``/tmp`` as tmpfs, the cache on a shared disk: the usual cluster setup) the move is a copy, so a
concurrent reader can open a half-written file; it then deletes that file as corrupt while the writer is
still writing it. Here each writer writes a temporary file *inside the entry's folder* and ``os.replace``s it
into place, which is atomic on POSIX: a reader sees no file or a complete one. Two writers of the same item
both write complete, identical files and the last rename wins, so concurrent trials need no lock.

A cache folder is not trusted (another user, a shared disk, a crafted ``item_*.pt``): files are read with
``torch.load(weights_only=True)``, which builds tensors and plain containers only and never runs code. So
items are written as plain data (:func:`encode`): a ``MetaTensor`` becomes its tensor, metadata and applied
operations; a NumPy array a tensor and its dtype; an enum its class name and value, restored only for MONAI's
own enums. An item holding anything else is not written (it stays in memory). A file that does not decode
is recomputed and overwritten, with a warning.
"""

from __future__ import annotations

import enum
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clara_hydra.runtime.cache_settings import CacheSettings

log = logging.getLogger(__name__)

FORMAT = 2  # 1: pickled MetaTensors (torch.load(weights_only=False)), never read again
_TAG = "__clara_cache__"  # marks an encoded non-plain value: {_TAG: kind, ...}
_ENUM_PACKAGES = ("monai",)  # enums restored from the cache must be defined here
_PLAIN = (bool, int, float, str, bytes)


class Unstorable(TypeError):
    """Raised by :func:`encode` for a value the plain-data format cannot hold (the item is not written)."""


def encode(value: Any) -> Any:
    """``value`` as tensors, numbers, strings and plain containers only (what ``weights_only=True`` loads).

    Raises:
        Unstorable: a value of another type.
    """
    import numpy as np
    import torch
    from monai.data import MetaTensor

    if value is None or type(value) in _PLAIN:  # exact types: a StrEnum is a str, but must come back an enum
        return value
    if isinstance(value, enum.Enum):
        cls = type(value)
        return {_TAG: "enum", "cls": f"{cls.__module__}.{cls.__qualname__}", "value": encode(value.value)}
    if isinstance(value, MetaTensor):
        return {
            _TAG: "meta",
            "data": value.as_tensor().detach().clone(memory_format=torch.contiguous_format),
            "meta": encode(dict(value.meta)),
            "ops": encode(list(value.applied_operations)),
            "is_batch": bool(value.is_batch),
        }
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise Unstorable("a NumPy array of Python objects")
        raw = value.tobytes(order="C")  # as bytes: any dtype and byte order, 0-d arrays stay 0-d
        data = torch.frombuffer(bytearray(raw), dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
        return {_TAG: "ndarray", "data": data, "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return {_TAG: "npscalar", "dtype": str(value.dtype), "value": value.item()}
    if isinstance(value, dict):
        if _TAG in value:
            raise Unstorable(f"a dict with the reserved key {_TAG!r}")
        if all(type(k) in (str, int) for k in value):
            return {k: encode(v) for k, v in value.items()}
        return {_TAG: "dict", "items": [[encode(k), encode(v)] for k, v in value.items()]}  # enum keys (TraceKeys)
    if isinstance(value, list | tuple):
        items = [encode(v) for v in value]
        return items if isinstance(value, list) else {_TAG: "tuple", "items": items}
    raise Unstorable(f"a {type(value).__module__}.{type(value).__qualname__}")


def decode(value: Any) -> Any:
    """The inverse of :func:`encode`.

    Raises:
        ValueError: an encoded value that is not ours (an enum outside MONAI, an unknown tag).
    """
    import numpy as np
    from monai.data import MetaTensor

    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    kind = value.get(_TAG)
    if kind is None:
        return {k: decode(v) for k, v in value.items()}
    if kind == "meta":
        tensor = MetaTensor(value["data"], meta=decode(value["meta"]), applied_operations=decode(value["ops"]))
        tensor.is_batch = bool(value["is_batch"])
        return tensor
    if kind == "ndarray":
        raw = value["data"].numpy().tobytes()
        return np.frombuffer(raw, dtype=np.dtype(value["dtype"])).reshape(value["shape"]).copy()
    if kind == "npscalar":
        return np.dtype(value["dtype"]).type(value["value"])
    if kind == "tuple":
        return tuple(decode(v) for v in value["items"])
    if kind == "dict":
        return {decode(k): decode(v) for k, v in value["items"]}
    if kind == "enum":
        return _enum(str(value["cls"]))(decode(value["value"]))
    raise ValueError(f"unknown encoded value {kind!r}")


def _enum(name: str) -> type[enum.Enum]:
    """A MONAI enum class by name; anything else is refused before it is imported."""
    from clara_hydra.targets import Permissions

    cls = Permissions(base=_ENUM_PACKAGES, denied={}).locate(name, "disk cache") if "." in name else None
    if not (isinstance(cls, type) and issubclass(cls, enum.Enum)):
        raise ValueError(f"{name!r} is not an enum")
    return cls


def disk_wanted(settings: CacheSettings) -> bool:
    """Whether to use the disk cache: as configured, else (auto) when this trial runs outside the sweeper.

    In the sweeper's own process (Hydra's basic launcher) the in-memory cache already serves every trial,
    and writing a disk copy would only cost time.
    """
    if settings.disk is not None:
        return settings.disk
    try:
        from clara_hydra.trial_context import in_sweep, runs_in_sweeper_process
    except ImportError:  # the sweeper is optional for the runtime
        return False
    return in_sweep() and not runs_in_sweeper_process()


def default_root(settings: CacheSettings) -> Path:
    """``settings.dir``, else the sweep's ``<stable root>/cache`` (sent by the sweeper), else the user cache."""
    if settings.dir is not None:
        return settings.dir
    try:
        from clara_hydra.trial_context import identity
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

    def fill(
        self, dataset: Any, items: list[Any], where: str = "dataset", compute: Callable[[int], Any] | None = None
    ) -> tuple[int, int]:
        """Fill ``items`` (a ``CacheDataset``'s cache list) from disk, computing missing items with the dataset.

        Args:
            dataset: a MONAI ``CacheDataset``; its ``_load_cache_item`` runs the deterministic prefix.
            items: the list to fill, ``cache_num`` long.
            where: the dataset's config key, for messages.
            compute: how to compute a missing item (default ``dataset._load_cache_item``; the in-memory cache
                passes one that starts from a stored stage, see :mod:`clara_hydra.runtime.cache`).

        Returns:
            (items read from disk, items computed and written).

        Raises:
            DataError: an item cannot be loaded (names the file, see :mod:`clara_hydra.runtime.loading`).
        """
        from clara_hydra.runtime.loading import load_items

        run = compute or dataset._load_cache_item

        def one(index: int) -> tuple[Any, bool]:
            value = self.load(index)
            if value is not None:
                return value, True
            value = run(index)  # MONAI's own prefix run, as CacheDataset fills its cache (or from a stage)
            self.save(index, value)
            return value, False

        results = load_items(dataset, list(range(len(items))), where, load_one=one)
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
            stored = torch.load(path, map_location="cpu", weights_only=True)  # plain data only: never runs code
            if not isinstance(stored, dict) or stored.get("format") != FORMAT:
                raise ValueError(f"not a format-{FORMAT} cache file")
            return decode(stored["item"])
        except Exception as exc:  # crafted, corrupt or from an older version: recompute and overwrite
            log.warning("disk cache: not using %s (%s: %s); recomputing it", path, type(exc).__name__, str(exc)[:200])
            return None

    def save(self, index: int, value: Any) -> None:
        """Write item ``index`` atomically: a temporary file in the same folder, then ``os.replace``."""
        import torch

        try:
            payload = {"format": FORMAT, "item": encode(value)}
        except Unstorable as exc:
            log.warning("disk cache: item %d is not written (it holds %s); it stays in memory only", index, exc)
            return
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".item_{index:05d}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(payload, f)
            os.replace(tmp, self.item_path(index))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
