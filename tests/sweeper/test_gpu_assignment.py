"""GPU assignment of sweep workers (Clara's ``workers=0:1:2,3`` form), tested without a GPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from clara_hydra.errors import SweepError
from clara_hydra.runtime.device import pin_devices, visible_devices_env
from clara_hydra.runtime.summary import TrialSummary
from clara_hydra.sweeper.config import ClaraOptunaSweeperConf
from clara_hydra.sweeper.settings import Settings
from clara_hydra.sweeper.worker_role import ENV_WORKER, WorkerRole, parse_gpus
from clara_hydra.sweeper.workers import worker_env
from clara_hydra.trial_context import ENV_TRIAL, identity_env


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0:1:2,3", [["0"], ["1"], ["2", "3"]]),  # Clara's form: one worker per ':'-separated list
        ("0", [["0"]]),
        (3, [["3"]]),
        (" 0 : 1 ", [["0"], ["1"]]),
        ([[0, 1], [2]], [["0", "1"], ["2"]]),
        (["0,1", "2"], [["0", "1"], ["2"]]),
        (None, None),
        ("0:0", [["0"], ["0"]]),  # Clara's WORKERS="0:0": two workers share GPU 0
        ("0:0:1:1", [["0"], ["0"], ["1"], ["1"]]),
        ("0,1:1,2", [["0", "1"], ["1", "2"]]),
    ],
)
def test_parse_gpus(value: object, expected: list[list[str]] | None) -> None:
    assert parse_gpus(value) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("0::1", "GPU numbers separated by ','"),
        ("0:a", "GPU numbers"),
        ("0,0:1", "a worker's list names a GPU twice"),
        ("", "no GPU list"),
        (True, "expected GPU ids"),
        (1.5, "expected a string"),
    ],
)
def test_bad_gpu_strings_are_clear_errors(value: object, fragment: str) -> None:
    with pytest.raises(SweepError, match=r"hydra\.sweeper\.gpus") as info:
        parse_gpus(value)
    assert fragment in str(info.value) and "gpus='0:1:2,3'" in str(info.value)


@pytest.mark.parametrize(
    ("gpus", "multi_gpu", "processes"),
    [
        ("0,1:2,3", False, [2, 2]),  # a worker with two GPUs trains each trial as a 2-process DDP job
        ("0:1:2,3", False, [1, 1, 2]),
        ("0:0", False, [1, 1]),  # two workers, one trial each at a time, on GPU 0
        ("0:0:1:1", True, [1, 1, 1, 1]),
        ("0,1,2,3", True, [4]),
    ],
)
def test_processes_per_trial_from_clara_worker_strings(gpus: str, multi_gpu: bool, processes: list[int]) -> None:
    from clara_hydra.runtime.distributed import process_count

    workers = parse_gpus(gpus)
    assert workers is not None
    # In a worker, CUDA_VISIBLE_DEVICES holds its GPUs: torch sees exactly len(its list) devices.
    assert [process_count(multi_gpu, None, visible_gpus=len(g), worker_gpus=g) for g in workers] == processes
    assert [
        worker_env(WorkerRole(i + 1, len(workers), g), base={})["CUDA_VISIBLE_DEVICES"] for i, g in enumerate(workers)
    ] == [",".join(g) for g in workers]


def settings(**keys: object) -> Settings:
    node = OmegaConf.structured(ClaraOptunaSweeperConf)
    node.sampler, node.pruner = {"_target_": "optuna.samplers.TPESampler"}, None
    for k, v in keys.items():
        node[k] = v
    return Settings.from_node(node)


def test_workers_default_to_one_per_gpu_list_and_must_match_it() -> None:
    assert settings(gpus="0:1:2,3").workers == 3
    assert settings(gpus="0:0:0:0:0:0:0:0").workers == 8  # Clara's AutoML default: 8 workers on GPU 0
    assert settings().workers == 1 and settings(workers=4).workers == 4
    with pytest.raises(SweepError, match=r"workers=2 but hydra\.sweeper\.gpus gives 3"):
        settings(gpus="0:1:2", workers=2)


def test_heartbeat_settings() -> None:
    s = settings(heartbeat_interval=5)
    assert (s.heartbeat_interval, s.grace_period) == (5, 10)  # grace: twice the interval, Optuna's default
    with pytest.raises(SweepError, match="grace_period=3 must exceed heartbeat_interval=5"):
        settings(heartbeat_interval=5, grace_period=3)


def test_worker_environment_pins_gpus_before_start_and_shares_cpu_threads() -> None:
    env = worker_env(WorkerRole(3, 3, ["2", "3"]), base={})
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3" and "CLARA_HYDRA_THREADS" not in env
    assert WorkerRole(**json.loads(env[ENV_WORKER])) == WorkerRole(3, 3, ["2", "3"])
    cpu = worker_env(WorkerRole(1, 2), base={})
    assert "CUDA_VISIBLE_DEVICES" not in cpu and int(cpu["CLARA_HYDRA_THREADS"]) >= 1
    assert worker_env(WorkerRole(1, 2), base={"CLARA_HYDRA_THREADS": "7"})["CLARA_HYDRA_THREADS"] == "7"
    assert visible_devices_env(None) == {}


def test_pin_devices_sets_the_variable_when_cuda_is_not_initialised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert pin_devices(["1"]) and __import__("os").environ["CUDA_VISIBLE_DEVICES"] == "1"


def test_trial_summary_records_the_devices_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    env = identity_env("journal:///x", "s", 1, 0, worker="w3@host", workers=3, devices=["2", "3"])
    monkeypatch.setenv(ENV_TRIAL, env[ENV_TRIAL])
    summary = TrialSummary(tmp_path)
    data = json.loads(summary.write("completed").read_text())
    assert data["devices"] == {"cuda_visible_devices": "2,3", "worker": "w3@host", "gpus": ["2", "3"]}


def test_cluster_workers_keep_their_own_cpu_allocation() -> None:
    from clara_hydra.sweeper.workers import is_local_launcher

    class SlurmLauncher: ...

    class JoblibLauncher: ...

    assert not is_local_launcher(SlurmLauncher()) and is_local_launcher(JoblibLauncher())
    env = worker_env(WorkerRole(1, 8, local=False), base={})
    assert "CLARA_HYDRA_THREADS" not in env  # a SLURM job's cores are its own, not an eighth of them
    assert WorkerRole(**json.loads(env[ENV_WORKER])).local is False
