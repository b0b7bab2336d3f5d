"""MONAI imported by an untracked run loads no MLflow (each case in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # three fresh interpreters importing MONAI

CHECK = """
import sys
from omegaconf import OmegaConf
from clara_hydra.tracking.untracked import import_monai
import_monai(OmegaConf.create({cfg}))
import monai.handlers
print("mlflow" in sys.modules, isinstance(sys.modules.get("monai"), type(sys)))
import mlflow  # still importable afterwards
print(mlflow.__name__)
"""


def python(code: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.split()


@pytest.mark.parametrize(
    ("cfg", "loaded"),
    [
        ({"epochs": 1}, "False"),  # not tracked: no MLflow
        # Tracked: MONAI loads MLflow by itself, the reason for clara_hydra.tracking.untracked (when this
        # case fails, MONAI stopped importing MLflow eagerly and that module can go).
        ({"tracking": {"backend": "mlflow"}}, "True"),
        ({"handlers": [{"_target_": "monai.handlers.MLFlowHandler"}]}, "True"),  # MONAI's own handler needs it
    ],
)
def test_an_untracked_config_imports_monai_without_mlflow(cfg: dict[str, object], loaded: str) -> None:
    assert python(CHECK.format(cfg=repr(cfg))) == [loaded, "True", "mlflow"]
