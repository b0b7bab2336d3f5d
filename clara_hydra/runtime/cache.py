"""Loaded data and its deterministic preprocessing, computed once per sweep process and shared by trials.

A trial's ``CacheDataset`` caches the output of its transforms up to the first random one (MONAI's rule:
the first ``RandomizableTrait`` or non-``Transform``). Two trials whose transforms *before* that point are
configured the same produce the same cached items, so the second one need not load or preprocess anything.
The key of a cache entry (:mod:`clara_hydra.runtime.cache_plan`, which also decides which datasets qualify) is
the sha256 of:

- the resolved config of that deterministic prefix (every member's ``_target_`` and arguments, in order),
- the datalist items, with the size, mtime, inode and ctime of every file they name: an edited file is a new
  key, and so is a file replaced by ``cp -p`` or ``rsync -a`` (they keep size and mtime, but the replacing
  file has another inode or, when written in place, a new ctime, which no copy tool can set),
- the dataset's arguments that change the cached content (``cache_num``, ``cache_rate``, ``as_contiguous``).

The seed example's searched ``a_min``/``a_max`` (``ScaleIntensityRanged``, in the prefix) thus makes one
entry per choice, while ``myProb`` (``RandShiftIntensityd.prob``, after the first random transform) makes none.

Why MONAI's ``runtime_cache`` and not our own dataset class: ``CacheDataset(runtime_cache=<list>)`` takes a
caller-provided list as its cache and runs only the random suffix on its items, exactly as it does for the
cache it fills itself (same ``copy_cache`` deepcopy, same ``_transform``). The first trial of a key fills
the list with MONAI's own ``_load_cache_item`` (``as_contiguous`` too) on our thread pool
(:mod:`clara_hydra.runtime.loading`: it names a broken file and waits for its threads); later trials construct their
``CacheDataset`` around the same list, so nothing is re-implemented and results are identical.

Staged: in a sweep the first trial of a prefix also keeps its items after the leading I/O and geometry
transforms (loading, channel, spacing, orientation, cropping), and a trial whose prefix differs only after that
point (the seed's ``a_min``/``a_max``) starts from them instead of loading again; see
:mod:`clara_hydra.runtime.cache_stages`.

Across processes (joblib/submitit launchers, separate ``python train.py`` runs) a disk copy with the same
key is used, see :mod:`clara_hydra.runtime.diskcache`.

The cache is a session object (:class:`DataCache`), not a module global: the task function keeps one per process
and attaches it to each trial's builder (:meth:`DataCache.attach`), which then hands it every ``CacheDataset`` to
build (:meth:`clara_hydra.runtime.build.Builder.register`).
"""

from __future__ import annotations

import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clara_hydra.runtime.cache_plan import KEY_COVERS, Plan, plan
from clara_hydra.runtime.cache_settings import GB, CacheSettings
from clara_hydra.runtime.cache_stages import StageRun, stage_boundary, stages_wanted

log = logging.getLogger(__name__)


@dataclass
class CacheStats:
    """Counters of one process's cache (tests and the benchmark read them)."""

    hits: int = 0
    misses: int = 0
    items_computed: int = 0  # items loaded and preprocessed by the transforms
    items_from_disk: int = 0
    evictions: int = 0
    refused: int = 0  # entries larger than the bound: not kept
    stage_hits: int = 0  # misses served from a stored stage of their prefix (no loading)
    items_from_stage: int = 0  # items computed from a stage (only the rest of the prefix ran)
    stages_kept: int = 0


@dataclass
class _Entry:
    items: list[Any]
    nbytes: int
    label: str


@dataclass
class DataCache:
    """The data cache of a session: entries keyed by prefix hash, least recently used first.

    Whoever runs trials owns one and attaches it to each trial's builder; trials that share it share their
    preprocessed data (``clara_hydra.runtime.task`` keeps one per process, so a sweep run by Hydra's basic
    launcher shares it across all its trials).

    Example:
        >>> cache = DataCache()                                       # doctest: +SKIP
        >>> cache.attach(builder, settings, device="cuda:0")          # doctest: +SKIP
        >>> dataset = builder.build("train.dataset")  # cached here   # doctest: +SKIP
    """

    entries: OrderedDict[str, _Entry] = field(default_factory=OrderedDict)
    stats: CacheStats = field(default_factory=CacheStats)

    @property
    def nbytes(self) -> int:
        """Bytes held by all entries."""
        return sum(e.nbytes for e in self.entries.values())

    def get(self, key: str) -> list[Any] | None:
        """The cached items of ``key`` (now the most recently used), or ``None``."""
        entry = self.entries.get(key)
        if entry is None:
            return None
        self.entries.move_to_end(key)
        return entry.items

    def put(self, key: str, items: list[Any], nbytes: int, max_bytes: int, label: str) -> bool:
        """Keep ``items`` under ``key`` within ``max_bytes``, evicting the least recently used entries.

        Returns:
            Whether the entry is kept (one larger than the whole bound is not).
        """
        if nbytes > max_bytes:
            self.stats.refused += 1
            log.warning(
                "data cache disabled for %s: its preprocessed data needs %.2f GB, more than the cache bound of "
                "%.2f GB; later trials preprocess it again (raise clara_cache.max_gb or CLARA_HYDRA_CACHE_MAX_GB)",
                label,
                nbytes / GB,
                max_bytes / GB,
            )
            return False
        self.entries[key] = _Entry(items, nbytes, label)
        self.entries.move_to_end(key)
        while self.nbytes > max_bytes:
            old_key, old = self.entries.popitem(last=False)
            self.stats.evictions += 1
            log.warning(
                "data cache evicted %s (key %s, %.2f GB) to stay under %.2f GB; a later trial that needs it "
                "preprocesses it again (raise clara_cache.max_gb or CLARA_HYDRA_CACHE_MAX_GB)",
                old.label,
                old_key[:12],
                old.nbytes / GB,
                max_bytes / GB,
            )
        return True

    def clear(self) -> None:
        """Drop every entry and reset the counters."""
        self.entries.clear()
        self.stats = CacheStats()

    def attach(self, builder: Any, settings: CacheSettings | None = None, device: str = "cpu") -> None:
        """Let this cache build every ``monai.data.CacheDataset`` of ``builder`` (see :func:`build_dataset`).

        Args:
            builder: the trial's :class:`~clara_hydra.runtime.build.Builder`.
            settings: cache settings (default: from the builder's config and the environment).
            device: the run's device; on CUDA the cached items move to the GPU when they fit (:func:`_on_device`).
        """
        from monai.data import CacheDataset

        settings = settings or CacheSettings.from_config(builder.cfg)
        builder.register(CacheDataset, functools.partial(_cached_dataset, cache=self, settings=settings, device=device))


def nbytes_of(obj: Any) -> int:
    """Bytes of the tensors and arrays inside ``obj`` (dicts, lists, tuples walked)."""
    if hasattr(obj, "element_size") and hasattr(obj, "numel"):
        return int(obj.element_size() * obj.numel())
    if hasattr(obj, "nbytes") and isinstance(obj.nbytes, int):
        return int(obj.nbytes)
    if isinstance(obj, dict):
        return sum(nbytes_of(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(nbytes_of(v) for v in obj)
    return 0


def build_dataset(
    builder: Any,
    path: str,
    settings: CacheSettings | None = None,
    cache: DataCache | None = None,
    device: str = "cpu",
) -> Any:
    """Build the dataset at ``path``, reusing the cached preprocessing of an earlier trial with the same key.

    ``cache.attach(builder, settings, device)`` and then ``builder.build(path)``: the builder memoises the
    dataset, so every ``_ref_`` to ``path`` (the dataloader) gets it. A dataset that does not qualify (see
    :func:`~clara_hydra.runtime.cache_plan.plan`) is built as configured (MONAI's own caching only).

    Args:
        builder: the run's :class:`~clara_hydra.runtime.build.Builder`.
        path: config path of the dataset (``train.dataset``).
        settings: cache settings (default: from the config and environment).
        cache: the session's cache; ``None``: a cache of this call alone (nothing shared with other trials).
        device: the run's device; on CUDA the cached items move to the GPU when they fit (see
            :func:`_on_device`).

    Returns:
        The dataset.
    """
    (DataCache() if cache is None else cache).attach(builder, settings, device)
    return builder.build(path)


def _cached_dataset(
    builder: Any, path: str, default: Callable[[], Any], *, cache: DataCache, settings: CacheSettings, device: str
) -> Any:
    """The builder's factory for ``CacheDataset`` nodes (registered by :meth:`DataCache.attach`)."""
    # Planned even with the cache off: our fill (runtime.loading) names a broken file and joins its threads.
    p = plan(builder, path)
    if p is None:
        return default()
    if not settings.enabled:
        dataset = p.cls(data=p.data, transform=p.transform, **p.kwargs, runtime_cache=True)
        dataset._cache[:] = _compute(dataset, p)
        return dataset
    t0 = time.perf_counter()
    items = cache.get(p.key)
    if items is not None:
        dataset = p.cls(data=p.data, transform=p.transform, **p.kwargs, runtime_cache=items)
        if dataset.cache_num == len(items):
            cache.stats.hits += 1
            log.info(
                "data cache hit for %s (key %s of %s; %d items, %.2f GB): loading and %s skipped",
                path,
                p.key[:12],
                KEY_COVERS,
                len(items),
                nbytes_of(items) / GB,
                "+".join(p.prefix) or "no preprocessing",
            )
            return _on_device(dataset, items, device, settings)
    cache.stats.misses += 1
    # runtime_cache=True: MONAI allocates [None] * cache_num without loading; we fill that list ourselves.
    dataset = p.cls(data=p.data, transform=p.transform, **p.kwargs, runtime_cache=True)
    items = dataset._cache
    run = _start_run(dataset, p, settings, cache)
    from_disk = _fill(dataset, items, p, settings, cache, run)
    size = nbytes_of(items)
    if run.start:
        log.info(
            "data cache for %s: loaded data reused from stage %s (key %s, %d items) of an earlier trial; "
            "%s computed in %.1f s (%.2f GB; key %s of %s)",
            path,
            "+".join(p.prefix[: run.start]),
            p.stage_keys[run.start][:12],
            len(items),
            "+".join(p.prefix[run.start :]),
            time.perf_counter() - t0,
            size / GB,
            p.key[:12],
            KEY_COVERS,
        )
    else:
        log.info(
            "data cache miss for %s (key %s of %s): %d items %s in %.1f s (%.2f GB; %s)",
            path,
            p.key[:12],
            KEY_COVERS,
            len(items),
            f"read from the disk cache ({from_disk})" if from_disk else "loaded and preprocessed",
            time.perf_counter() - t0,
            size / GB,
            "+".join(p.prefix) or "no preprocessing",
        )
    untie(items)
    _on_device(dataset, items, device, settings)
    _keep_stage(run, p, size, settings, cache)
    cache.put(p.key, items, size, settings.max_bytes, path)
    return dataset


def _start_run(dataset: Any, p: Plan, settings: CacheSettings, cache: DataCache) -> StageRun:
    """Start from the longest stored stage of this prefix; leave a stage at its boundary if none is stored there."""
    n_prefix = len(p.prefix)
    if not p.stage_keys or dataset.cache_num == 0 or not stages_wanted(settings):
        return StageRun(dataset, n_prefix)
    start, source = 0, None
    for k in sorted(p.stage_keys, reverse=True):
        found = cache.get(p.stage_keys[k])
        if found is not None and len(found) == dataset.cache_num:
            start, source = k, found
            cache.stats.stage_hits += 1
            break
    boundary = stage_boundary(p.transform, n_prefix)
    snap = boundary if boundary is not None and boundary > start else None
    return StageRun(dataset, n_prefix, start, source, snap)


def _keep_stage(run: StageRun, p: Plan, full_size: int, settings: CacheSettings, cache: DataCache) -> None:
    """Store the stage ``run`` left, when it and the whole prefix's entry fit in the bound together."""
    stage = run.complete_snapshot()
    if stage is None or run.snap is None:
        return
    size = nbytes_of(stage)
    names = "+".join(p.prefix[: run.snap])
    if size + full_size > settings.max_bytes:
        log.info(
            "data cache: stage %s of %s not kept (%.2f GB with the %.2f GB of the whole prefix is more than the "
            "bound of %.2f GB); a trial that differs after it loads its data again",
            names,
            p.path,
            size / GB,
            full_size / GB,
            settings.max_bytes / GB,
        )
        return
    if cache.put(p.stage_keys[run.snap], stage, size, settings.max_bytes, f"{p.path} stage {names}"):
        cache.stats.stages_kept += 1
        log.info(
            "data cache: stage %s of %s kept (key %s, %.2f GB): trials that differ after it start from it",
            names,
            p.path,
            p.stage_keys[run.snap][:12],
            size / GB,
        )


def untie(obj: Any) -> None:
    """Let any trial's transforms invert the operations recorded in cached items (in place).

    MONAI records, with each invertible operation, the ``id()`` of the transform object that applied it, and its
    ``inverse`` refuses an operation recorded by another object (``TraceableTransform.check_transforms_match``;
    it lets a class-name match pass only under the ``spawn`` start method). Cached items are shared by trials
    that each build their own transforms (and come from other processes through the disk cache), so an
    ``Invertd`` in a later trial would fail on them. The cache key already guarantees that the same config
    recorded them, so their ids become MONAI's own ``TraceKeys.NONE``, its documented way to skip that check.
    """
    from monai.data import MetaTensor
    from monai.utils import TraceKeys

    if isinstance(obj, MetaTensor):
        _untie_ops(obj.applied_operations, TraceKeys)
    elif isinstance(obj, dict):
        for value in obj.values():
            untie(value)
    elif isinstance(obj, list | tuple):
        for value in obj:
            untie(value)


def _untie_ops(op: Any, keys: Any) -> None:
    if isinstance(op, dict):
        if keys.ID in op and keys.CLASS_NAME in op:
            op[keys.ID] = keys.NONE
        for value in op.values():
            _untie_ops(value, keys)
    elif isinstance(op, list | tuple):
        for value in op:
            _untie_ops(value, keys)


ON_DEVICE_ATTR = "_clara_on_device"  # set on a dataset whose cached items live on the GPU
_GPU_FRACTION = 0.3  # of the free GPU memory: the model, activations and AMP buffers need the rest


def _on_device(dataset: Any, items: list[Any], device: str, settings: CacheSettings) -> Any:
    """On CUDA, move the cached items to the GPU when they fit, so each batch skips the host-to-device copy.

    The random suffix then runs on the GPU too. A dataloader over such a dataset must load in the main
    process (CUDA tensors cannot go through worker processes): :class:`~.device.DevicePolicy` sets its
    ``num_workers`` to 0. Not exercised on CPU-only machines (tests have no GPU).
    """
    if not (settings.on_device and device.startswith("cuda")) or not items:
        return dataset
    import torch

    free, _ = torch.cuda.mem_get_info()
    size = nbytes_of(items)
    if size > _GPU_FRACTION * free:
        log.info("%.2f GB of cached data stays in host memory (GPU has %.2f GB free)", size / GB, free / GB)
        return dataset
    items[:] = [_to(item, device) for item in items]  # a no-op for items an earlier trial already moved
    setattr(dataset, ON_DEVICE_ATTR, True)
    log.info("cached data on %s (%.2f GB)", device, size / GB)
    return dataset


def _to(obj: Any, device: str) -> Any:
    if hasattr(obj, "to") and hasattr(obj, "element_size"):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to(v, device) for v in obj)
    return obj


def _fill(
    dataset: Any, items: list[Any], p: Plan, settings: CacheSettings, cache: DataCache, run: StageRun | None = None
) -> int:
    """Fill ``items`` (the dataset's cache list) in place; return how many came from the disk cache."""
    from clara_hydra.runtime.diskcache import DiskCache, disk_wanted
    from clara_hydra.runtime.loading import load_items

    if dataset.cache_num == 0:
        return 0
    run = run or StageRun(dataset, len(p.prefix))
    if disk_wanted(settings):
        disk = DiskCache.for_key(p.key, settings)
        loaded, computed = disk.fill(dataset, items, p.path, compute=run.compute)
    else:
        items[:] = load_items(dataset, list(range(dataset.cache_num)), p.path, load_one=run.compute)
        loaded, computed = 0, len(items)
    cache.stats.items_from_disk += loaded
    if run.start:
        cache.stats.items_from_stage += computed
    else:
        cache.stats.items_computed += computed
    return loaded


def _compute(dataset: Any, p: Plan) -> list[Any]:
    """The dataset's first ``cache_num`` items through the deterministic prefix (MONAI's own item function)."""
    from clara_hydra.runtime.loading import load_items

    return load_items(dataset, list(range(dataset.cache_num)), p.path)
