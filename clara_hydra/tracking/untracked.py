"""MONAI without MLflow in a run that is not tracked.

MONAI's ``monai.handlers.mlflow_handler`` calls ``optional_import("mlflow")`` when ``monai`` is imported, so
wherever mlflow-skinny is installed every process that imports MONAI loads MLflow (about 1 s, more on a busy
machine), tracked or not. Without a ``tracking`` node, and with no MONAI ``MLFlowHandler`` in the config, the
runtime imports MONAI while ``import mlflow`` fails, as where MLflow is not installed: MONAI keeps its usual
placeholder for that handler's module global, nothing of MLflow is loaded, and a later ``import mlflow``
works as usual. ``tests/tracking/test_untracked.py`` pins MONAI's eager import: when it fails, MONAI stopped
importing MLflow by itself and this module can go.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

MONAI_HANDLER = "MLFlowHandler"  # a config that builds MONAI's own MLflow handler needs MLflow imported


def import_monai(cfg: DictConfig | Mapping[str, Any]) -> None:
    """Import MONAI, hiding MLflow from it when ``cfg`` is not tracked (see the module docstring)."""
    if "monai" in sys.modules or "mlflow" in sys.modules or cfg.get("tracking") is not None:
        return
    text = OmegaConf.to_yaml(cfg) if isinstance(cfg, DictConfig) else str(cfg)
    if MONAI_HANDLER in text:
        return
    sys.modules["mlflow"] = None  # type: ignore[assignment]  # `import mlflow` raises ImportError meanwhile
    try:
        import monai  # noqa: F401
    finally:
        if "mlflow" in sys.modules and sys.modules["mlflow"] is None:
            del sys.modules["mlflow"]
