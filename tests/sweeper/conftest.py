"""Helpers for the sweeper tests: run the toy Hydra app as a real multirun in a subprocess."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

TOY_APP = Path(__file__).parent / "apps" / "toy" / "app.py"


@dataclass
class Sweep:
    """A finished toy sweep: its process result and its folders."""

    proc: subprocess.CompletedProcess[str]
    sweep_dir: Path
    log_file: Path

    @property
    def output(self) -> str:
        return self.proc.stdout + self.proc.stderr

    def trials(self) -> list[dict[str, str]]:
        with open(self.sweep_dir / "trials.csv", newline="") as f:
            return list(csv.DictReader(f))

    def results(self) -> dict[str, Any]:
        return yaml.safe_load((self.sweep_dir / "optimization_results.yaml").read_text())

    def trainings(self) -> list[dict[str, Any]]:
        """One record per time the toy task actually ran (TOY_LOG)."""
        if not self.log_file.exists():
            return []
        return [json.loads(line) for line in self.log_file.read_text().splitlines()]


@pytest.fixture
def run_toy(tmp_path: Path) -> Any:
    """Run ``app.py -m <args>`` in ``tmp_path`` with the sweep folder ``tmp_path/sweep``.

    Keyword args: ``env`` (extra environment variables), ``check`` (assert exit code 0),
    ``sweep_dir`` (None: leave Hydra's default timestamped folder).
    """

    def run(
        *args: str, env: dict[str, str] | None = None, check: bool = True, sweep_dir: str | None = "sweep"
    ) -> Sweep:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("TOY_", "CLARA_HYDRA_OPTUNA"))}
        full_env = {**base, "TOY_LOG": str(tmp_path / "trainings.jsonl"), **(env or {})}
        cmd = [sys.executable, str(TOY_APP), "-m", *args]
        if sweep_dir is not None:
            cmd.append(f"hydra.sweep.dir={tmp_path / sweep_dir}")
        proc = subprocess.run(cmd, cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=120)
        if check:
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
        return Sweep(proc, tmp_path / (sweep_dir or "sweep"), tmp_path / "trainings.jsonl")

    return run
