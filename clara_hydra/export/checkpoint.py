"""The trained network of a trial: which checkpoint file, and its weights.

A trial's ``CheckpointSaver`` handlers write into ``<job dir>/models/``: ``*key_metric=*.pt`` (the weights of
the best validation, the value the trial reported) and ``*final*.pt`` (the last iteration). The export takes
the key-metric checkpoint, as Clara's ``model.pt`` was the best one, and falls back to the final one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from clara_hydra.errors import ExportError, with_fix

_KEY_METRIC = re.compile(r"key_metric=(-?[0-9.]+(?:e-?\d+)?)\.pt$")
MODEL_KEY = "model"


def find_checkpoint(job_dir: Path) -> Path:
    """The checkpoint to export from a job folder: the best key-metric one, else the final one, else the newest.

    Raises:
        ExportError: the folder holds no ``*.pt`` file (e.g. deleted by ``keep_best``).
    """
    files = sorted((job_dir / "models").glob("*.pt")) if (job_dir / "models").is_dir() else []
    files += [f for f in sorted(job_dir.glob("*.pt")) if f not in files]
    if not files:
        raise ExportError(
            with_fix(
                f"{job_dir}: the trial's folder holds no checkpoint (*.pt in models/)",
                "a sweep's keep_best deletes the checkpoints of trials outside the best N: export one of those, "
                "or rerun this trial (best_config.yaml / its overrides)",
            )
        )
    keyed = [(f, _metric(f)) for f in files if _KEY_METRIC.search(f.name)]
    if keyed:
        return max(keyed, key=lambda fm: (fm[1], fm[0].stat().st_mtime))[0]
    final = [f for f in files if "final" in f.name]
    return max(final or files, key=lambda f: f.stat().st_mtime)


def load_weights(path: Path) -> dict[str, Any]:
    """The network's ``state_dict`` in a checkpoint (its ``model`` entry, or the file itself when it is one).

    Loaded with ``weights_only=True``: a checkpoint is data, never code to unpickle.

    Raises:
        ExportError: the file is not a checkpoint of tensors, or has no ``model`` entry.
    """
    import torch

    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors have no common base class
        raise ExportError(f"{path}: not a readable checkpoint: {type(exc).__name__}: {exc}") from exc
    if isinstance(content, dict) and isinstance(content.get(MODEL_KEY), dict):
        weights = content[MODEL_KEY]
    elif isinstance(content, dict) and content and all(isinstance(v, torch.Tensor) for v in content.values()):
        weights = content
    else:
        found = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise ExportError(
            with_fix(
                f"{path}: no network weights ({MODEL_KEY!r} entry) in the checkpoint, found {found}",
                "the trial's CheckpointSaver must save the network as 'model' (save_dict: {model: ...})",
            )
        )
    return dict(weights)


def _metric(path: Path) -> float:
    match = _KEY_METRIC.search(path.name)
    try:
        return float(match.group(1)) if match else float("-inf")
    except ValueError:
        return float("-inf")
