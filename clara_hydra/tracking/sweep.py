"""A sweep in MLflow: one parent run for the study, one nested child run per trial (the sweeper's side).

The sweep loop calls, in this order (each a no-op line when ``tracking`` is absent: no tracker):

1. :meth:`SweepTracker.start` once the study is open: finds or creates the study's parent run;
2. :meth:`SweepTracker.for_job` while building a trial's job overrides: creates the trial's child run with
   the trial's parameters and returns what the job needs to log into it (sent in the trial identity);
3. :meth:`SweepTracker.trial_told` after the study was told the trial's outcome: the child's final state,
   value and reasons are read back from the study, which is authoritative (also for killed jobs);
4. :meth:`SweepTracker.end` when this process's loop ends: the parent is closed unless other workers
   still run trials.

**One parent per study, with any number of workers.** The parent carries the tag ``clara_hydra.study_key``,
a hash of the study's storage, name and sweep folder (a study deleted and created again gets a new sweep
folder, hence a new parent). A process that finds none creates one, then searches again, and keeps the
oldest (start time, then run id); a process whose own run lost deletes it. So processes that start together
(``workers=N``, the same command on several machines) agree on one parent; a later process only finds it.
On a local SQLite store (the default) the whole step, with the store's creation (MLflow's schema
migrations, seconds), runs under an exclusive lock on ``<store>.lock`` that the OS releases if its holder
dies, so nothing is created twice. Elsewhere (a tracking server, a database) a duplicate can only arise
between machines whose clocks differ by more than the time between their two creations. The study's own
lock is not used: held for seconds it would be broken as stale by the workers waiting to ask trials.
"""

from __future__ import annotations

import hashlib
import logging
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from clara_hydra.sweep_record import TrialAttr
from clara_hydra.tracking.settings import TrackingSettings
from clara_hydra.tracking.store import (
    PARENT_TAG,
    Tag,
    experiment_id,
    for_jobs,
    mask,
    objective_metrics,
    open_client,
    param_values,
    store_lock,
    tag_value,
)

if TYPE_CHECKING:
    import optuna
    from mlflow import MlflowClient
    from optuna.storages import BaseStorage

    from clara_hydra.sweeper.storage import StorageSpec

# The trial's final Optuna state -> the MLflow run status shown in the UI.
_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}

log = logging.getLogger(__name__)


def study_key(storage_display: str, study_name: str, sweep_dir: str | Path) -> str:
    """The identity of one study instance in a tracking store (the parent run's ``clara_hydra.study_key``)."""
    text = f"{storage_display}\n{study_name}\n{Path(sweep_dir)}"
    return hashlib.sha1(text.encode()).hexdigest()[:20]


class SweepTracker:
    """The MLflow side of one sweep process (see the module docstring).

    Args:
        client: MLflow's client on the store.
        uri: the store's URI (sent to jobs).
        experiment: the experiment id.
        parent: the study's parent run id.
        storage: the study's Optuna storage (trials are read back from it).
        settings: the ``tracking`` node.
    """

    def __init__(
        self,
        client: MlflowClient,
        uri: str,
        experiment: str,
        parent: str,
        storage: BaseStorage,
        settings: TrackingSettings,
        study_name: str,
    ) -> None:
        self.client = client
        self.uri = uri
        self.experiment = experiment
        self.parent = parent
        self.storage = storage
        self.settings = settings
        self.study_name = study_name
        self.runs: dict[int, str] = {}  # storage trial id -> child run id, for this process's trials
        self.closed: set[int] = set()  # the trials whose child run is closed
        self.direction: str | None = None  # the study's (single) direction, read once

    @classmethod
    def start(
        cls,
        config: DictConfig,
        study: optuna.Study,
        spec: StorageSpec,
        storage: BaseStorage,
        sweep_dir: Path,
    ) -> SweepTracker | None:
        """Find or create the study's parent run; ``None`` when the config has no ``tracking`` node.

        Args:
            config: the sweep's composed config.
            study: the open study.
            spec: its storage (its masked URL tags the parent).
            storage: the open storage.
            sweep_dir: the sweep folder the study keeps across reruns.

        Raises:
            TrackingError: MLflow missing, a bad ``tracking`` node, a store that cannot be opened.
        """
        settings = TrackingSettings.from_config(config)
        if settings is None:
            return None
        from clara_hydra.sweeper.storage import stable_sweep_root

        cwd = Path(str(config.hydra.runtime.cwd))
        uri = settings.store_uri(stable_sweep_root(config, cwd), cwd)
        name = study.study_name
        key = study_key(spec.display, name, sweep_dir)
        tags = {
            Tag.KIND.value: "study",
            Tag.STUDY.value: name,
            Tag.STUDY_KEY.value: key,
            Tag.STORAGE.value: tag_value(spec.display),
            Tag.SWEEP_DIR.value: str(sweep_dir),
            **settings.tags,
        }
        with store_lock(uri):  # a new SQLite store's tables, the experiment and the parent: created once
            client = open_client(uri)
            experiment = experiment_id(client, settings.experiment_name or name, uri)
            parent = _oldest(client, experiment, key)
            if parent is None:
                created = client.create_run(experiment, run_name=settings.run_name or name, tags=tags).info.run_id
                _log_params(client, created, _space(config))
                parent = _settle(client, experiment, key, created)
        if client.get_run(parent).info.status != "RUNNING":  # a resumed study: running again
            client.update_run(parent, status="RUNNING")
        log.info("MLflow: study '%s' is run %s of experiment '%s' in %s", name, parent, experiment, _shown(uri))
        tracker = cls(client, uri, experiment, parent, storage, settings, name)
        tracker.reconcile(study)
        return tracker

    def for_job(self, trial_id: int, number: int, params: dict[str, Any]) -> dict[str, str]:
        """Create the trial's child run (once) and return what its job needs: ``{"uri", "run_id"}``.

        Args:
            trial_id: the trial's storage id.
            number: its number in the study.
            params: its parameter values (logged as the run's parameters).
        """
        run_id = self.runs.get(trial_id)
        if run_id is None:
            run_id = self._create_child(trial_id, number, params)
        return {"uri": for_jobs(self.uri), "run_id": run_id}

    def trial_told(self, trial_id: int, job_dir: str | None = None) -> None:
        """Close the trial's child run with what the study holds: state, value, reasons, job folder.

        A failure to write is logged, never raised: tracking is a view of the study.
        """
        try:
            frozen = self.storage.get_trial(trial_id)
            run_id = self.runs.get(trial_id) or frozen.user_attrs.get(TrialAttr.MLFLOW_RUN_ID)
            if run_id is None:  # a trial that never reached a job (a duplicate's reused outcome)
                run_id = self._create_child(trial_id, frozen.number, dict(frozen.params), link=False)
            self._close(run_id, frozen, job_dir)
            self.closed.add(trial_id)
            self._update_parent(frozen)
        except Exception as exc:
            log.warning("MLflow: trial %s not recorded: %s: %s", trial_id, type(exc).__name__, exc)

    def reconcile(self, study: optuna.Study) -> None:
        """Close the child runs left RUNNING by a sweep process that died, whose trials the study has closed
        since (a worker's stale trial, a killed sweep resumed). Logged, never raised."""
        try:
            running = self.client.search_runs(
                [self.experiment],
                filter_string=f"tags.`{PARENT_TAG}` = '{self.parent}' and attributes.status = 'RUNNING'",
                max_results=1000,
            )
            mine = set(self.runs.values())
            trials = {t.number: t for t in study.get_trials(deepcopy=False)}
            for run in running:
                trial = trials.get(int(run.data.tags.get(Tag.TRIAL.value, -1)))
                if trial is not None and trial.state.is_finished() and run.info.run_id not in mine:
                    self._close(run.info.run_id, trial, None)
        except Exception as exc:
            log.warning("MLflow: runs of ended trials not closed: %s: %s", type(exc).__name__, exc)

    def end(self, study: optuna.Study, interrupted: bool = False) -> None:
        """Close the parent run, unless trials of other workers still run (the last one closes it)."""
        from optuna.trial import TrialState

        for trial_id in [t for t in self.runs if t not in self.closed]:  # closed by Ctrl-C, never told here
            with suppress(Exception):
                if self.storage.get_trial(trial_id).state.is_finished():
                    self.trial_told(trial_id)
        try:
            if study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                return
            self.reconcile(study)
            self.client.set_terminated(self.parent, status="KILLED" if interrupted else "FINISHED")
            log.info(
                "MLflow: the study's runs are in %s (to browse: pip install mlflow; mlflow ui --backend-store-uri %s)",
                mask(self.uri),
                mask(self.uri),
            )
        except Exception as exc:
            log.warning("MLflow: parent run %s not closed: %s: %s", self.parent, type(exc).__name__, exc)

    # ------------------------------------------------------------------ internals
    def _create_child(self, trial_id: int, number: int, params: dict[str, Any], link: bool = True) -> str:
        tags = {
            PARENT_TAG: self.parent,
            Tag.KIND.value: "trial",
            Tag.STUDY.value: self.study_name,
            Tag.TRIAL.value: str(number),
            **self.settings.tags,
        }
        run_id = self.client.create_run(self.experiment, run_name=f"trial {number}", tags=tags).info.run_id
        _log_params(self.client, run_id, params)
        self.runs[trial_id] = run_id
        if link:  # the study records the trial's run (only a running trial takes new attributes)
            self.storage.set_trial_user_attr(trial_id, TrialAttr.MLFLOW_RUN_ID, run_id)
        return run_id

    def _close(self, run_id: str, frozen: optuna.trial.FrozenTrial, job_dir: str | None) -> None:
        from mlflow.entities import Metric, RunTag

        state = frozen.state.name
        attrs = frozen.user_attrs
        tags = {Tag.STATE.value: state}
        for tag, attr in ((Tag.FAIL_REASON, TrialAttr.FAIL_REASON), (Tag.PRUNE_REASON, TrialAttr.PRUNE_REASON)):
            if attrs.get(attr):
                tags[tag.value] = tag_value(attrs[attr])
        if attrs.get(TrialAttr.DUPLICATE_OF) is not None:
            tags[Tag.DUPLICATE_OF.value] = str(attrs[TrialAttr.DUPLICATE_OF])
        where = job_dir or attrs.get(TrialAttr.JOB_DIR)
        if where:
            tags[Tag.JOB_DIR.value] = str(where)
        end = frozen.datetime_complete.timestamp() if frozen.datetime_complete else None
        millis = int(end * 1000) if end else None
        values = frozen.values  # also a PRUNED trial's: the sweeper tells it with its last reported value
        step = max(frozen.intermediate_values, default=0)
        metrics = [Metric(k, v, millis or 0, step) for k, v in objective_metrics(values).items()]
        self.client.log_batch(run_id, metrics=metrics, tags=[RunTag(k, v) for k, v in tags.items()])
        self.client.set_terminated(run_id, status=_STATUS.get(state, "FAILED"), end_time=millis)

    def _update_parent(self, frozen: optuna.trial.FrozenTrial) -> None:
        """The parent's ``best_objective`` curve (one point per finished trial, step = trial number)."""
        if frozen.state.name != "COMPLETE" or frozen.values is None or len(frozen.values) != 1:
            return
        history = self.client.get_metric_history(self.parent, "best_objective")
        value = float(frozen.values[0])
        better = max if self._direction() == "maximize" else min
        best = better([*(m.value for m in history), value])
        self.client.log_metric(self.parent, "best_objective", best, step=frozen.number)

    def _direction(self) -> str:
        if self.direction is None:
            study_id = self.storage.get_study_id_from_name(self.study_name)
            self.direction = str(self.storage.get_study_directions(study_id)[0].name).lower()
        return self.direction


def _oldest(client: MlflowClient, experiment: str, key: str) -> str | None:
    """The study's oldest active parent run in the experiment (start time, then run id), or ``None``."""
    from mlflow.entities import ViewType

    runs = client.search_runs(
        [experiment],
        filter_string=f"tags.`{Tag.STUDY_KEY.value}` = '{key}'",
        run_view_type=ViewType.ACTIVE_ONLY,
        max_results=100,
    )
    if not runs:
        return None
    return str(min(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id)).info.run_id)


def _settle(client: MlflowClient, experiment: str, key: str, created: str) -> str:
    """After creating ``created``: keep the oldest parent; a process whose own run lost deletes it."""
    chosen = _oldest(client, experiment, key) or created
    if chosen != created:
        client.delete_run(created)
    return chosen


def _space(config: DictConfig) -> dict[str, Any]:
    """The search space as written (``hydra.sweeper.params``): the parent run's parameters."""
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None)
    if params is None:
        return {}
    container = OmegaConf.to_container(params, resolve=False)
    return {f"search.{k!s}": v for k, v in container.items()} if isinstance(container, dict) else {}


def _log_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in param_values(params).items()]
    for start in range(0, len(items), 100):  # MLflow's batch limit for parameters
        client.log_batch(run_id, params=items[start : start + 100])


def _shown(uri: str) -> str:
    return mask(uri)
