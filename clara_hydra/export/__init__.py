"""Take a sweep's result away: a trial as a MONAI bundle (:func:`export_bundle`), as a Clara 4.1 training config
(:func:`export_clara`) or as the checkpoint of a converted Clara validation config (:func:`export_validation`),
chosen from a sweep folder or an Optuna storage (:func:`select_trial`).

``clara-hydra export SWEEP_DIR|STORAGE [--study NAME] [--trial N] --to bundle OUT/ | clara OUT.json | validation CONF/``

Names are imported on first use, so that ``clara-hydra --help`` and ``convert`` do not pay for torch/MONAI.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "BundleExport": "clara_hydra.export.bundle",
    "export_bundle": "clara_hydra.export.bundle",
    "ClaraExport": "clara_hydra.export.clara_json",
    "export_clara": "clara_hydra.export.clara_json",
    "ValidationExport": "clara_hydra.export.validation",
    "export_validation": "clara_hydra.export.validation",
    "SelectedTrial": "clara_hydra.export.select",
    "select_trial": "clara_hydra.export.select",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
