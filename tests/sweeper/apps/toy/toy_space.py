"""A custom search space function for the toy app (``hydra.sweeper.custom_search_space``)."""

from __future__ import annotations

from typing import Any


def extend(cfg: Any, trial: Any) -> None:
    """Add a conditional dimension: ``n`` searched only with the adam optimizer."""
    if trial.params.get("opt") == "adam":
        trial.suggest_int("n", 1, 3)
