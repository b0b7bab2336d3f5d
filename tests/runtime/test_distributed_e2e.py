"""One trial on 2 processes (gloo on the CPU), as a user runs it: ``python train.py multi_gpu=true ++nproc_per_node=2``.

Each test starts real processes through torch's elastic agent and reads what the ranks leave behind with
``CLARA_HYDRA_DDP_DEBUG`` (pid, files read, validation values seen). The quickstart is kept small: the
machine that runs the suite may have 2 cores.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from clara_hydra.runtime.demo import make_demo_data
from tests.runtime.conftest import REPO

pytestmark = pytest.mark.slow
ENV = {**os.environ, "CLARA_HYDRA_FULL_ERROR": "", "HYDRA_FULL_ERROR": "", "OMP_NUM_THREADS": "1"}
TWO = ["multi_gpu=true", "++nproc_per_node=2"]
BASELINE_DICE = 0.069  # all-foreground prediction on the demo data (conf/experiment/quickstart.yaml)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quickstart's demo set (8 training, 4 validation volumes of 48^3)."""
    return make_demo_data(tmp_path_factory.mktemp("ddp") / "demo")


def data_args(demo: Path) -> list[str]:
    return ["experiment=quickstart", f"DATA_ROOT={demo}"]


def train(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: int = 400
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**ENV, **(env or {})},
    )


def rank_records(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("rank*.json"))]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def trials(sweep: Path) -> list[dict[str, str]]:
    with open(sweep / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_two_ranks_learn_like_one_and_rank_0_alone_writes(demo: Path, tmp_path: Path) -> None:
    # 2 ranks take half the optimizer steps per epoch (each step sees both ranks' batches): compared at
    # equal steps, 2x the epochs. At 6 epochs the 1-process quickstart is near its plateau (~0.9).
    one = train(tmp_path, *data_args(demo), "epochs=6", "hydra.run.dir=one")
    assert one.returncode == 0, one.stderr[-3000:]
    debug = tmp_path / "debug"
    two = train(
        tmp_path, *data_args(demo), *TWO, "epochs=12", "hydra.run.dir=two", env={"CLARA_HYDRA_DDP_DEBUG": str(debug)}
    )
    assert two.returncode == 0, two.stderr[-3000:]
    s1 = json.loads((tmp_path / "one" / "trial_summary.json").read_text())
    s2 = json.loads((tmp_path / "two" / "trial_summary.json").read_text())
    assert s2["status"] == "completed" and s2["world_size"] == 2 and s2["rank_devices"] == ["cpu", "cpu"]
    assert s1["world_size"] == 1
    assert s2["best_value"] > BASELINE_DICE + 0.4, s2["history"]
    assert abs(s2["best_value"] - s1["best_value"]) <= 0.1, (s1["best_value"], s2["best_value"])

    ranks = rank_records(debug)
    assert sorted(r["rank"] for r in ranks) == [0, 1]
    by_rank = {r["rank"]: r for r in ranks}
    # both ranks saw the same validation values (MONAI's metrics gather across ranks)
    assert by_rank[0]["history"] == by_rank[1]["history"] and len(by_rank[0]["history"]) == 12
    assert [v for _, v in by_rank[0]["history"]] == [h["value"] for h in s2["history"]]
    # each rank read a different half of the training data, together all of it
    train0, train1 = (set(by_rank[r]["datasets"]["train.dataset"]) for r in (0, 1))
    assert len(train0) == len(train1) == 4 and not train0 & train1
    listed = json.loads((demo / "dataset.json").read_text())["training"]
    assert {Path(p).name for p in train0 | train1} == {Path(e["image"]).name for e in listed}
    for r in ranks:  # the datasets (and the data cache under them) hold only the rank's share
        assert r["built"]["train.dataset"] == r["datasets"]["train.dataset"]
        assert r["built"]["validate.dataset"] == r["datasets"]["validate.dataset"]

    # one set of outputs, as a 1-process run leaves, all written by rank 0
    assert [p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("trial_summary.json")] == [
        Path("trial_summary.json")
    ]
    models1, models2 = tmp_path / "one" / "models", tmp_path / "two" / "models"
    assert len(list(models2.glob("*final*.pt"))) == 1 and len(list(models2.glob("*key_metric*.pt"))) == 1
    assert len(list(models2.glob("*.pt"))) == len(list(models1.glob("*.pt")))
    events = list(models2.glob("events.out.tfevents.*"))
    assert events and len(events) == len(list(models1.glob("events.out.tfevents.*")))
    assert {e.name.split(".")[-2] for e in events} == {str(by_rank[0]["pid"])}, "TensorBoard written by rank 0 only"
    log = (tmp_path / "two" / "train.log").read_text()
    assert log.count("validation at epoch 12:") == 1, "one log line per validation (rank 0's)"
    assert not any(alive(r["pid"]) for r in ranks)


def test_a_user_error_in_the_ranks_is_one_compact_message(demo: Path, tmp_path: Path) -> None:
    run = train(tmp_path, *data_args(demo), *TWO, f"DATASET_JSON={tmp_path / 'absent.json'}", "hydra.run.dir=job")
    assert run.returncode == 2, run.stderr[-3000:]
    assert "Traceback" not in run.stderr + run.stdout
    assert "absent.json" in run.stderr and "fix:" in run.stderr
    summary = json.loads((tmp_path / "job" / "trial_summary.json").read_text())
    assert summary["status"] == "failed" and "absent.json" in summary["error"]


def sweep_args(demo: Path, sweep: Path, *more: str) -> list[str]:
    return [
        "-m",
        *data_args(demo),
        *TWO,
        f"hydra.sweep.dir={sweep}",
        f"hydra.sweeper.storage={sweep.parent / 'study.journal'}",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.fail_fast=0",
        *more,
    ]


def test_a_pruned_two_rank_trial_stops_both_ranks_and_the_sweep_goes_on(demo: Path, tmp_path: Path) -> None:
    debug = tmp_path / "debug"
    sweep = tmp_path / "sweep"
    # ThresholdPruner(lower=2): a Dice is never >= 2, so every trial is pruned at its first validation.
    args = sweep_args(demo, sweep, "epochs=4", "hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.lower=2.0")
    run = train(tmp_path, *args, env={"CLARA_HYDRA_DDP_DEBUG": str(debug)})
    assert run.returncode == 0, run.stderr[-3000:]
    rows = trials(sweep)
    assert [r["state"] for r in rows] == ["PRUNED", "PRUNED"], rows
    ranks = rank_records(debug)
    assert len(ranks) == 4 and sorted(r["rank"] for r in ranks) == [0, 0, 1, 1]
    for r in ranks:  # every rank of both trials stopped after epoch 1, together
        assert [epoch for epoch, _ in r["history"]] == [1], r
        assert not alive(r["pid"])
    for row in rows:
        summary = json.loads((Path(row["job_dir"]) / "trial_summary.json").read_text())
        assert summary["status"] == "pruned" and summary["world_size"] == 2


def test_a_rank_killed_mid_epoch_fails_its_trial_within_a_minute(demo: Path, tmp_path: Path) -> None:
    debug = tmp_path / "debug"
    sweep = tmp_path / "sweep"
    args = sweep_args(demo, sweep, "epochs=40", "hydra/sweeper/pruner=nop")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**ENV, "CLARA_HYDRA_DDP_DEBUG": str(debug)},
    )
    killed: list[tuple[int, float]] = []
    try:
        deadline = time.monotonic() + 400
        while proc.poll() is None and time.monotonic() < deadline:
            for record in rank_records(debug):
                log = Path(record["job_dir"]) / "train.log"
                mid_epoch = log.is_file() and "epoch 1/40" in log.read_text()  # training is under way
                if record["rank"] == 1 and mid_epoch and record["pid"] not in [pid for pid, _ in killed]:
                    os.kill(record["pid"], signal.SIGKILL)
                    killed.append((record["pid"], time.time()))
            time.sleep(0.2)
        output = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output[-3000:]
    assert len(killed) == 2, output[-3000:]  # rank 1 of each trial
    rows = trials(sweep)
    assert [r["state"] for r in rows] == ["FAIL", "FAIL"], rows
    assert all("rank 1 of 2 was killed by SIGKILL" in r["reason"] for r in rows), rows
    # the trial failed within a minute of the kill: the next trial's ranks were up soon after
    second_start = min(r["time"] for r in rank_records(debug) if r["job_dir"].endswith("/1"))
    assert second_start - killed[0][1] < 60
    assert not [r["pid"] for r in rank_records(debug) if alive(r["pid"])], "no rank process is left"


@pytest.mark.parametrize("sweep", [False, True], ids=["single-run", "sweep"])
def test_ctrl_c_stops_every_rank_and_exits_130(demo: Path, tmp_path: Path, sweep: bool) -> None:
    debug = tmp_path / "debug"
    if sweep:
        args = [*sweep_args(demo, tmp_path / "s", "epochs=40", "hydra/sweeper/pruner=nop"), "hydra.sweep.subdir=job"]
        args[args.index(f"hydra.sweep.dir={tmp_path / 's'}")] = f"hydra.sweep.dir={tmp_path}"
    else:
        args = [*data_args(demo), *TWO, "epochs=40", "hydra.run.dir=job"]
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**ENV, "CLARA_HYDRA_DDP_DEBUG": str(debug)},
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        deadline = time.monotonic() + 300
        log = tmp_path / "job" / "train.log"
        while proc.poll() is None and time.monotonic() < deadline:
            if len(rank_records(debug)) == 2 and log.is_file() and "epoch 1/40" in log.read_text():
                break
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: SIGINT to the whole foreground group
        pressed = time.monotonic()
        output = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, output[-3000:]
    assert time.monotonic() - pressed < 60
    assert "Traceback" not in output, output[-3000:]
    assert not [r["pid"] for r in rank_records(debug) if alive(r["pid"])], "no rank process is left"


def test_ranks_die_with_a_killed_launching_process(demo: Path, tmp_path: Path) -> None:
    # torch's spawn sets PR_SET_PDEATHSIG (SIGINT) in every rank: a sweep worker killed with kill -9 leaves no
    # rank training on (and holding a GPU) with nobody to read its result. Pinned here in case torch changes.
    debug = tmp_path / "debug"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *data_args(demo), *TWO, "epochs=40", "hydra.run.dir=job"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**ENV, "CLARA_HYDRA_DDP_DEBUG": str(debug)},
    )
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline and len(rank_records(debug)) < 2:
            time.sleep(0.2)
        assert len(rank_records(debug)) == 2
    finally:
        proc.kill()  # SIGKILL: no handler of ours runs in the launching process
        proc.wait()
    pids = [r["pid"] for r in rank_records(debug)]
    deadline = time.monotonic() + 30
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in pids if alive(p)], "a rank outlived the process that launched it"
