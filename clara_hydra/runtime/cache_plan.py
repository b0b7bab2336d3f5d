"""Which datasets the data cache (:mod:`clara_hydra.runtime.cache`) builds, and the key of each one's entry.

:func:`plan` looks at a dataset's config node: a plain ``monai.data.CacheDataset`` with arguments we understand
and a ``_compose_`` transform qualifies, and its :class:`Plan` holds what the cache needs to build it: the built
transform and arguments, the length of the deterministic prefix (MONAI's rule, :func:`first_random`), the key of
the whole prefix and, when the ``Compose`` can be split (:func:`clara_hydra.runtime.cache_stages.splittable`),
the key of each of its stages. What a key covers is :data:`KEY_COVERS` (see :func:`cache_key`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from clara_hydra import tree_nodes as tree
from clara_hydra.keywords import Emitted
from clara_hydra.runtime.cache_stages import splittable
from clara_hydra.tree_nodes import Kind

log = logging.getLogger(__name__)

# Arguments of monai.data.CacheDataset we understand. Anything else (hash_as_key, runtime_cache, ...) means
# the dataset is built as configured, without the shared cache.
_CONTENT_ARGS = ("cache_num", "cache_rate", "as_contiguous")  # change what is cached: part of the key
_OTHER_ARGS = ("num_workers", "progress", "copy_cache")  # do not change the cached content


@dataclass
class Plan:
    """What :func:`clara_hydra.runtime.cache.build_dataset` needs to build one dataset with the shared cache."""

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
