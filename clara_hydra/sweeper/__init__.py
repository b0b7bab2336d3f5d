"""The ``clara_optuna`` Hydra sweeper: AutoML sweeps on Optuna that resume, prune and survive failed trials.

Select it with ``override hydra/sweeper: clara_optuna`` (converted configs do) and run
``python train.py -m``. Modules: :mod:`.config` (the settings and their defaults), :mod:`.grammar`
and :mod:`.space` (Hydra sweep grammar -> Optuna distributions), :mod:`.storage` (where the study
lives; :mod:`.journal`: the default journal file, whose writes are whole or absent and whose torn tail is
repaired; :mod:`.disk`: a full disk), :mod:`.runner` (the ask/launch/tell loop) and :mod:`.batch`, :mod:`.settings`,
:mod:`.optuna_objects` (sampler, pruner, directions), :mod:`.failures`, :mod:`.resume`, :mod:`.results`,
:mod:`.checkpoints`, :mod:`.startup` (study creation, sweep-folder ownership), :mod:`.workers` (many worker
processes on one study), :mod:`.heartbeat` (dead workers' trials), :mod:`.progress` (one line per trial), and
:mod:`.trial_report` (``report(value, step)`` for pruning; the job's trial identity is
:mod:`clara_hydra.trial_context`).

Importing this package is cheap: Optuna is imported only when a sweep runs.
"""

from clara_hydra.sweeper.trial_report import in_sweep, report

__all__ = ["in_sweep", "report"]
