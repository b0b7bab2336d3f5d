"""Stages of the data cache: trials whose deterministic prefixes differ only late share what comes before.

The seed example's prefix is ``LoadImaged, EnsureChannelFirstd, ScaleIntensityRanged, CropForegroundd`` and its
search varies ``a_min``/``a_max`` of ``ScaleIntensityRanged``. Keyed by the whole prefix alone, each option would
load (and, with ``Spacingd``, resample) every volume again. So besides the entry of the whole prefix, the first
trial keeps a *stage*: its items after the leading run of I/O and geometry transforms (:func:`stage_boundary`),
under the key of that part of the prefix. A later trial that misses its own entry starts from the longest stored
stage whose key matches its own prefix and runs only the rest of it.

The stage key is the entry key's recipe (dataset content arguments, datalist with file stats, the config of the
members up to the stage) with the stage's length added, so a stage never answers for a whole prefix nor the other
way round: a whole-prefix entry is made contiguous (``as_contiguous``), a stage is kept exactly as its last
transform left it, so the rest of the prefix sees the same input it would see unstaged.

Nothing is re-implemented: each item runs through the dataset's own ``Compose`` with ``start``/``end`` and
``threading=True``, then MONAI's ``convert_to_contiguous`` when ``as_contiguous`` is set, which is exactly what
``CacheDataset._load_cache_item`` does for ``end=first random``; a stage is deep-copied before the rest of the
prefix runs on it (transforms may change their input in place), as ``CacheDataset`` copies its cache before the
random suffix. A lazy ``Compose`` (MONAI's lazy resampling) is never split: its pending operations are applied
at the end of each call, so a split would resample twice.

Stages obey the cache's byte bound and its least-recently-used order like any entry; a stage evicted is computed
again by the next trial that needs it, so correctness never depends on it being there. This module decides where a
stage ends and computes items from and into one (:class:`StageRun`); the cache (:mod:`clara_hydra.runtime.cache`)
looks stages up and keeps them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from clara_hydra.runtime.cache_settings import CacheSettings

# Where MONAI keeps the transforms that read data or change its geometry (and not its intensities).
_GEOMETRY_MODULES = ("monai.transforms.io.", "monai.transforms.spatial.", "monai.transforms.croppad.")
# monai.transforms.utility transforms that move channels or change the container type, not the values.
_LAYOUT_UTILITIES = frozenset(
    {
        "EnsureChannelFirst",
        "EnsureChannelFirstd",
        "AsChannelLast",
        "AsChannelLastd",
        "EnsureType",
        "EnsureTyped",
        "ToTensor",
        "ToTensord",
        "SqueezeDim",
        "SqueezeDimd",
    }
)


def is_geometry(transform: Any) -> bool:
    """Whether ``transform`` is MONAI's I/O, geometry (spatial, crop/pad) or channel/type-layout transform."""
    module = type(transform).__module__ + "."
    if module.startswith(_GEOMETRY_MODULES):
        return True
    return module.startswith("monai.transforms.utility.") and type(transform).__name__ in _LAYOUT_UTILITIES


def stage_boundary(transform: Any, n_prefix: int) -> int | None:
    """Where the first trial of a prefix leaves a stage: after its leading run of I/O and geometry transforms.

    Loading and resampling are the costly part of a prefix and are rarely searched; intensity transforms
    (windowing, normalisation) are cheap and often are. The stage ends at the first transform of the prefix
    that is not I/O or geometry (:func:`is_geometry`): whatever follows it may depend on intensities
    (``CropForegroundd`` after a windowing does).

    Returns:
        The number of transforms in the stage, or ``None`` when that run is empty or the whole prefix (then
        the entry of the whole prefix is all there is to keep), or when the ``Compose`` cannot be split.
    """
    if not splittable(transform, n_prefix):
        return None
    run = 0
    for member in transform.transforms[:n_prefix]:
        if not is_geometry(member):
            break
        run += 1
    return run if 0 < run < n_prefix else None


def splittable(transform: Any, n_prefix: int) -> bool:
    """Whether running the prefix in two calls gives what one call gives: no lazy resampling in it."""
    if getattr(transform, "lazy", False) is True:
        return False
    return not any(getattr(t, "lazy", False) is True for t in transform.transforms[:n_prefix])


def stages_wanted(settings: CacheSettings) -> bool:
    """Whether to keep and look up stages: as configured, else (auto) when this trial runs in a sweep.

    Outside a sweep a process runs one trial, so a stage would only hold memory no later trial uses.
    """
    if not settings.enabled:
        return False
    if settings.stages is not None:
        return settings.stages
    try:
        from clara_hydra.trial_context import in_sweep
    except ImportError:  # the sweeper is optional for the runtime
        return False
    return in_sweep()


@dataclass
class StageRun:
    """How the items of one dataset are computed: from a stored stage (``start > 0``) and/or leaving one (``snap``).

    Args:
        dataset: the MONAI ``CacheDataset`` (its ``data``, ``transform`` and ``as_contiguous`` are used).
        n_prefix: the number of deterministic transforms (MONAI's first random index, or all of them).
        start: transforms already applied to ``source`` items (0: items come from the datalist).
        source: the stored stage's items (``None`` when ``start`` is 0).
        snap: keep each item after this many transforms in :attr:`snapshot` (``None``: keep nothing).
    """

    dataset: Any
    n_prefix: int
    start: int = 0
    source: list[Any] | None = None
    snap: int | None = None
    snapshot: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.snap is not None:
            self.snapshot = [None] * int(self.dataset.cache_num)

    @property
    def plain(self) -> bool:
        """Neither from nor into a stage: MONAI's own ``_load_cache_item`` does the whole job."""
        return self.start == 0 and self.snap is None

    def compute(self, index: int) -> Any:
        """Item ``index`` through the deterministic prefix, as ``CacheDataset._load_cache_item`` computes it."""
        if self.plain:
            return self.dataset._load_cache_item(index)
        import torch
        from monai.transforms import convert_to_contiguous

        compose = self.dataset.transform
        at = self.start
        item = self.dataset.data[index] if self.source is None else copy.deepcopy(self.source[index])
        if self.snap is not None:
            item = compose(item, start=at, end=self.snap, threading=True)
            self.snapshot[index] = item
            item, at = copy.deepcopy(item), self.snap
        item = compose(item, start=at, end=self.n_prefix, threading=True)
        if self.dataset.as_contiguous:
            item = convert_to_contiguous(item, memory_format=torch.contiguous_format)
        return item

    def complete_snapshot(self) -> list[Any] | None:
        """The stage's items when every one was computed here (none read from the disk cache), else ``None``."""
        if self.snap is None or any(item is None for item in self.snapshot):
            return None
        return self.snapshot
