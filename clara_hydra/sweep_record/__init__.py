"""A sweep's record: every study and trial attribute name, a typed trial record, and :func:`open_sweep`.

What a sweep leaves in its Optuna study (beside Optuna's own parameters, values and states) is named here and
nowhere else: trial user attributes (:class:`TrialAttr`), study user attributes (:class:`StudyAttr`) and the
system attributes only the sweeper reads (:class:`SystemAttr`). The sweeper writes them; ``clara-hydra report``,
``clara-hydra export``, warm starts and the MLflow tracker read them, through :func:`trial_record` where a whole
trial is read. ``tests/test_sweep_record.py`` greps the package for the names as string literals.

This package imports no Optuna at import time (``clara-hydra --help`` stays light); :func:`open_sweep` imports it
when called.

Example:
    >>> sweep = open_sweep("multirun/2026-12-01/10-00-00")  # doctest: +SKIP
    >>> [trial_record(t).reason for t in sweep.study.get_trials(deepcopy=False)]  # doctest: +SKIP
"""

from clara_hydra.sweep_record.names import RESULTS_FILE, StudyAttr, SystemAttr, TrialAttr
from clara_hydra.sweep_record.opening import Sweep, SweepNotFoundError, open_sweep
from clara_hydra.sweep_record.record import TrialRecord, reason_of, trial_record

__all__ = [
    "RESULTS_FILE",
    "StudyAttr",
    "Sweep",
    "SweepNotFoundError",
    "SystemAttr",
    "TrialAttr",
    "TrialRecord",
    "open_sweep",
    "reason_of",
    "trial_record",
]
