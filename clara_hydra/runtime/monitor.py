"""Ignite handlers of a run: validation timing, the key-metric history, per-epoch progress, pruning reports."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from typing import Any

from clara_hydra.runtime.console import show_bars
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


class _BelowWarning(logging.Filter):
    """Drops an engine logger's INFO records (``Engine run resuming``, ``Got new best metric``, ``Epoch[k]
    Complete``): the evaluator's are repeats of the one validation line this monitor logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def _no_print(engine: Any) -> None:
    del engine


class Monitor:
    """Watches the trainer and the evaluator of one run.

    - evaluator ``STARTED``/``COMPLETED``: time spent validating; the key metric recorded in ``summary``; one log
      line; ``report(value, epoch)`` to the sweep's pruner. When the pruner says stop, the trainer is terminated
      cleanly (no exception travels through ignite) and :attr:`pruned` holds the ``TrialPruned`` to re-raise.
      That line is the only one per validation: the evaluator's ignite INFO lines and its MONAI
      ``StatsHandler`` epoch print (metrics, key metric) say the same and are dropped.
    - trainer ``EPOCH_COMPLETED``: one progress line per epoch (mean loss, seconds); a tqdm bar on a terminal
      outside a sweep (never in a log file).
    - run ``COMPLETED`` (also after pruning): the run's hyperparameters and final key metric in TensorBoard's
      HParams tab, next to the run's ``TensorBoardStatsHandler`` logs (see :func:`write_hparams`).

    Args:
        evaluator: MONAI ``SupervisedEvaluator`` (or any evaluator with a key metric).
        trainer: MONAI ``SupervisedTrainer``, or ``None`` for a validation-only config.
        summary: receives the metric history and timings.
        report: ``report(value, epoch)`` to the sweep's pruner (default: :func:`reporter`); a distributed
            trial passes one that broadcasts rank 0's decision.
    """

    def __init__(
        self,
        evaluator: Any,
        trainer: Any | None,
        summary: TrialSummary,
        report: Callable[[float, int], None] | None = None,
    ) -> None:
        self.evaluator = evaluator
        self.trainer = trainer
        self.summary = summary
        self.pruned: BaseException | None = None
        self._report = reporter() if report is None else report
        # False on the ranks > 0 of a distributed trial: they validate and prune with rank 0 but write nothing.
        self.main = True
        self._val_start = 0.0
        self._epoch_start = 0.0
        self._losses: list[float] = []

    def attach(self) -> None:
        """Register the handlers (after MONAI's, so the metrics are computed when ours run)."""
        from ignite.engine import Events

        self.evaluator.add_event_handler(Events.STARTED, self._validation_started)
        self.evaluator.add_event_handler(Events.COMPLETED, self._validation_completed)
        self._quiet_evaluator()
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
            if show_bars() and self.main:
                from ignite.handlers import ProgressBar

                ProgressBar(persist=False).attach(self.trainer)
        last = self.trainer if self.trainer is not None else self.evaluator
        last.add_event_handler(Events.COMPLETED, self._run_completed)

    def _quiet_evaluator(self) -> None:
        """One line per validation: drop the evaluator's ignite INFO records and StatsHandler epoch prints."""
        from ignite.engine import Events

        self.evaluator.logger.addFilter(_BelowWarning())
        for handler in self.evaluator._event_handlers.get(Events.EPOCH_COMPLETED, []):
            owner: Any = getattr(handler[0], "__self__", None)
            if type(owner).__name__ == "StatsHandler" and getattr(owner, "epoch_print_logger", None) is None:
                owner.epoch_print_logger = _no_print

    def _run_completed(self, engine: Any) -> None:
        if not self.main or self.summary.best_value is None or self.summary.name is None:
            return
        for log_dir in tensorboard_dirs(self.trainer if self.trainer is not None else self.evaluator):
            try:
                write_hparams(log_dir, hyperparameters(), {self.summary.name: float(self.summary.best_value)})
            except Exception as exc:  # TensorBoard is a view: a failure to write it must not fail the run
                log.warning("TensorBoard HParams not written to %s: %s", log_dir, exc)

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
        others = ", ".join(f"{k} {float(v):.4f}" for k, v in engine.state.metrics.items() if k != name and is_number(v))
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


def tensorboard_dirs(engine: Any) -> list[str]:
    """The log folders of the MONAI ``TensorBoardStatsHandler`` handlers attached to ``engine``."""
    found: list[str] = []
    for handlers in engine._event_handlers.values():
        for handler in handlers:
            owner = getattr(handler[0], "__self__", None)
            writer = getattr(owner, "_writer", None)
            log_dir = getattr(writer, "log_dir", None) if writer is not None else None
            if type(owner).__name__ == "TensorBoardStatsHandler" and log_dir and log_dir not in found:
                found.append(str(log_dir))
    return found


def hyperparameters() -> dict[str, Any]:
    """The run's hyperparameters: each searched key of the sweep and each command-line override, as values.

    Read from the job's Hydra config: the keys of ``hydra.sweeper.params`` plus the task overrides, with
    their composed values (``.hydra/config.yaml``) or a config group's chosen option. Values TensorBoard
    cannot show (lists) become text.
    """
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    if not HydraConfig.initialized():
        return {}
    hydra_cfg: Any = HydraConfig.get()
    keys = list(OmegaConf.select(hydra_cfg, "sweeper.params", default=None) or {})
    for override in hydra_cfg.overrides.task:
        key = str(override).split("=", 1)[0].lstrip("+~")
        if key and key not in keys:
            keys.append(key)
    choices = hydra_cfg.runtime.choices
    cfg = _job_config()
    out: dict[str, Any] = {}
    for key in keys:
        if key in choices:
            value: Any = choices[key]
        elif cfg is not None:
            try:
                value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
                if OmegaConf.is_config(value):
                    value = OmegaConf.to_container(value, resolve=True)
            except Exception:  # an interpolation that does not resolve outside the task: leave it out
                continue
        else:
            continue
        out[key] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out


def _job_config() -> Any:
    """The job's composed config, as Hydra saved it in ``<job folder>/.hydra/config.yaml`` (None if absent)."""
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    hydra_cfg = HydraConfig.get()
    subdir = hydra_cfg.output_subdir
    path = Path(str(hydra_cfg.runtime.output_dir)) / str(subdir) / "config.yaml" if subdir else None
    return OmegaConf.load(path) if path is not None and path.is_file() else None


def write_hparams(log_dir: str, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
    """Record one run's hyperparameters and final metric(s) for TensorBoard's HParams tab, in ``log_dir``.

    Args:
        log_dir: the run's TensorBoard folder (its scalars are already there).
        hparams: name -> int/float/str/bool.
        metrics: metric name -> final value (shown as the HParams table's metric columns).
    """
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams as hparams_summary

    # SummaryWriter.add_hparams would write into a new timestamped sub-run; written here into the run's
    # own folder, so TensorBoard pairs the hyperparameters with the run's curves.
    exp, ssi, sei = hparams_summary(hparams or {"defaults": True}, metrics)
    with SummaryWriter(log_dir=log_dir) as writer:
        file_writer = writer._get_file_writer()
        for item in (exp, ssi, sei):
            file_writer.add_summary(item)
        for name, value in metrics.items():
            writer.add_scalar(name, value)


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


def is_number(value: Any) -> bool:
    """Whether ``value`` converts to a float (a metric worth printing or logging)."""
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
