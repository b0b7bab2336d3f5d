"""The error contract of ``python train.py`` and its sweeps, end to end (issue 9): one row per case.

Each row runs the real command in a subprocess on the tiny demo set and checks the exit code, a fragment of
the message, that no traceback is printed, and for code-execution rows that a sentinel file never appears.

| case                                            | exit | message fragment                                   |
|-------------------------------------------------|------|----------------------------------------------------|
| ``torch.os.system`` node on the command line    | 2    | ``refusing to build _target_ 'torch.os.system'``   |
| the same node in a ``-cd`` config.yaml          | 2    | ``it is os.system``                                |
| ``monai.utils.instantiate`` running ``os.system``| 2   | ``builds other targets by name``                   |
| a crafted checkpoint's ``train_conf``           | 2    | ``refusing to build _target_ 'os.system'``         |
| ``hydra.sweeper.sampler._target_=os.abort``     | 2    | ``outside the allowed packages ['optuna']``        |
| a crafted ``item_*.pt`` in the disk cache       | 0    | ``disk cache: not using``                          |
| truncated ``.nii.gz``, single run               | 2    | ``cannot read <file> (datalist entry 1)``          |
| truncated ``.nii.gz`` read by DataLoader workers | 2   | ``cannot read <file> (datalist entry 1)``          |
| truncated ``.nii.gz``, sweep                    | 0    | trial FAIL, reason ``cannot read <file>``          |
| ``epochs=-1`` / ``epochs=abc``                  | 2    | ``epochs=... must be a whole number of epochs``    |
| ``learning_rate=1e9``, single run               | 2    | ``diverged at epoch 1``                            |
| ``learning_rate=1e9``, sweep                    | 0    | trial FAIL, reason ``diverged at epoch 1``         |
| grid sampler on a continuous space              | 2    | ``the grid sampler needs discrete dimensions``     |
| inverted ``interval`` bounds                    | 2    | ``interval needs low <= high``                     |
| unreachable PostgreSQL storage                  | 2    | ``hydra.sweeper.storage``                          |
| plain ``python train.py`` (no data here)        | 2    | ``experiment=quickstart``, a few lines             |
| plain ``python train.py`` (demo data, 96^3 ROI) | 2    | ``rand_crop_by_pos_neg_labeld ... spatial_size``   |
| Ctrl-C in a single run                          | 130  | ``interrupted (Ctrl-C)``                           |
| Ctrl-C in a sweep                               | 130  | the summary table                                  |
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.runtime.conftest import REPO, SEED_CONF, TINY

pytestmark = pytest.mark.slow
ENV = {**os.environ, "CLARA_HYDRA_FULL_ERROR": "", "HYDRA_FULL_ERROR": "", "OMP_NUM_THREADS": "1"}


def train(cwd: Path, *args: str, timeout: int = 180) -> subprocess.CompletedProcess[str]:
    """``python train.py ARGS`` in ``cwd``; asserts that no traceback was printed."""
    run = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
    )
    assert "Traceback" not in run.stderr + run.stdout, run.stderr[-3000:]
    return run


def tiny(data: Path, *more: str) -> list[str]:
    return [*TINY, f"DATA_ROOT={data}", f"DATASET_JSON={data / 'dataset.json'}", *more]


def trials(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture()
def sentinel(tmp_path: Path) -> Path:
    return tmp_path / "SENTINEL"


@pytest.fixture()
def broken_data(demo_root: Path, tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "broken"
    shutil.copytree(demo_root, data)
    image = sorted((data / "imagesTr").iterdir())[1]
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    return data, image


def test_a_target_reexported_by_torch_never_runs(demo_root: Path, tmp_path: Path, sentinel: Path) -> None:
    node = f"+train.model={{_target_:torch.os.system,command:'touch {sentinel}'}}"
    args = [a for a in tiny(demo_root) if not a.startswith("train.model.")]
    run = train(tmp_path, *args, "~train.model", node)
    assert run.returncode == 2 and "refusing to build _target_ 'torch.os.system'" in run.stderr
    assert "it is os.system" in run.stderr and not sentinel.exists()


def test_the_same_node_in_a_config_dir_never_runs(demo_root: Path, tmp_path: Path, sentinel: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(SEED_CONF, conf)
    text = (conf / "config.yaml").read_text()
    start = text.index("  model:\n    _target_: monai.networks.nets.UNet")
    end = text.index("  pre_transforms:")
    evil = f"  model:\n    _target_: torch.os.system\n    command: touch {sentinel}\n"
    (conf / "config.yaml").write_text(text[:start] + evil + text[end:])
    args = [a for a in tiny(demo_root) if not a.startswith("train.model.")]
    run = train(tmp_path, "-cd", str(conf), *args)
    assert run.returncode == 2 and "train.model: refusing to build _target_ 'torch.os.system'" in run.stderr
    assert not sentinel.exists()


def test_monai_instantiate_cannot_run_os_system(demo_root: Path, tmp_path: Path, sentinel: Path) -> None:
    node = f"+train.model={{_target_:monai.utils.instantiate,_args_:[os.system,default],command:'touch {sentinel}'}}"
    run = train(tmp_path, *[a for a in tiny(demo_root) if not a.startswith("train.model.")], "~train.model", node)
    assert run.returncode == 2 and "builds other targets by name" in run.stderr and not sentinel.exists()


def test_a_crafted_checkpoint_grants_nothing(demo_root: Path, tmp_path: Path, sentinel: Path) -> None:
    conf = {"_allow_": ["os"], "train": {"model": {"_target_": "os.system", "_args_": [f"touch {sentinel}"]}}}
    torch.save({"model": {}, "train_conf": conf}, tmp_path / "model.pt")
    node = f"+train.model={{_target_:clara_hydra.expressions.model_from_checkpoint,ckpt_path:'{tmp_path}/model.pt'}}"
    run = train(tmp_path, *[a for a in tiny(demo_root) if not a.startswith("train.model.")], "~train.model", node)
    assert run.returncode == 2 and "refusing to build _target_ 'os.system'" in run.stderr
    assert not sentinel.exists()


def test_a_sampler_target_outside_optuna_is_refused(demo_root: Path, tmp_path: Path) -> None:
    run = train(tmp_path, "-m", "experiment=quickstart", "hydra.sweeper.sampler._target_=os.abort", *tiny(demo_root))
    assert run.returncode == 2, run.stderr[-2000:]
    assert "hydra.sweeper.sampler._target_: refusing to build _target_ 'os.abort'" in run.stderr


def test_a_crafted_disk_cache_file_never_runs(demo_root: Path, tmp_path: Path, sentinel: Path) -> None:
    cache = tmp_path / "cache"
    args = tiny(demo_root, "+clara_cache.disk=true", f"+clara_cache.dir={cache}", "hydra.run.dir=job")
    assert train(tmp_path, *args).returncode == 0
    items = sorted(cache.glob("*/item_00000.pt"))
    assert items, "the first run wrote the disk cache"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {sentinel}",))

    for item in items:
        torch.save({"format": 2, "item": Payload()}, item)
    run = train(tmp_path, *args)
    assert run.returncode == 0 and "disk cache: not using" in run.stdout + run.stderr
    assert not sentinel.exists()


def test_a_truncated_image_in_a_single_run(broken_data: tuple[Path, Path], tmp_path: Path) -> None:
    data, image = broken_data
    run = train(tmp_path, *tiny(data, "train.dataset.num_workers=2"))
    assert run.returncode == 2, run.stderr[-2000:]
    assert f"cannot read {image} (datalist entry 1)" in run.stderr and "terminate called" not in run.stderr


def test_a_truncated_image_read_by_dataloader_workers(broken_data: tuple[Path, Path], tmp_path: Path) -> None:
    """A dataset that is not cached reads the file inside the trainer (here in 2 worker processes)."""
    data, image = broken_data
    plain = ["train.dataset._target_=monai.data.Dataset", "train.dataloader.num_workers=2"]
    plain += [f"~train.dataset.{k}" for k in ("cache_num", "cache_rate", "num_workers")]
    run = train(tmp_path, *tiny(data, *plain))
    assert run.returncode == 2, run.stderr[-2000:]
    assert f"train.dataset: cannot read {image} (datalist entry 1) in LoadImaged: EOFError" in run.stderr


def test_a_truncated_image_in_a_sweep_is_a_failed_trial(broken_data: tuple[Path, Path], tmp_path: Path) -> None:
    data, image = broken_data
    sweep = tmp_path / "sweep"
    args = ["hydra.sweeper.n_trials=1", "hydra.sweeper.fail_fast=0", f"hydra.sweep.dir={sweep}"]
    run = train(tmp_path, "-m", "experiment=quickstart", *args, *tiny(data, "train.dataset.num_workers=2"))
    assert run.returncode == 0, run.stderr[-2000:]
    [row] = trials(sweep)
    assert row["state"] == "FAIL" and f"cannot read {image}" in row["reason"]


@pytest.mark.parametrize("value", ["-1", "abc"])
def test_bad_epochs_name_the_key(value: str, demo_root: Path, tmp_path: Path) -> None:
    run = train(tmp_path, *tiny(demo_root, f"epochs={value}"))
    assert run.returncode == 2 and "must be a whole number of epochs >= 1" in run.stderr
    assert f"clara-hydra: epochs={value!r}" in run.stderr or f"clara-hydra: epochs={value} " in run.stderr


def test_a_diverged_training_fails(demo_root: Path, tmp_path: Path) -> None:
    run = train(tmp_path, *tiny(demo_root, "learning_rate=1e9", "epochs=3"))
    assert run.returncode == 2 and "clara-hydra: diverged at epoch " in run.stderr
    assert "the training loss is nan" in run.stderr and "fix: lower learning_rate (now 1000000000.0)" in run.stderr


def test_a_diverged_trial_is_a_failed_trial(demo_root: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = ["hydra.sweeper.n_trials=1", "hydra.sweeper.fail_fast=0", f"hydra.sweep.dir={sweep}"]
    run = train(tmp_path, "-m", "experiment=quickstart", *args, *tiny(demo_root, "learning_rate=1e9", "epochs=3"))
    assert run.returncode == 0, run.stderr[-2000:]
    [row] = trials(sweep)
    assert row["state"] == "FAIL" and row["reason"].startswith("diverged at epoch "), row


SWEEP_ERRORS = [
    ("grid on a continuous space", ["hydra/sweeper/sampler=grid"], "the grid sampler needs discrete dimensions"),
    ("inverted interval", ["learning_rate=interval(0.1,0.01)"], "interval needs low <= high"),
    ("unreachable PostgreSQL", ["hydra.sweeper.storage=postgresql://u:pw@127.0.0.1:9/db"], "hydra.sweeper.storage"),
]


@pytest.mark.parametrize(("args", "fragment"), [r[1:] for r in SWEEP_ERRORS], ids=[r[0] for r in SWEEP_ERRORS])
def test_sweep_errors_are_compact(args: list[str], fragment: str, demo_root: Path, tmp_path: Path) -> None:
    run = train(tmp_path, "-m", "experiment=quickstart", f"hydra.sweep.dir={tmp_path / 's'}", *args, *tiny(demo_root))
    assert run.returncode == 2, run.stderr[-2000:]
    assert "clara-hydra: " in run.stderr and fragment in run.stderr
    assert "(set CLARA_HYDRA_FULL_ERROR=1 for the traceback)" in run.stderr


def test_plain_train_py_without_data_says_what_to_set(tmp_path: Path) -> None:
    run = train(tmp_path)
    assert run.returncode == 2
    message = [line for line in run.stderr.splitlines() if not line.startswith("[")]
    assert len(message) <= 5, run.stderr
    assert "DATASET_JSON=" in run.stderr and "python train.py experiment=quickstart" in run.stderr


def test_plain_train_py_on_the_demo_data_names_the_crop(demo_root: Path, tmp_path: Path) -> None:
    shutil.copytree(demo_root, tmp_path / "data" / "demo")
    run = train(tmp_path, "train.dataset.num_workers=0", "train.dataloader.num_workers=0")
    assert run.returncode == 2, run.stderr[-2000:]
    assert "train.pre_transforms.rand_crop_by_pos_neg_labeld (RandCropByPosNegLabeld) failed" in run.stderr
    assert "ROI size (96, 96, 96)" in run.stderr and "experiment=quickstart" in run.stderr
    assert len(run.stderr.splitlines()) < 30


def _interrupt(cwd: Path, args: list[str], ready: str, delay: float = 0.0) -> subprocess.CompletedProcess[str]:
    """Start ``train.py ARGS``, send SIGINT once ``ready`` appears in its log, return the finished process."""
    log = cwd / "out.txt"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "train.py"), *args], cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=ENV
        )
        deadline = time.monotonic() + 120
        while ready not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(delay)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    return subprocess.CompletedProcess(proc.args, proc.returncode, text, text)


def test_ctrl_c_in_a_single_run(demo_root: Path, tmp_path: Path) -> None:
    run = _interrupt(tmp_path, tiny(demo_root, "epochs=200"), "Engine run resuming")
    assert run.returncode == 130 and "interrupted (Ctrl-C)" in run.stdout


def test_ctrl_c_in_a_sweep(demo_root: Path, tmp_path: Path) -> None:
    sweep = ["-m", "experiment=quickstart", f"hydra.sweep.dir={tmp_path / 's'}", "hydra.sweeper.pruner=null"]
    # A job's log goes to its folder, not stdout: interrupt a while after the sweep's header (the first,
    # long job starts right after it).
    run = _interrupt(tmp_path, [*sweep, *tiny(demo_root, "epochs=500")], "Sampler ", delay=3.0)
    assert run.returncode == 130 and "Optuna study" in run.stdout


HYDRA_ERRORS = [
    ("unknown key", ["epochz=3"], "Could not override 'epochz'"),
    ("unknown group option", ["loss=dice_lossx"], "Could not find 'loss/dice_lossx'"),
    ("unparsable override", ["learning_rate=[1"], "no viable alternative at input '[1'"),
]


@pytest.mark.parametrize(("args", "fragment"), [r[1:] for r in HYDRA_ERRORS], ids=[r[0] for r in HYDRA_ERRORS])
def test_hydras_own_user_errors_exit_2(args: list[str], fragment: str, tmp_path: Path) -> None:
    # Hydra prints these compactly itself; the contract's part is the exit code (Hydra's is 1).
    run = train(tmp_path, "experiment=quickstart", *args)
    assert run.returncode == 2, run.stderr[-2000:]
    assert fragment in run.stderr
