"""One trial on several processes (DistributedDataParallel): what each rank does differently.

The processes are started by :mod:`clara_hydra.runtime.launch` (torch's elastic agent); this module holds
what runs *inside* a rank and the pure rule for how many ranks a trial gets:

- :func:`process_count`: ``multi_gpu``/``nproc_per_node``/the visible GPUs/the sweep worker's GPUs -> N.
- :func:`shard_datasets`: each rank's share of every datalist, cut *before* the dataset (and the data
  cache) sees it, as Clara did and as MONAI's own distributed examples do with ``partition_dataset``:
  each rank caches only its share, not N copies of everything.
- :class:`DistributedPolicy`: the trainer's network wrapped in ``DistributedDataParallel``; a dataloader
  over a dataset that could not be sharded gets a ``DistributedSampler`` instead.
- :func:`pruning_reporter`: Optuna's ``TorchDistributedTrial`` pattern: rank 0 reports and asks the
  pruner, the decision is broadcast, every rank stops at the same epoch.
- :func:`attach_buffer_sync`: before each validation every rank takes rank 0's buffers (BatchNorm running
  statistics drift apart per rank), so every rank validates the model that rank 0 checkpoints.

Validation metrics need nothing here: MONAI's metric handlers gather their buffers across ranks
(``Cumulative._sync``, ``evenly_divisible_all_gather``), so every rank computes the same value over the
whole validation list.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clara_hydra.errors import BuildError, shorten, with_fix

log = logging.getLogger(__name__)

ENV_DEBUG = "CLARA_HYDRA_DDP_DEBUG"  # a folder: each rank writes rank<r>-pid<pid>.json (what it read)
NPROC_KEY = "nproc_per_node"
MULTI_GPU_KEY = "multi_gpu"


@dataclass(frozen=True)
class RankContext:
    """Where this process sits in a distributed trial.

    Args:
        rank: the global rank (0 writes checkpoints, TensorBoard, ``trial_summary.json``, the log).
        world_size: how many processes train the trial.
        local_rank: the rank on this machine (its GPU index among the visible ones).
        backend: ``nccl`` on CUDA, ``gloo`` on the CPU.
    """

    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> str:
        return f"cuda:{self.local_rank}" if self.backend == "nccl" else "cpu"


def current() -> RankContext | None:
    """This process's place in a distributed trial, or ``None`` when no process group is up."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    rank = dist.get_rank()
    return RankContext(rank, dist.get_world_size(), int(os.environ.get("LOCAL_RANK", rank)), str(dist.get_backend()))


# -- how many processes --------------------------------------------------------------------------------


def process_count(
    multi_gpu: Any, nproc_per_node: Any, visible_gpus: int, worker_gpus: Sequence[str] | None = None
) -> int:
    """The number of processes one trial trains on.

    - ``nproc_per_node`` set: that many (needs ``multi_gpu: true`` when above 1; on a GPU machine at most
      one process per visible GPU).
    - otherwise, with ``multi_gpu: true`` or a sweep worker given several GPUs (``gpus="0,1:2,3"``): one
      process per visible GPU (the worker's GPUs are the visible ones), 1 on a machine without GPUs.
    - otherwise 1.

    Args:
        multi_gpu: the config's ``multi_gpu`` value.
        nproc_per_node: the config's ``nproc_per_node`` (``None`` when absent).
        visible_gpus: the GPUs this process sees (``torch.cuda.device_count()``).
        worker_gpus: the GPU ids a sweep worker was given, if any.

    Raises:
        BuildError: a bad ``nproc_per_node``, or one that contradicts ``multi_gpu``/the GPUs.

    Example:
        >>> process_count(True, None, visible_gpus=4)
        4
        >>> process_count(True, 2, visible_gpus=0)  # gloo on the CPU
        2
    """
    if multi_gpu not in (True, False, None):
        raise BuildError(
            with_fix(
                f"{MULTI_GPU_KEY}={shorten(repr(multi_gpu))}: expected true or false",
                f"e.g. `python train.py {MULTI_GPU_KEY}=true`",
            )
        )
    if nproc_per_node is not None:
        n = nproc_per_node
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise BuildError(
                with_fix(
                    f"{NPROC_KEY}={shorten(repr(n))}: must be a whole number of processes >= 1",
                    f"e.g. `python train.py {MULTI_GPU_KEY}=true ++{NPROC_KEY}=2`",
                )
            )
        if n > 1 and multi_gpu is not True:
            raise BuildError(
                with_fix(
                    f"{NPROC_KEY}={n} but {MULTI_GPU_KEY}={str(multi_gpu).lower()}: one trial trains on one process",
                    f"add {MULTI_GPU_KEY}=true to train on {n} processes",
                )
            )
        if visible_gpus and n > visible_gpus:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            raise BuildError(
                with_fix(
                    f"{NPROC_KEY}={n} but only {visible_gpus} GPU(s) are visible"
                    + (f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else "")
                    + ": DDP runs one process per GPU",
                    f"set {NPROC_KEY}<={visible_gpus}; several trials share a GPU in a sweep: hydra.sweeper.gpus='0:0'",
                )
            )
        return n
    if multi_gpu is True or len(worker_gpus or ()) > 1:
        return max(visible_gpus, 1)
    return 1


def visible_gpu_count() -> int:
    """GPUs torch sees (without initialising CUDA in this process)."""
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def processes_for(cfg: Any) -> int:
    """:func:`process_count` for a composed config in this process's environment."""
    from clara_hydra.trial_context import identity

    worker_gpus = (identity() or {}).get("devices")
    return process_count(
        cfg.get(MULTI_GPU_KEY, False), cfg.get(NPROC_KEY, None), visible_gpu_count(), worker_gpus or None
    )


# -- each rank's share of the data ---------------------------------------------------------------------


def partition(items: Sequence[Any], ctx: RankContext, *, even: bool) -> list[Any]:
    """This rank's share of ``items`` (MONAI's ``partition_dataset``, in order, interleaved).

    Args:
        items: the whole datalist.
        ctx: this rank.
        even: every rank gets the same number of items (a few repeated), as training needs: DDP ranks
            must run the same number of iterations. Validation uses uneven shares: its metrics are
            gathered, so every item counts once.
    """
    from monai.data import partition_dataset

    shares = partition_dataset(list(items), num_partitions=ctx.world_size, shuffle=False, even_divisible=even)
    return list(shares[ctx.rank])


def shard_datasets(builder: Any, dataset_paths: Sequence[str], ctx: RankContext) -> dict[str, list[Any]]:
    """Give each dataset of the config (``train.dataset``...) only this rank's share of its ``data``.

    The datalist's target (``clara_hydra.data.load_datalist`` in a converted tree, or whatever function a
    hand-written ``data:`` names, also behind a ``_ref_``) is built through a factory registered with
    :meth:`Builder.register`: the builder memoises the share as that node's value, so the data cache and
    the dataset see only it (its cache key is the share's: each rank caches its own part once). The
    datalists are built here, before the cache plans the datasets. A dataset whose ``data`` is no target's
    result (a list written in the config) or that has no ``data`` argument is left whole;
    :class:`DistributedPolicy` then gives its dataloader a ``DistributedSampler``.

    Returns:
        dataset path -> this rank's items.
    """
    owners: dict[str, str] = {}  # path of the node that builds a datalist -> the dataset it feeds (first one)
    shared: dict[str, list[Any]] = {}  # node path -> the share the factory returned
    for path in dataset_paths:
        found = _datalist_target(builder, f"{path}.data")
        if found is None:
            continue
        node_path, target = found
        owners.setdefault(node_path, path)
        builder.register(target, _share_out(owners, shared, ctx))
    for node_path in owners:
        builder.build(node_path)
    return {owners[node_path]: share for node_path, share in shared.items()}


def _datalist_target(builder: Any, data_path: str) -> tuple[str, Any] | None:
    """(path of the node that builds ``data_path``'s datalist, the object its ``_target_`` names), following
    ``_ref_``s; None when the datalist is not built by a target (absent, null, a list in the config)."""
    from omegaconf import OmegaConf

    from clara_hydra.keywords import Emitted
    from clara_hydra.tree_nodes import Kind, kind_of

    path, seen = data_path, set()
    while path not in seen:
        seen.add(path)
        node = OmegaConf.select(builder.cfg, path, default=None, throw_on_missing=False)
        kind = kind_of(node)
        if kind is Kind.REFERENCE:
            path = str(node.get(Emitted.REF))
        elif kind is Kind.TARGET:
            return path, builder.locate(str(node.get(Emitted.TARGET)), path)
        else:
            return None
    return None  # a reference cycle: the builder reports it when the dataset is built


def _share_out(
    owners: dict[str, str], shared: dict[str, list[Any]], ctx: RankContext
) -> Callable[[Any, str, Callable[[], Any]], Any]:
    """The builder factory for a datalist's target: this rank's share of the list the node builds."""

    def factory(builder: Any, node_path: str, default: Callable[[], Any]) -> Any:
        del builder
        data = default()
        path = owners.get(node_path)
        if path is None or not isinstance(data, Sequence) or isinstance(data, str):
            return data  # the same function elsewhere in the config, or not a list: as configured
        training = path.startswith("train.")  # a validation config's top-level `dataset` is validation data
        # Uneven validation shares need at least one item per rank: a rank with none would not join the gather.
        even = training or len(data) < ctx.world_size
        share = shared[node_path] = partition(data, ctx, even=even)
        if ctx.is_main:
            log.info(
                "%s: %d items shared by %d ranks (%s per rank%s)",
                path,
                len(data),
                ctx.world_size,
                len(share),
                ", a few repeated: every rank runs the same iterations" if even and len(data) % ctx.world_size else "",
            )
        return share

    return factory


def write_debug(
    ctx: RankContext,
    job_dir: str | os.PathLike[str],
    shards: dict[str, list[Any]],
    history: Sequence[tuple[int, float]] = (),
    built: dict[str, Any] | None = None,
) -> Path | None:
    """With ``CLARA_HYDRA_DDP_DEBUG=<folder>``, record this rank's pid, device, the files it read and the
    validation values it saw (written again after training) -- what the tests check."""
    folder = os.environ.get(ENV_DEBUG)
    if not folder:
        return None
    path = Path(folder) / f"rank{ctx.rank}-pid{os.getpid()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "rank": ctx.rank,
        "world_size": ctx.world_size,
        "pid": os.getpid(),
        "device": ctx.device,
        "job_dir": os.fspath(job_dir),
        "time": time.time(),
        "datasets": {p: [_item_files(i) for i in items] for p, items in shards.items()},
        "history": [list(h) for h in history],
        # what the built datasets hold (after training): the share, not the whole list
        "built": {p: [_item_files(i) for i in getattr(d, "data", [])] for p, d in (built or {}).items()},
    }
    path.write_text(json.dumps(record, indent=1, default=str))
    return path


def _item_files(item: Any) -> Any:
    return item.get("image", item) if isinstance(item, dict) else item


# -- DDP around the network, samplers for unsharded data ----------------------------------------------


class DistributedPolicy:
    """A builder ``kwargs_policy`` for a rank: wraps an inner policy (device rules) and adds DDP.

    - a MONAI ``Trainer``'s ``network`` becomes ``DistributedDataParallel(network)`` (moved to this rank's
      GPU first on CUDA); the optimizer, the evaluator and the checkpoints keep the plain module, which
      DDP shares (MONAI's ``CheckpointSaver`` would unwrap it anyway).
    - a ``DataLoader`` whose dataset was not sharded (no ``data`` argument) gets a ``DistributedSampler``.

    Args:
        ctx: this rank.
        inner: the policy applied first (``DevicePolicy.adjust``).
    """

    def __init__(self, ctx: RankContext, inner: Callable[[str, Any, dict[str, Any]], dict[str, Any]] | None) -> None:
        self.ctx = ctx
        self.inner = inner
        self.sharded: set[int] = set()  # ids of datasets built from a shard
        self.wrapped: list[Any] = []

    def adjust(self, path: str, func: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.inner is not None:
            kwargs = self.inner(path, func, kwargs)
        import torch
        from monai.engines import Trainer
        from torch.nn.parallel import DistributedDataParallel

        if isinstance(func, type) and issubclass(func, Trainer):
            network = kwargs.get("network")
            if isinstance(network, torch.nn.Module) and not isinstance(network, DistributedDataParallel):
                kwargs["network"] = self.wrap(network)
                log.debug("%s: network wrapped in DistributedDataParallel", path)
        elif isinstance(func, type) and issubclass(func, torch.utils.data.DataLoader):
            dataset = kwargs.get("dataset")
            if dataset is not None and id(dataset) not in self.sharded and kwargs.get("sampler") is None:
                from torch.utils.data.distributed import DistributedSampler

                shuffle = bool(kwargs.pop("shuffle", False))
                kwargs["sampler"] = DistributedSampler(
                    dataset, num_replicas=self.ctx.world_size, rank=self.ctx.rank, shuffle=shuffle
                )
                if self.ctx.is_main:
                    log.info("%s: its dataset has no datalist to share out: a DistributedSampler splits it", path)
        return kwargs

    def wrap(self, network: Any) -> Any:
        """``network`` in ``DistributedDataParallel`` on this rank's device."""
        from torch.nn.parallel import DistributedDataParallel

        if self.ctx.backend == "nccl":
            network = network.to(self.ctx.device)
            ddp = DistributedDataParallel(network, device_ids=[self.ctx.local_rank])
        else:
            ddp = DistributedDataParallel(network)
        self.wrapped.append(ddp)
        return ddp


def attach_buffer_sync(evaluator: Any, policy: DistributedPolicy) -> None:
    """Before each validation, copy rank 0's buffers (BatchNorm statistics) into every rank's network.

    DDP keeps the parameters equal on every rank but each rank's running statistics follow its own
    batches (DDP broadcasts them only at the next training forward), so without this each rank would
    validate a slightly different model. Afterwards every rank validates rank 0's model, the one its
    checkpoints hold.
    """
    import torch.distributed as dist
    from ignite.engine import Events

    def sync(engine: Any) -> None:
        del engine
        for ddp in policy.wrapped:
            for buffer in ddp.module.buffers():
                dist.broadcast(buffer.data, src=0)

    evaluator.add_event_handler(Events.STARTED, sync)


# -- pruning across ranks ------------------------------------------------------------------------------


def pruning_reporter(report: Callable[[float, int], None], ctx: RankContext) -> Callable[[float, int], None]:
    """``report(value, step)`` for every rank: rank 0 asks the sweep's pruner, every rank gets the answer.

    The decision is broadcast after every validation, so all ranks stop at the same epoch and none waits
    in a collective that another rank left (Optuna's ``TorchDistributedTrial`` does the same). A failure of
    rank 0's report is broadcast too: the other ranks fail at once instead of waiting.
    """
    import torch.distributed as dist

    from clara_hydra.runtime.monitor import is_trial_pruned

    def distributed_report(value: float, step: int) -> None:
        decision: tuple[str, str] | None = None
        error: BaseException | None = None
        if ctx.is_main:
            try:
                report(value, step)
            except Exception as exc:
                error = exc
                decision = ("pruned" if is_trial_pruned(exc) else "failed", f"{type(exc).__name__}: {exc}")
        box: list[Any] = [decision]
        dist.broadcast_object_list(box, src=0)
        if error is not None:
            raise error
        decided = box[0]
        if decided is None:
            return
        if decided[0] == "pruned":
            import optuna

            raise optuna.TrialPruned(decided[1].split(": ", 1)[-1])
        raise RuntimeError(f"rank 0 failed to report to the sweep: {decided[1]}")

    return distributed_report


def gather_devices(ctx: RankContext) -> list[str]:
    """The device of every rank, in rank order (one collective: also proves every rank is up)."""
    import torch.distributed as dist

    devices: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(devices, ctx.device)
    return [str(d) for d in devices]
