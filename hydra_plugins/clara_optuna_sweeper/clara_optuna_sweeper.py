"""The ``clara_optuna`` Sweeper plugin class: a thin shell over :mod:`clara_hydra.sweeper.runner`.

Importing this module must stay cheap: Hydra imports every ``hydra_plugins`` module at start-up (also
for ``--help``), so Optuna and the sweep machinery are imported only when a sweep starts.

The error contract of a sweep (README): a :class:`~clara_hydra.errors.UserError` (every ``SweepError``, a
refused sampler target) prints one compact block and exits with code 2; Ctrl-C prints the summary of what
the study holds and exits with code 130; ``CLARA_HYDRA_FULL_ERROR=1`` keeps the traceback. ``sys.exit``
passes through Hydra's own error handler, which would print a traceback and exit 1.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from clara_hydra.errors import EXIT_INTERRUPTED, FULL_ERROR_ENV, UserError, report_user_error
from clara_hydra.sweeper.config import register_configs

if TYPE_CHECKING:
    from clara_hydra.sweeper.runner import SweepRunner

register_configs()
log = logging.getLogger(__name__)


class ClaraOptunaSweeper(Sweeper):
    """Hydra sweeper driving an Optuna study by ask/tell.

    Settings: :class:`clara_hydra.sweeper.config.ClaraOptunaSweeperConf`.

    Args:
        **settings: the ``hydra.sweeper`` node's keys (Hydra passes them as keyword arguments).
    """

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self._runner: SweepRunner | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Keep Hydra's context and build the launcher (called once, before :meth:`sweep`)."""
        self.config = config
        self.hydra_context = hydra_context
        try:
            from clara_hydra.sweeper.runner import SweepRunner  # lazy: imports Optuna

            self._runner = SweepRunner(
                self.settings, hydra_context=hydra_context, task_function=task_function, config=config
            )
        except UserError as exc:
            _exit_compact(exc)
        self.launcher = self._runner.launcher

    def sweep(self, arguments: list[str]) -> None:
        """Run the study until ``n_trials`` trials are finished (resuming any earlier run of it).

        Args:
            arguments: the command line's task overrides (sweep overrides become search dimensions).
        """
        assert self._runner is not None, "setup() must be called before sweep()"
        from clara_hydra.sweeper.optuna_objects import user_allowed

        try:
            with user_allowed(self.config.get("_allow_")):  # the user's own _allow_ may add sampler targets
                self._runner.run(arguments)
        except UserError as exc:
            _exit_compact(exc)
        except KeyboardInterrupt:
            if os.environ.get(FULL_ERROR_ENV):
                raise
            print("\nclara-hydra: sweep interrupted (Ctrl-C); the study keeps what finished", file=sys.stderr)
            self._print_summary()
            sys.exit(EXIT_INTERRUPTED)

    def _print_summary(self) -> None:
        """The summary table of the study as stored now (best effort: an interrupt may come at any point)."""
        state = self._runner.state if self._runner is not None else None
        if state is None:  # interrupted before the study was open: nothing to summarise
            return
        try:
            from clara_hydra.sweeper.results import print_summary

            print_summary(state.study, state.sweep_dir)
        except Exception as exc:  # the summary must not turn an interrupt into a crash
            log.warning("could not print the sweep summary: %s: %s", type(exc).__name__, exc)


def _exit_compact(exc: UserError) -> None:
    """Print a user error as one block and exit 2 (re-raise with ``CLARA_HYDRA_FULL_ERROR=1``)."""
    if os.environ.get(FULL_ERROR_ENV):
        raise exc
    sys.exit(report_user_error(exc))
