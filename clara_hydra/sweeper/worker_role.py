"""Who a worker process is: its role from the coordinator (index, count, GPUs) and its id.

``hydra.sweeper.gpus`` (Clara's ``"0:1:2,3"``) is parsed here too: one GPU list per worker. The processes
themselves (starting, waiting, the coordinator) are :mod:`clara_hydra.sweeper.workers`.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from typing import Any

from clara_hydra.errors import SweepError, shorten, with_fix

ENV_WORKER = "CLARA_HYDRA_WORKER"


def parse_gpus(value: Any) -> list[list[str]] | None:
    """Clara's worker GPU string (``"0:1:2,3"``) or a list of GPU lists -> one GPU-id list per worker.

    Args:
        value: ``hydra.sweeper.gpus``: ``None``, a string, an int, or a list of strings/ints/lists.

    Returns:
        ``[["0"], ["1"], ["2", "3"]]``, or ``None`` when unset.

    Raises:
        SweepError: an empty list, a non-integer id, or a GPU named twice in one worker's list. A GPU
            may be given to several workers (``"0:0"``: two workers share GPU 0, as in Clara).
    """
    if value is None:
        return None
    if hasattr(value, "_content"):  # an OmegaConf node
        from omegaconf import OmegaConf

        value = OmegaConf.to_container(value)
    if isinstance(value, bool):
        raise _bad_gpus(value, "expected GPU ids")
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str):
        groups: list[Any] = value.strip().split(":") if value.strip() else []
    elif isinstance(value, (list, tuple)):
        groups = list(value)
    else:
        raise _bad_gpus(value, "expected a string such as '0:1:2,3' or a list of GPU lists")
    if not groups:
        raise _bad_gpus(value, "no GPU list")
    result: list[list[str]] = []
    for group in groups:
        ids = group if isinstance(group, (list, tuple)) else str(group).split(",")
        cleaned = [str(i).strip() for i in ids]
        if not cleaned or any(not i.isdigit() for i in cleaned):
            raise _bad_gpus(value, f"each worker's list must be GPU numbers separated by ',', got {group!r}")
        if len(cleaned) != len(set(cleaned)):
            raise _bad_gpus(value, f"a worker's list names a GPU twice, got {group!r}")
        result.append(cleaned)
    return result


def _bad_gpus(value: Any, why: str) -> SweepError:
    return SweepError(
        with_fix(
            f"hydra.sweeper.gpus: {why} (got {shorten(value)})",
            "one ':'-separated list per worker, GPU ids within a list separated by ',': gpus='0:1:2,3'",
        )
    )


@dataclass(frozen=True)
class WorkerRole:
    """What ``CLARA_HYDRA_WORKER`` tells a worker process: its index, the number of workers, its GPUs."""

    index: int
    count: int
    gpus: list[str] | None = None
    # Whether the workers share this machine's CPU (local processes, joblib, submitit_local), not one
    # cluster allocation each (submitit_slurm): only then are the CPU threads shared out.
    local: bool = True

    def to_env(self) -> str:
        return json.dumps({"index": self.index, "count": self.count, "gpus": self.gpus, "local": self.local})

    @classmethod
    def from_env(cls) -> WorkerRole | None:
        """The role set by a coordinator, or ``None`` for a process started by hand."""
        text = os.environ.get(ENV_WORKER)
        if not text:
            return None
        try:
            data = json.loads(text)
            return cls(int(data["index"]), int(data["count"]), data.get("gpus"), bool(data.get("local", True)))
        except (ValueError, KeyError, TypeError) as exc:
            raise SweepError(f"{ENV_WORKER}={shorten(text)} is not a worker role: {exc}") from exc


def worker_id(role: WorkerRole | None) -> str:
    """``w1@host`` for a worker a coordinator started, ``p<pid>@host`` for one started by hand."""
    host = socket.gethostname()
    return f"w{role.index}@{host}" if role is not None else f"p{os.getpid()}@{host}"
