"""Hydra plugin package of clara-hydra's Optuna sweeper (``override hydra/sweeper: clara_optuna``).

Hydra finds it by scanning the ``hydra_plugins`` namespace package (which has no ``__init__.py`` on
purpose). The code lives in :mod:`clara_hydra.sweeper`; this package only holds the plugin class,
which Hydra requires to be defined under ``hydra_plugins``.
"""
