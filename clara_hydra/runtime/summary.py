"""``trial_summary.json``: what one run achieved and where its time went, written into the job folder."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clara_hydra.trial_context import given_devices

SUMMARY_FILE = "trial_summary.json"


def read_summary(job_dir: str | Path | None) -> dict[str, Any]:
    """A job folder's ``trial_summary.json`` as a mapping; empty when absent or unreadable."""
    if not job_dir:
        return {}
    try:
        data = json.loads((Path(job_dir) / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def objective_name(job_dir: str | Path | None) -> str | None:
    """The name of the objective a job's ``trial_summary.json`` records (``val_mean_dice``), if any."""
    objective = read_summary(job_dir).get("objective")
    name = objective.get("name") if isinstance(objective, dict) else None
    return str(name) if name else None


@dataclass
class TrialSummary:
    """Objective history, best value and timings of one run.

    Args:
        job_dir: folder that receives ``trial_summary.json``.
    """

    job_dir: Path
    name: str = ""
    direction: str = "maximize"  # Clara's key metrics (Dice, accuracy) are maximised
    history: list[tuple[int, float]] = field(default_factory=list)
    best_value: float | None = None
    best_epoch: int | None = None
    device: str = "cpu"
    # What this process was given (CUDA_VISIBLE_DEVICES, the sweep worker and its GPUs), read at start.
    devices: dict[str, Any] = field(default_factory=given_devices)
    amp: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    # A distributed trial (multi_gpu): how many processes trained it and the device of each, in rank order.
    world_size: int = 1
    rank_devices: list[str] = field(default_factory=list)

    @contextmanager
    def timed(self, key: str) -> Iterator[None]:
        """Add the wall time of the ``with`` block to ``seconds[key]`` (also when it raises)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - t0

    def add(self, epoch: int, value: float) -> bool:
        """Record the key metric after a validation; return whether it is a new best (NaN never is)."""
        self.history.append((epoch, value))
        if math.isnan(value) or (self.best_value is not None and value <= self.best_value):
            return False
        self.best_value, self.best_epoch = value, epoch
        return True

    @property
    def last_epoch(self) -> int | None:
        return self.history[-1][0] if self.history else None

    @property
    def last_value(self) -> float:
        return self.history[-1][1] if self.history else math.nan

    def as_dict(self, status: str, error: str | None = None) -> dict[str, Any]:
        """The JSON content; ``status`` is ``completed``, ``pruned`` or ``failed``."""
        return {
            "status": status,
            "objective": {"name": self.name, "direction": self.direction},
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "epochs_validated": len(self.history),
            "history": [{"epoch": e, "value": v} for e, v in self.history],
            "device": self.device,
            "devices": self.devices,
            "amp": self.amp,
            "world_size": self.world_size,
            "rank_devices": self.rank_devices or [self.device],
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "error": error,
        }

    def write(self, status: str, error: str | None = None) -> Path:
        """Write ``trial_summary.json`` into the job folder and return its path."""
        self.job_dir.mkdir(parents=True, exist_ok=True)
        path = self.job_dir / SUMMARY_FILE
        # NaN is not JSON: write null instead so any JSON reader can open the file.
        content = json.dumps(self.as_dict(status, error), indent=2, default=str).replace("NaN", "null")
        path.write_text(content + "\n")
        return path
