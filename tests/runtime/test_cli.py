"""`python train.py` as a user runs it: user errors are one compact block with exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wrong_datalist_path_exits_2_without_traceback(conf_dir: Path, tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            "-cd",
            str(conf_dir),
            "epochs=1",
            "DATA_ROOT=.",
            "DATASET_JSON=missing.json",
            "INPUT_CHANNELS=1",
            "OUTPUT_CHANNELS=2",
            "TRAIN_DATALIST_KEY=training",
            "hydra.run.dir=job",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CLARA_HYDRA_FULL_ERROR": "", "HYDRA_FULL_ERROR": ""},
    )
    assert run.returncode == 2, run.stderr
    assert "train.dataset.data" in run.stderr and "data_list_file_path='missing.json'" in run.stderr
    assert "Traceback" not in run.stderr
