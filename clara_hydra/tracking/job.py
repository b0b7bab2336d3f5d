"""A job in MLflow (the runtime's side): the composed config, the validation values by epoch, the job folder.

``python train.py`` calls :func:`job_tracking` around the task and :func:`attach` once the engines exist:

- in a sweep the trial identity (:mod:`clara_hydra.trial_context`) names the child run the sweeper created;
  the job logs into it and leaves its final state to the sweeper (the study is authoritative);
- in a single run the job creates its run (experiment: ``tracking.experiment_name``, else the study's name)
  with the run's hyperparameters, and closes it with the run's outcome (completed / pruned / failed).

While the task runs, ``CLARA_HYDRA_MLFLOW_RUN`` holds the run (URI and id), so processes the task starts
(DDP ranks) can log into it: only rank 0 does. Without a ``tracking`` node nothing here imports MLflow.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from clara_hydra.runtime.monitor import is_number
from clara_hydra.tracking.settings import TrackingError, TrackingSettings, stable_root
from clara_hydra.tracking.store import (
    URI_REF,
    Tag,
    experiment_id,
    mask,
    objective_metrics,
    open_client,
    param_values,
    store_lock,
    tag_value,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

ENV_RUN = "CLARA_HYDRA_MLFLOW_RUN"
_STATUS = {"completed": "FINISHED", "pruned": "KILLED", "failed": "FAILED"}

log = logging.getLogger(__name__)


@contextmanager
def job_tracking(cfg: DictConfig) -> Iterator[None]:
    """Track the task run inside the ``with`` block (nothing when ``cfg`` has no ``tracking`` node).

    Raises:
        TrackingError: in a single run, MLflow is missing or the store cannot be used (before any training).
            In a sweep the same problems only print a warning: the trial trains, untracked.
    """
    settings = TrackingSettings.from_config(cfg)
    if settings is None or _env_rank() != 0:
        yield
        return
    run = _open(cfg, settings)
    if run is None:
        yield
        return
    previous = os.environ.get(ENV_RUN)
    os.environ[ENV_RUN] = json.dumps({"uri": run.uri, "run_id": run.run_id})
    try:
        yield
    except BaseException as exc:
        run.finish(exc)
        raise
    else:
        run.finish(None)
    finally:
        if previous is None:
            os.environ.pop(ENV_RUN, None)
        else:
            os.environ[ENV_RUN] = previous


def attach(evaluator: Any, trainer: Any | None) -> None:
    """Log every validation's metrics into the job's run, step = epoch (rank 0 only; nothing when untracked).

    Args:
        evaluator: the run's evaluator (its ``COMPLETED`` event is one validation).
        trainer: the trainer (its epoch numbers the steps), or ``None`` for a validation config.
    """
    text = os.environ.get(ENV_RUN)
    if not text or _dist_rank() != 0:
        return
    try:
        where = json.loads(text)
        uri, run_id = str(where["uri"]), str(where["run_id"])
    except (ValueError, KeyError, TypeError):
        log.warning("%s is not valid (%r): validation values not tracked", ENV_RUN, text[:200])
        return
    from ignite.engine import Events

    evaluator.add_event_handler(Events.COMPLETED, _EpochLogger(open_client(uri), run_id, trainer))


class _EpochLogger:
    """Ignite handler: the evaluator's numeric metrics at the trainer's epoch; warns once if the store fails."""

    def __init__(self, client: MlflowClient, run_id: str, trainer: Any | None) -> None:
        self.client = client
        self.run_id = run_id
        self.trainer = trainer
        self.failed = False
        self.named = False

    def __call__(self, engine: Any) -> None:
        if self.failed:
            return
        from mlflow.entities import Metric, RunTag

        epoch = int(self.trainer.state.epoch if self.trainer is not None else engine.state.epoch)
        now = int(time.time() * 1000)
        metrics = [Metric(str(k), float(v), now, epoch) for k, v in engine.state.metrics.items() if is_number(v)]
        tags = []
        key = getattr(engine.state, "key_metric_name", None)
        if key and not self.named:
            tags.append(RunTag(Tag.OBJECTIVE.value, str(key)))
            self.named = True
        try:
            self.client.log_batch(self.run_id, metrics=metrics, tags=tags)
        except Exception as exc:  # tracking is a view: the training goes on
            self.failed = True
            log.warning("MLflow: validation values not logged to run %s: %s: %s", self.run_id, type(exc).__name__, exc)


class _JobRun:
    """The job's run: opened by :func:`_open`, closed by :meth:`finish`."""

    def __init__(self, client: MlflowClient, uri: str, run_id: str, owner: bool, job_dir: Path) -> None:
        self.client = client
        self.uri = uri
        self.run_id = run_id
        self.owner = owner  # True: a single run (this job closes it); False: a trial (the sweeper closes it)
        self.job_dir = job_dir

    def finish(self, exc: BaseException | None) -> None:
        """Attach ``trial_summary.json``; a single run also gets its final value and status."""
        from clara_hydra.runtime.summary import SUMMARY_FILE, read_summary

        try:
            summary_file = self.job_dir / SUMMARY_FILE
            if summary_file.is_file():
                self.client.log_artifact(self.run_id, str(summary_file))
            if not self.owner:
                return
            summary = read_summary(self.job_dir)
            status = str(summary.get("status") or ("completed" if exc is None else "failed"))
            if isinstance(exc, KeyboardInterrupt):
                status = "interrupted"
            tags = {Tag.STATE.value: status}
            if exc is not None and status != "pruned":
                tags[Tag.FAIL_REASON.value] = tag_value(f"{type(exc).__name__}: {exc}")
            best = summary.get("best_value")
            for key, number in objective_metrics([best] if isinstance(best, (int, float)) else None).items():
                self.client.log_metric(self.run_id, key, number, step=int(summary.get("best_epoch") or 0))
            for key, text in tags.items():
                self.client.set_tag(self.run_id, key, text)
            self.client.set_terminated(self.run_id, status=_STATUS.get(status, "KILLED"))
        except Exception as error:
            log.warning("MLflow: run %s not closed: %s: %s", self.run_id, type(error).__name__, error)


def _open(cfg: DictConfig, settings: TrackingSettings) -> _JobRun | None:
    """The job's run: the sweeper's child run for a trial, else a new run (``None``: a trial's store failed)."""
    from clara_hydra import resolvers
    from clara_hydra.trial_context import tracking_run

    job_dir = Path(resolvers.job_dir())
    given = tracking_run()
    if given is not None:
        uri, run_id = given["uri"], given["run_id"]
        if uri == URI_REF:  # a URI with a password: resolved here, never written into the job's config
            uri = settings.store_uri(job_dir, _launch_dir())
        try:
            client = open_client(uri)
            _log_job(client, run_id, cfg, job_dir)
        except Exception as exc:  # the trial trains untracked; the sweeper still records its outcome
            log.warning("MLflow: this trial's run %s cannot be written: %s: %s", run_id, type(exc).__name__, exc)
            return None
        return _JobRun(client, uri, run_id, owner=False, job_dir=job_dir)
    return _single_run(cfg, settings, job_dir)


def _single_run(cfg: DictConfig, settings: TrackingSettings, job_dir: Path) -> _JobRun:
    from hydra.core.hydra_config import HydraConfig

    from clara_hydra.runtime.monitor import hyperparameters

    cwd, root, study, job_name = Path.cwd(), job_dir.parent, None, "train"
    if HydraConfig.initialized():
        hydra_cfg: Any = HydraConfig.get()
        cwd = Path(str(hydra_cfg.runtime.cwd))
        raw = OmegaConf.to_container(hydra_cfg.run, resolve=False)
        raw_dir = str(raw.get("dir", "")) if isinstance(raw, dict) else ""
        root = stable_root(raw_dir, str(job_dir), cwd)
        study = OmegaConf.select(hydra_cfg, "sweeper.study_name", default=None)
        job_name = str(hydra_cfg.job.name)
    uri = settings.store_uri(root, cwd)
    with store_lock(uri):  # runs started together on a new SQLite store create its tables once
        client = open_client(uri)  # first: a compact error when MLflow is not installed
        experiment = experiment_id(client, settings.experiment_name or str(study or job_name), uri)
    from mlflow.exceptions import MlflowException

    name = settings.run_name or _relative(job_dir, root)
    tags = {Tag.KIND.value: "run", Tag.JOB_DIR.value: str(job_dir), **settings.tags}
    try:
        run_id = client.create_run(experiment, run_name=name, tags=tags).info.run_id
        params = [_param(k, v) for k, v in param_values(hyperparameters()).items()]
        if params:
            client.log_batch(run_id, params=params)
        _log_job(client, run_id, cfg, job_dir)
    except MlflowException as exc:
        raise TrackingError(f"tracking: cannot write a run into {mask(uri)}: {exc}") from exc
    log.info("MLflow: run %s (%s) of experiment '%s' in %s", run_id, name, experiment, mask(uri))
    return _JobRun(client, uri, run_id, owner=True, job_dir=job_dir)


def _log_job(client: MlflowClient, run_id: str, cfg: DictConfig, job_dir: Path) -> None:
    """The job folder (tag) and the composed config (``config.yaml``, ``overrides.yaml``; passwords masked)."""
    client.set_tag(run_id, Tag.JOB_DIR.value, str(job_dir))
    client.log_text(run_id, mask(_config_yaml(cfg)), "config.yaml")
    overrides = _task_overrides()
    if overrides:
        client.log_text(run_id, mask(OmegaConf.to_yaml(OmegaConf.create(overrides))), "overrides.yaml")


def _config_yaml(cfg: DictConfig) -> str:
    """The job's config resolved (as the run used it); as written where a value does not resolve."""
    try:
        return OmegaConf.to_yaml(cfg, resolve=True)
    except Exception:
        return OmegaConf.to_yaml(cfg, resolve=False)


def _launch_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(str(HydraConfig.get().runtime.cwd)) if HydraConfig.initialized() else Path.cwd()


def _task_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return [str(o) for o in HydraConfig.get().overrides.task]


def _relative(job_dir: Path, root: Path) -> str:
    with suppress(ValueError):
        text = str(job_dir.relative_to(root))
        if text not in ("", "."):
            return text
    return job_dir.name


def _param(key: str, value: str) -> Any:
    from mlflow.entities import Param

    return Param(key, value)


def _env_rank() -> int:
    """This process's rank as a launcher set it (torchrun's ``RANK``); 0 when none did."""
    try:
        return int(os.environ.get("RANK") or 0)
    except ValueError:
        return 0


def _dist_rank() -> int:
    """The rank in torch.distributed's default group when one is initialised, else :func:`_env_rank`."""
    import sys

    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    return _env_rank()
