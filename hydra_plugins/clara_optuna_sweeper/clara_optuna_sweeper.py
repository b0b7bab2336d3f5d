"""The ``clara_optuna`` Sweeper plugin class: a thin shell over :mod:`clara_hydra.sweeper.runner`.

Importing this module must stay cheap: Hydra imports every ``hydra_plugins`` module at start-up (also
for ``--help``), so Optuna and the sweep machinery are imported only when a sweep starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from clara_hydra.sweeper.config import register_configs

if TYPE_CHECKING:
    from clara_hydra.sweeper.runner import SweepRunner

register_configs()


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
        from clara_hydra.sweeper.runner import SweepRunner  # lazy: imports Optuna

        self.config = config
        self.hydra_context = hydra_context
        self._runner = SweepRunner(
            self.settings, hydra_context=hydra_context, task_function=task_function, config=config
        )
        self.launcher = self._runner.launcher

    def sweep(self, arguments: list[str]) -> None:
        """Run the study until ``n_trials`` trials are finished (resuming any earlier run of it).

        Args:
            arguments: the command line's task overrides (sweep overrides become search dimensions).
        """
        assert self._runner is not None, "setup() must be called before sweep()"
        self._runner.run(arguments)
