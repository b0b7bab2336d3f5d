"""Stop a training whose loss became NaN or infinite, and say so: ``diverged at epoch N``.

Built on ignite's own :class:`ignite.handlers.TerminateOnNan` (it checks the output after every iteration and
terminates the engine); this subclass only remembers *when* it fired, so the task can fail the run with a
:class:`~clara_hydra.errors.DivergedError` instead of returning the metric of a broken model (a NaN loss
still gives a validation Dice, of an all-background guess, and a sweep would record it as COMPLETE).
Terminating instead of raising inside the engine keeps MONAI's handlers from logging a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from ignite.engine import Engine, Events
from ignite.handlers import TerminateOnNan

from clara_hydra.errors import DivergedError, shorten, with_fix


def _loss_of(output: Any) -> Any:
    """The loss in a MONAI trainer's output (a dict, or the list of decollated dicts), else the output."""
    from monai.handlers import from_engine

    try:
        loss = from_engine(["loss"], first=True)(output)
    except (KeyError, TypeError, IndexError):
        return output
    return loss[0] if isinstance(loss, tuple | list) and len(loss) == 1 else loss


def _text(loss: Any) -> str:
    try:
        return f"{float(loss):g}"
    except (TypeError, ValueError, RuntimeError):
        return shorten(str(loss), 80)


class DivergenceGuard(TerminateOnNan):
    """Terminates the trainer at the first NaN/inf loss and remembers the epoch and iteration.

    Args:
        output_transform: picks the loss from the engine's output (default: the ``loss`` entry of MONAI's
            trainer output).

    Example:
        >>> guard = DivergenceGuard()                     # doctest: +SKIP
        >>> guard.attach(trainer)                         # doctest: +SKIP
        >>> trainer.run(); guard.raise_if_diverged("learning_rate")  # doctest: +SKIP
    """

    def __init__(self, output_transform: Any = _loss_of) -> None:
        super().__init__(output_transform=output_transform)
        # ignite's logger writes to stderr on its own and skips train.log; ours propagates like every other
        self.logger = logging.getLogger(__name__)
        self.epoch: int | None = None
        self.iteration: int | None = None
        self.loss: str = ""

    def attach(self, engine: Engine) -> None:
        """Check the loss after every iteration of ``engine``."""
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        """ignite's check; when it terminates the engine, note where (the first time only)."""
        was_stopping = engine.should_terminate
        super().__call__(engine)
        if engine.should_terminate and not was_stopping and self.epoch is None:
            self.epoch = engine.state.epoch
            self.iteration = engine.state.iteration
            self.loss = _text(self._output_transform(engine.state.output))

    def raise_if_diverged(self, hint: str = "") -> None:
        """Raise :class:`DivergedError` when the guard stopped the training.

        Args:
            hint: what to change, for the message's fix (e.g. ``lower learning_rate (now 1e9)``).

        Raises:
            DivergedError: ``diverged at epoch N: the training loss is nan at iteration I``.
        """
        if self.epoch is None:
            return
        raise DivergedError(
            with_fix(
                f"diverged at epoch {self.epoch}: the training loss is {self.loss} at iteration {self.iteration}",
                hint or "lower the learning rate, or check the data and the loss",
            )
        )
