"""``-cd``/``--config-dir``: Hydra's extra search path, or the primary config when the folder holds one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from clara_hydra.runtime.argv import config_dir_as_primary

REPO = Path(__file__).resolve().parents[2]


def test_a_folder_with_a_primary_config_becomes_the_config_path(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("a: 1\n")
    (tmp_path / "other.yaml").write_text("a: 2\n")
    absolute = f"--config-path={tmp_path}"
    assert config_dir_as_primary(["train.py", "-cd", str(tmp_path), "a=1"]) == ["train.py", absolute, "a=1"]
    assert config_dir_as_primary(["train.py", f"--config-dir={tmp_path}"]) == ["train.py", absolute]
    assert config_dir_as_primary(["train.py", "-cd", str(tmp_path), "-cn", "other"]) == [
        "train.py",
        absolute,
        "-cn",
        "other",
    ]


def test_a_folder_without_one_is_left_to_hydra(tmp_path: Path) -> None:
    (tmp_path / "experiment").mkdir()
    args = ["train.py", "-cd", str(tmp_path), "experiment=mine"]
    assert config_dir_as_primary(args) == args
    assert config_dir_as_primary(["train.py", f"--config-dir={tmp_path}"]) == ["train.py", f"--config-dir={tmp_path}"]
    # -cn names a file the folder lacks: Hydra's meaning too
    (tmp_path / "config.yaml").write_text("a: 1\n")
    args = ["train.py", "-cd", str(tmp_path), "-cn", "absent"]
    assert config_dir_as_primary(args) == args


def test_an_explicit_config_path_wins() -> None:
    assert config_dir_as_primary(["train.py", "-cp", "x", "-cd", "y"]) == ["train.py", "-cp", "x", "-cd", "y"]


def test_cd_with_only_an_experiment_folder_adds_a_search_path(tmp_path: Path) -> None:
    # What Hydra users expect: the repo's conf/ stays primary and my_exps/experiment/ adds an option.
    exp = tmp_path / "my_exps" / "experiment"
    exp.mkdir(parents=True)
    (exp / "tiny.yaml").write_text("# @package _global_\nepochs: 3\nlearning_rate: 0.01\n")
    run = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "-cd", "my_exps", "experiment=tiny", "--cfg", "job"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "epochs: 3\n" in run.stdout and "learning_rate: 0.01\n" in run.stdout
    assert "num_interval_per_valid:" in run.stdout  # the rest is the repo's converted tree
