"""One trial on several processes: the process count, the data shares, failures and out-of-memory (no GPU, fast)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from clara_hydra.errors import BuildError, DataError
from clara_hydra.runtime import launch, oom
from clara_hydra.runtime.distributed import RankContext, partition, process_count


@pytest.mark.parametrize(
    ("multi_gpu", "nproc", "visible", "worker", "expected"),
    [
        (False, None, 0, None, 1),
        (False, None, 4, None, 1),  # multi_gpu off: one process, even with GPUs
        (True, None, 4, None, 4),  # multi_gpu: every visible GPU
        (True, None, 0, None, 1),  # no GPU and no nproc_per_node: one CPU process (and a warning)
        (True, 2, 0, None, 2),  # gloo on the CPU when asked
        (True, 2, 4, None, 2),
        (True, 1, 4, None, 1),
        (False, 1, 4, None, 1),
        (False, None, 2, ["2", "3"], 2),  # a sweep worker given two GPUs trains on both
        (False, None, 1, ["0"], 1),
        (None, None, 0, None, 1),  # a config without the key
    ],
)
def test_process_count(multi_gpu: object, nproc: object, visible: int, worker: list[str] | None, expected: int) -> None:
    assert process_count(multi_gpu, nproc, visible, worker) == expected


@pytest.mark.parametrize(
    ("multi_gpu", "nproc", "visible", "fragment"),
    [
        (True, 0, 0, "nproc_per_node=0: must be a whole number of processes >= 1"),
        (True, "two", 0, "nproc_per_node='two'"),
        (True, True, 0, "nproc_per_node=True"),
        (False, 2, 0, "nproc_per_node=2 but multi_gpu=false"),
        (True, 3, 2, "nproc_per_node=3 but only 2 GPU(s) are visible"),
        ("yes", None, 0, "multi_gpu='yes': expected true or false"),
    ],
)
def test_bad_process_settings_are_user_errors(multi_gpu: object, nproc: object, visible: int, fragment: str) -> None:
    with pytest.raises(BuildError) as info:
        process_count(multi_gpu, nproc, visible)
    assert fragment in str(info.value) and "fix:" in str(info.value)


def test_each_rank_gets_a_different_share_in_order() -> None:
    items = [{"image": f"img{i}.nii.gz"} for i in range(8)]
    shares = [partition(items, RankContext(r, 2, r, "gloo"), even=True) for r in range(2)]
    assert [i["image"] for i in shares[0]] == ["img0.nii.gz", "img2.nii.gz", "img4.nii.gz", "img6.nii.gz"]
    assert [i["image"] for i in shares[1]] == ["img1.nii.gz", "img3.nii.gz", "img5.nii.gz", "img7.nii.gz"]
    odd = items[:5]
    training = [partition(odd, RankContext(r, 2, r, "gloo"), even=True) for r in range(2)]
    validation = [partition(odd, RankContext(r, 2, r, "gloo"), even=False) for r in range(2)]
    assert [len(s) for s in training] == [3, 3]  # same iterations on every rank: DDP needs it
    assert [len(s) for s in validation] == [3, 2]  # every item validated once (metrics are gathered)
    assert sorted(i["image"] for s in validation for i in s) == sorted(i["image"] for i in odd)


def test_each_dataset_is_built_from_its_share_through_the_builders_factory_hook(tmp_path: Path) -> None:
    """The datalist's target is built through ``Builder.register``: the dataset (and so the data cache under it)
    gets the share, also behind a ``_ref_``; the same function elsewhere and a list written in the config
    stay whole (the latter's dataloader gets a DistributedSampler)."""
    from omegaconf import OmegaConf

    from clara_hydra.runtime.build import Builder
    from clara_hydra.runtime.distributed import shard_datasets

    for i in range(6):
        (tmp_path / f"img{i}.nii.gz").write_bytes(b"")
    datalist = {
        "training": [{"image": f"img{i}.nii.gz", "label": f"img{i}.nii.gz"} for i in range(6)],
        "validation": [{"image": f"img{i}.nii.gz", "label": f"img{i}.nii.gz"} for i in range(5)],
    }
    (tmp_path / "dataset.json").write_text(json.dumps(datalist))

    def load(key: str) -> dict[str, Any]:
        return {
            "_target_": "clara_hydra.data.load_datalist",
            "data_list_file_path": str(tmp_path / "dataset.json"),
            "data_list_key": key,
        }

    cfg = OmegaConf.create(
        {
            "lists": {"validation": load("validation"), "other": load("training")},
            "train": {"dataset": {"_target_": "monai.data.Dataset", "data": load("training")}},
            "validate": {"dataset": {"_target_": "monai.data.Dataset", "data": {"_ref_": "lists.validation"}}},
            "extra": {"dataset": {"_target_": "monai.data.Dataset", "data": [{"image": "a"}, {"image": "b"}]}},
        }
    )
    builder = Builder(cfg, rank=1)
    paths = ["train.dataset", "validate.dataset", "extra.dataset"]
    shards = shard_datasets(builder, paths, RankContext(1, 2, 1, "gloo"))

    def names(items: Any) -> list[str]:
        return [Path(i["image"]).name for i in items]

    assert sorted(shards) == ["train.dataset", "validate.dataset"]  # the written list is not a target's result
    assert names(shards["train.dataset"]) == ["img1.nii.gz", "img3.nii.gz", "img5.nii.gz"]
    assert names(shards["validate.dataset"]) == ["img1.nii.gz", "img3.nii.gz"]  # uneven: each validated once
    assert names(builder.build("train.dataset").data) == names(shards["train.dataset"])
    assert names(builder.build("validate.dataset").data) == names(shards["validate.dataset"])
    assert len(builder.build("lists.other")) == 6  # the same function feeding no dataset: whole
    assert len(builder.build("extra.dataset").data) == 2


def real_oom() -> torch.OutOfMemoryError:
    return torch.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.14 GiB of which "
        "1.06 GiB is free. Process 4242 has 78.07 GiB memory in use. Of the allocated memory 76.51 GiB is "
        "allocated by PyTorch, and 1.02 GiB is reserved by PyTorch but unallocated."
    )


def test_cuda_out_of_memory_becomes_a_clear_trial_failure() -> None:
    from clara_hydra.sweeper.failures import Outcome, classify

    exc = real_oom()
    assert oom.is_cuda_oom(exc) and not oom.is_cuda_oom(RuntimeError("CUDA out of memory"))
    report = oom.parse(str(exc))
    assert (report.asked, report.free, report.total, report.gpu) == ("2.00 GiB", "1.06 GiB", "79.14 GiB", "0")
    error = oom.describe(exc, "rank 1")
    assert str(error).startswith("CUDA out of memory on GPU 0: asked for 2.00 GiB, 1.06 GiB free of 79.14 GiB (rank 1)")
    result = classify(True, error, 1)  # what the sweeper records
    assert result.outcome is Outcome.FAIL
    assert result.reason.startswith("out of memory: CUDA out of memory on GPU 0: asked for 2.00 GiB, 1.06 GiB free")


def test_older_torch_wording_and_unknown_wording() -> None:
    old = oom.parse(
        "CUDA out of memory. Tried to allocate 20.00 MiB (GPU 1; 15.78 GiB total capacity; 14.1 GiB "
        "already allocated; 3.19 MiB free; 14.5 GiB reserved in total by PyTorch)"
    )
    assert (old.asked, old.free, old.total, old.gpu) == ("20.00 MiB", "3.19 MiB", "15.78 GiB", "1")
    assert "something odd" in str(oom.describe(torch.OutOfMemoryError("something odd")))


def failure(exitcode: int, signal_name: str = "<N/A>") -> SimpleNamespace:
    return SimpleNamespace(exitcode=exitcode, signal_name=lambda: signal_name)


def payload(tmp_path: Path) -> launch.RankPayload:
    errors = tmp_path / "errors"
    errors.mkdir()
    return launch.RankPayload({}, None, str(tmp_path / "job"), "gloo", str(errors), 10.0)


def test_a_killed_rank_is_named_with_its_signal(tmp_path: Path) -> None:
    p = payload(tmp_path)
    # rank 0 saw the connection drop a moment later: the killed rank is the cause, not rank 0's error
    launch._record_error(p.error_dir, 0, RuntimeError("Connection closed by peer"))
    exc = SimpleNamespace(failures={0: failure(1), 1: failure(-9, "SIGKILL")})
    error = launch._failure(exc, p, 2, 3.0)
    assert isinstance(error, launch.RankFailedError)
    assert str(error).startswith("rank 1 of 2 was killed by SIGKILL (exit code -9)")
    summary = json.loads((tmp_path / "job" / "trial_summary.json").read_text())
    assert summary["status"] == "failed" and "killed by SIGKILL" in summary["error"] and summary["world_size"] == 2


def test_a_user_error_in_a_rank_keeps_its_class_and_message(tmp_path: Path) -> None:
    p = payload(tmp_path)
    launch._record_error(p.error_dir, 1, RuntimeError("Connection reset by peer"))
    launch._record_error(p.error_dir, 0, DataError("train.dataset: no such file x.nii.gz"))
    launch._record_error(p.error_dir, 1, oom.describe(real_oom()))  # rank 1's own record replaces its first
    error = launch._failure(SimpleNamespace(failures={0: failure(1), 1: failure(1)}), p, 2, 3.0)
    assert type(error) in (DataError, oom.OutOfMemoryError)
    records = launch._error_records(p.error_dir)
    assert {r["type"] for r in records} == {"DataError", "OutOfMemoryError"}


def test_the_agents_signal_handlers_are_put_back() -> None:
    import signal

    before = signal.getsignal(signal.SIGINT)
    with launch._restored_signals():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    assert signal.getsignal(signal.SIGINT) is before


def test_a_converted_trees_multi_gpu_key_decides(compose_cfg: Any, caplog: pytest.LogCaptureFixture) -> None:
    from clara_hydra.runtime import device
    from clara_hydra.runtime.distributed import processes_for

    if torch.cuda.is_available():
        pytest.skip("the CPU rules")
    # The converter emits Clara's "multi_gpu" as the tree's first-level `multi_gpu` (conf/config.yaml).
    assert processes_for(compose_cfg()) == 1
    assert processes_for(compose_cfg("multi_gpu=true", "++nproc_per_node=2")) == 2
    with pytest.raises(BuildError, match="nproc_per_node=2 but multi_gpu=false"):
        processes_for(compose_cfg("++nproc_per_node=2"))
    cfg = compose_cfg("multi_gpu=true")
    assert processes_for(cfg) == 1
    device._warned_multi_gpu = False
    assert not device.warn_multi_gpu(compose_cfg("multi_gpu=true", "++nproc_per_node=2"))
    assert device.warn_multi_gpu(cfg) and "no GPU is visible" in caplog.text


def test_a_dataloader_over_an_unshared_dataset_gets_a_distributed_sampler() -> None:
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    from clara_hydra.runtime.distributed import DistributedPolicy

    policy = DistributedPolicy(RankContext(1, 2, 1, "gloo"), None)
    whole = list(range(10))
    kwargs = policy.adjust("train.dataloader", DataLoader, {"dataset": whole, "shuffle": True, "batch_size": 2})
    sampler = kwargs["sampler"]
    assert isinstance(sampler, DistributedSampler) and "shuffle" not in kwargs
    assert (sampler.rank, sampler.num_replicas, sampler.shuffle) == (1, 2, True)
    shared = list(range(5))
    policy.sharded.add(id(shared))
    assert "sampler" not in policy.adjust("train.dataloader", DataLoader, {"dataset": shared, "shuffle": True})


@pytest.fixture()
def one_rank_group() -> Any:
    import socket

    import torch.distributed as dist

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_in_a_rank_the_trainer_gets_ddp_and_pruning_is_broadcast(one_rank_group: Any) -> None:
    optuna = pytest.importorskip("optuna")
    from monai.engines import SupervisedTrainer
    from torch.nn.parallel import DistributedDataParallel

    from clara_hydra.runtime.distributed import DistributedPolicy, current, gather_devices, pruning_reporter

    ctx = current()
    assert ctx == RankContext(0, 1, 0, "gloo") and gather_devices(ctx) == ["cpu"]
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3), torch.nn.BatchNorm3d(2))
    kwargs = DistributedPolicy(ctx, None).adjust("train.trainer", SupervisedTrainer, {"network": net})
    assert isinstance(kwargs["network"], DistributedDataParallel) and kwargs["network"].module is net

    calls: list[tuple[float, int]] = []

    def report(value: float, step: int) -> None:
        calls.append((value, step))
        if step == 2:
            raise optuna.TrialPruned("pruned at step 2")

    distributed_report = pruning_reporter(report, ctx)
    distributed_report(0.5, 1)
    with pytest.raises(optuna.TrialPruned):
        distributed_report(0.4, 2)
    assert calls == [(0.5, 1), (0.4, 2)]


def test_ctrl_c_seen_first_by_the_ranks_is_still_ctrl_c(tmp_path: Path) -> None:
    p = payload(tmp_path)
    launch._record_error(p.error_dir, 1, KeyboardInterrupt())
    error = launch._failure(SimpleNamespace(failures={1: failure(1)}), p, 2, 3.0)
    assert isinstance(error, KeyboardInterrupt)
