"""One real, tiny sweep shared by the export tests: ``python train.py -m experiment=quickstart`` with 2 trials of
1 epoch on a small synthetic data set, run once per session in a temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from clara_hydra.runtime.demo import make_demo_data

REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO / "train.py"
EXAMPLES = REPO / "tests" / "data" / "clara_examples"
VALIDATION_EXAMPLE = EXAMPLES / "11_NVIDIA_clara-train-examples_v41_config_validation.json"


@dataclass(frozen=True)
class Sweep:
    """The finished sweep: its folder, the folder it was started in, the data set."""

    dir: Path
    cwd: Path
    data: Path


def quiet_env() -> dict[str, str]:
    """The environment for a subprocess: one thread (2 shared cores), no trial identity of an outer sweep."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARA_HYDRA_OPTUNA")}
    return {**env, "OMP_NUM_THREADS": "1", "CLARA_HYDRA_THREADS": "1"}


def run(cmd: Sequence[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """Run a command, failing the test with its output tail when it exits non-zero."""
    proc = subprocess.run(list(cmd), cwd=cwd, env=quiet_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


@pytest.fixture(scope="session")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    """2 trials (the baseline and one sampled), 1 epoch each, on 2 training and 1 validation volume (~6 s)."""
    root = tmp_path_factory.mktemp("export_sweep")
    data = make_demo_data(root / "demo", n_train=2, n_val=1, seed=3)
    sweep_dir = root / "sweep"
    run(
        [
            sys.executable,
            str(TRAIN),
            "-m",
            "experiment=quickstart",
            "epochs=1",
            "hydra.sweeper.n_trials=2",
            f"hydra.sweep.dir={sweep_dir}",
            f"DATA_ROOT={data}",
        ],
        cwd=root,
    )
    return Sweep(sweep_dir, root, data)
