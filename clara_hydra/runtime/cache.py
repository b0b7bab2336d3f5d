"""Loaded data and its deterministic preprocessing, computed once per sweep process and shared by trials.

A trial's ``CacheDataset`` caches the output of its transforms up to the first random one (MONAI's rule:
the first ``RandomizableTrait`` or non-``Transform``). Two trials whose transforms *before* that point are
configured the same produce the same cached items, so the second one need not load or preprocess anything.
The key of a cache entry is the sha256 of:

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
import hashlib
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from clara_hydra import tree_nodes as tree
from clara_hydra.keywords import Emitted
from clara_hydra.runtime.cache_settings import GB, CacheSettings
from clara_hydra.runtime.cache_stages import StageRun, keep_stage, splittable, start_run
from clara_hydra.tree_nodes import Kind

log = logging.getLogger(__name__)

# Arguments of monai.data.CacheDataset we understand. Anything else (hash_as_key, runtime_cache, ...) means
# the dataset is built as configured, without the shared cache.
_CONTENT_ARGS = ("cache_num", "cache_rate", "as_contiguous")  # change what is cached: part of the key
_OTHER_ARGS = ("num_workers", "progress", "copy_cache")  # do not change the cached content


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


@dataclass
class Plan:
    """What :func:`build_dataset` needs to build one dataset with the shared cache."""

    path: str
    cls: Any
    data: list[Any]
    transform: Any
    kwargs: dict[str, Any]
    key: str
    prefix: list[str]  # names of the deterministic members, for the log
    stage_keys: dict[int, str] = field(default_factory=dict)  # cumulative key of the first k members, 0 < k < n


def prefix_config(members: list[tuple[str, Any]], n_prefix: int) -> list[Any]:
    """Resolved plain config of the first ``n_prefix`` members, without placement markers."""
    out = []
    for _, node in members[:n_prefix]:
        plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
        if isinstance(plain, dict):
            plain = {k: v for k, v in plain.items() if not tree.is_placement(k)}
        out.append(plain)
    return out


KEY_COVERS = "prefix config, dataset arguments, datalist entries, and per file path+size+mtime+inode+ctime"


def _file_stat(value: Any) -> Any:
    """A datalist value, with (size, mtime, inode, ctime) when it names an existing file.

    Not the device number: it differs between the hosts that mount one shared disk, whose trials share a disk cache.
    """
    if isinstance(value, str) and os.path.isfile(value):
        st = os.stat(value)
        return [value, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]
    if isinstance(value, list | tuple):
        return [_file_stat(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _file_stat(v) for k, v in value.items()}
    return value


def cache_key(target: str, content_args: dict[str, Any], prefix: list[Any], data: list[Any]) -> str:
    """sha256 of the dataset class and content arguments, the prefix config and the datalist with file stats.

    What it covers is :data:`KEY_COVERS` (the log lines say so).
    """
    return _key(target, content_args, prefix, [_file_stat(item) for item in data])


def _stage_keys(target: str, content_args: dict[str, Any], prefix: list[Any], stats: list[Any]) -> dict[int, str]:
    """The key of each stage ``k`` (the first ``k`` members, ``0 < k < len(prefix)``): :func:`cache_key`'s
    recipe over ``prefix[:k]``, with ``k`` added so that a stage and a whole prefix never share a key."""
    return {k: _key(target, content_args, prefix[:k], stats, stage=k) for k in range(1, len(prefix))}


def _key(target: str, content_args: dict[str, Any], prefix: list[Any], stats: list[Any], stage: int = 0) -> str:
    payload: dict[str, Any] = {"dataset": target, "args": content_args, "prefix": prefix, "items": stats}
    if stage:
        payload["stage"] = stage
    text = json.dumps(payload, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def plan(builder: Any, path: str) -> Plan | None:
    """How to build the dataset at ``path`` with the shared cache, or ``None`` when it does not qualify.

    A dataset qualifies when it is a plain ``monai.data.CacheDataset`` with only the arguments we know, a
    ``_compose_`` transform (inline or by ``_ref_``), and ``copy_cache`` left on: with ``copy_cache=False``
    the random transforms may modify cached items in place, and the next trial would see modified data.
    """
    from monai.data import CacheDataset
    from monai.transforms import Compose

    node = OmegaConf.select(builder.cfg, path, default=None)
    if tree.kind_of(node) is not Kind.TARGET or node.get(Emitted.PARTIAL) or Emitted.ARGS in node:
        return None
    target = str(node[Emitted.TARGET])
    args = [str(k) for k in tree.arguments(node)]
    unknown = set(args) - {"data", "transform", *_CONTENT_ARGS, *_OTHER_ARGS}
    if unknown or "data" not in args or "transform" not in args:
        log.debug("%s: not cached across trials (arguments %s)", path, sorted(unknown) or args)
        return None
    cls = builder.locate(target, path)
    if cls is not CacheDataset:
        return None
    transform_node = node._get_node("transform")
    transform_kind = tree.kind_of(transform_node)
    if transform_kind is Kind.REFERENCE and isinstance(transform_node, DictConfig):
        transform_path = str(transform_node[Emitted.REF])
    elif transform_kind is Kind.COMPOSE:
        transform_path = f"{path}.transform"
    else:
        return None
    if OmegaConf.select(builder.cfg, transform_path, default=None) is None:
        return None
    transform = builder.build(transform_path)
    members = builder.members(transform_path)
    if not isinstance(transform, Compose) or len(members) != len(transform.transforms):
        return None
    kwargs = {k: builder.build(f"{path}.{k}") for k in args if k not in ("data", "transform")}
    if kwargs.get("copy_cache", True) is not True:
        log.info("%s: copy_cache=false, so its cache is not shared across trials", path)
        return None
    first = first_random(transform)
    n_prefix = len(members) if first is None else first
    data = builder.build(f"{path}.data")
    content = {k: kwargs[k] for k in _CONTENT_ARGS if k in kwargs}
    prefix = prefix_config(members, n_prefix)
    stats = [_file_stat(item) for item in data]  # once: the entry and its stages see the same files
    key = _key(target, content, prefix, stats)
    names = [p.rsplit(".", 1)[-1] for p, _ in members[:n_prefix]]
    stages = _stage_keys(target, content, prefix, stats) if splittable(transform, n_prefix) else {}
    return Plan(path, cls, list(data), transform, kwargs, key, names, stages)


def first_random(transform: Any) -> int | None:
    """Index of the first transform MONAI's ``CacheDataset`` does not cache (its own rule)."""
    from monai.transforms import RandomizableTrait, Transform

    index: int | None = transform.get_index_of_first(
        lambda t: isinstance(t, RandomizableTrait) or not isinstance(t, Transform)
    )
    return index


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
    :func:`plan`) is built as configured (MONAI's own caching only).

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
    run = start_run(dataset, p, settings, cache)
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
    keep_stage(run, p, size, settings, cache)
    cache.put(p.key, items, size, settings.max_bytes, path)
    return dataset


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
