"""Take a sweep's result away: a trial as a MONAI bundle (:func:`export_bundle`) or as a Clara 4.1 training
config (:func:`export_clara`), chosen from a sweep folder or an Optuna storage (:func:`select_trial`).

``clara-hydra export SWEEP_DIR|STORAGE [--study NAME] [--trial N] --to bundle OUT/ | --to clara OUT.json``.
"""

from clara_hydra.export.bundle import BundleExport, export_bundle
from clara_hydra.export.select import SelectedTrial, select_trial

__all__ = ["BundleExport", "SelectedTrial", "export_bundle", "select_trial"]
