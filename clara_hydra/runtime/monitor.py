"""Ignite handlers of a run: validation timing, the key-metric history, per-epoch progress, pruning reports."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from typing import Any

from clara_hydra.runtime.summary import TrialSummary

log = logging.getLogger("clara_hydra.train")


def is_trial_pruned(exc: BaseException) -> bool:
    """Whether ``exc`` is Optuna's ``TrialPruned`` (without importing Optuna when nothing imported it)."""
    optuna = sys.modules.get("optuna")
    return optuna is not None and isinstance(exc, optuna.exceptions.TrialPruned)


def _no_report(value: float, step: int) -> None:
    del value, step


def reporter() -> Callable[[float, int], None]:
    """The sweeper's ``trial_report.report`` (a no-op outside a sweep), or a no-op when the sweeper is absent."""
    try:
        from clara_hydra.sweeper.trial_report import report
    except ImportError:
        return _no_report
    return report


class _DropPruned(logging.Filter):
    """Drops MONAI StatsHandler's ERROR record (with traceback) for a pruned trial: pruning is not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (exc is not None and is_trial_pruned(exc))


class Monitor:
    """Watches the trainer and the evaluator of one run.

    - evaluator ``STARTED``/``COMPLETED``: time spent validating; the key metric recorded in ``summary``; one log
      line; ``report(value, epoch)`` to the sweep's pruner. When the pruner says stop, the trainer is terminated
      cleanly (no exception travels through ignite) and :attr:`pruned` holds the ``TrialPruned`` to re-raise.
    - trainer ``EPOCH_COMPLETED``: one progress line per epoch (mean loss, seconds); a tqdm bar on a terminal.

    Args:
        evaluator: MONAI ``SupervisedEvaluator`` (or any evaluator with a key metric).
        trainer: MONAI ``SupervisedTrainer``, or ``None`` for a validation-only config.
        summary: receives the metric history and timings.
    """

    def __init__(self, evaluator: Any, trainer: Any | None, summary: TrialSummary) -> None:
        self.evaluator = evaluator
        self.trainer = trainer
        self.summary = summary
        self.pruned: BaseException | None = None
        self._report = reporter()
        self._val_start = 0.0
        self._epoch_start = 0.0
        self._losses: list[float] = []

    def attach(self) -> None:
        """Register the handlers (after MONAI's, so the metrics are computed when ours run)."""
        from ignite.engine import Events

        self.evaluator.add_event_handler(Events.STARTED, self._validation_started)
        self.evaluator.add_event_handler(Events.COMPLETED, self._validation_completed)
        for engine in [e for e in (self.trainer, self.evaluator) if e is not None]:
            engine.logger.addFilter(_DropPruned())
            for handler in engine._event_handlers.get(Events.EXCEPTION_RAISED, []):
                owner_logger = getattr(getattr(handler[0], "__self__", None), "logger", None)
                if isinstance(owner_logger, logging.Logger):  # e.g. MONAI StatsHandler's own logger
                    owner_logger.addFilter(_DropPruned())
                    _route_to_root(owner_logger)
        if self.trainer is not None:
            self.trainer.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
            self.trainer.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
            self.trainer.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)
            if sys.stderr.isatty():
                from ignite.handlers import ProgressBar

                ProgressBar(persist=False).attach(self.trainer)

    def _validation_started(self, engine: Any) -> None:
        self._val_start = time.perf_counter()

    def _validation_completed(self, engine: Any) -> None:
        self.summary.seconds["validating"] = self.summary.seconds.get("validating", 0.0) + (
            time.perf_counter() - self._val_start
        )
        name = engine.state.key_metric_name
        if name is None or name not in engine.state.metrics:
            return
        self.summary.name = str(name)
        value = float(engine.state.metrics[name])
        epoch = int(self.trainer.state.epoch if self.trainer is not None else engine.state.epoch)
        best = self.summary.add(epoch, value)
        others = ", ".join(
            f"{k} {float(v):.4f}" for k, v in engine.state.metrics.items() if k != name and _is_number(v)
        )
        log.info(
            "validation at epoch %d: %s %.4f%s%s",
            epoch,
            name,
            value,
            " (new best)" if best else f" (best {self.summary.best_value:.4f} at epoch {self.summary.best_epoch})",
            f", {others}" if others else "",
        )
        try:
            self._report(value, epoch)
        except Exception as exc:
            if not is_trial_pruned(exc):
                raise
            self.pruned = exc
            if self.trainer is not None:
                self.trainer.terminate()

    def _epoch_started(self, engine: Any) -> None:
        self._epoch_start = time.perf_counter()
        self._losses.clear()

    def _iteration_completed(self, engine: Any) -> None:
        output = engine.state.output
        item = output[0] if isinstance(output, list) and output else output
        loss = item.get("loss") if isinstance(item, dict) else None
        if loss is not None:
            self._losses.append(float(loss))

    def _epoch_completed(self, engine: Any) -> None:
        mean = sum(self._losses) / len(self._losses) if self._losses else math.nan
        log.info(
            "epoch %d/%d: loss %.4f (%.1f s)",
            engine.state.epoch,
            engine.state.max_epochs,
            mean,
            time.perf_counter() - self._epoch_start,
        )


def _route_to_root(logger: logging.Logger) -> None:
    """Let a MONAI logger reach the job's log (Hydra's ``train.log``) in the job's format.

    MONAI's ``get_logger`` gives each handler logger its own stdout handler and ``propagate = False``, so the
    per-iteration losses bypass the job log file and print in a second format.
    """
    if logger.propagate:
        return
    for handler in list(logger.handlers):
        if type(handler) is logging.StreamHandler:
            logger.removeHandler(handler)
    logger.propagate = True


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
