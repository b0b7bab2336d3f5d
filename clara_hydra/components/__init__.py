"""Importable implementations of Clara's own components that MONAI and torch do not have.

Only what has no MONAI/torch equivalent with the same maths lives here; the converter maps every other Clara-only
class to its equivalent (see :mod:`clara_hydra.convert.legacy.tf`). Each class cites the NVIDIA documentation page it
follows; the tests check its numbers against that page's formula.
"""

from clara_hydra.components.handlers import SegmentationSaver, TransformInverter
from clara_hydra.components.losses import WeightedCrossEntropyLoss
from clara_hydra.components.lr_schedules import ReduceCosineLR

__all__ = ["ReduceCosineLR", "SegmentationSaver", "TransformInverter", "WeightedCrossEntropyLoss"]
