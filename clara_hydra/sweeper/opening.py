"""Opening a sweep run: check what can be checked, open the storage and the study, return its state.

Order matters: everything that can be checked without the storage is checked first (a sweep that cannot
start leaves no study behind); a study created here is deleted again when anything after its creation
fails (a full disk included, reported compactly). Then the sweep folder is claimed (a resumed study keeps
its first folder), stale trials of dead workers are failed, the warm start and the baseline trial are
enqueued, this process is counted in (its sampler seed depends on it), and the tracker is started.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from clara_hydra.errors import SweepError, with_fix
from clara_hydra.runtime.device import warn_multi_gpu
from clara_hydra.sweep_record import StudyAttr, SystemAttr, TrialAttr
from clara_hydra.sweeper import terminator, warm_start
from clara_hydra.sweeper._optuna_private import is_basic_launcher, study_id_of
from clara_hydra.sweeper.disk import DiskFullError, Reserve, disk_report, full_path, is_disk_full
from clara_hydra.sweeper.fixed_overrides import check_fixed_overrides
from clara_hydra.sweeper.grammar import quote
from clara_hydra.sweeper.heartbeat import fail_stale
from clara_hydra.sweeper.optuna_objects import build_pruner, build_sampler, is_grid
from clara_hydra.sweeper.resume import budget_used, is_interrupted
from clara_hydra.sweeper.settings import Settings
from clara_hydra.sweeper.space import SearchSpace
from clara_hydra.sweeper.startup import check_folder_free, claim_folder, delete_new_study, study_exists
from clara_hydra.sweeper.state import SweepState
from clara_hydra.sweeper.storage import open_storage, resolve_storage, stable_sweep_root
from clara_hydra.sweeper.worker_role import WorkerRole, worker_id
from clara_hydra.tracking.sweep import SweepTracker

log = logging.getLogger(__name__)


def open_run(settings: Settings, config: DictConfig, arguments: list[str], launcher: Any) -> SweepState:
    """Check the sweep, open its storage and study, and return the run's state.

    Args:
        settings: the checked ``hydra.sweeper`` keys.
        config: the composed multirun config (its ``hydra.sweep.dir`` is moved to a resumed study's folder).
        arguments: the command line's task overrides.
        launcher: the Hydra launcher the jobs will run on.

    Raises:
        SweepError: the sweep cannot start (a bad space, storage, study or folder; a full disk).
    """
    s = settings
    space = SearchSpace.from_config(s.params, arguments)
    build_sampler(s.sampler, space)
    build_pruner(s.pruner)
    study_name = s.study_name or str(config.hydra.job.name)
    cwd = Path(str(config.hydra.runtime.cwd))
    spec = resolve_storage(s.storage, study_name, config, cwd=str(cwd))
    if s.workers > 1 and spec.url.startswith("sqlite"):
        raise SweepError(
            with_fix(
                f"hydra.sweeper.workers={s.workers} with the SQLite storage {spec.display}: SQLite "
                "locks the whole file per write and fails under concurrent workers (Optuna's advice)",
                "use PostgreSQL (storage: postgresql://user:pw@host/db) or the journal file (storage: null, "
                "or journal:///abs/path.journal)",
            )
        )
    warn_multi_gpu(config)
    storage = open_storage(spec.url, s.heartbeat_interval, s.grace_period)
    journal = spec.journal_path
    reserve = Reserve(journal.with_name(journal.name + ".reserve") if journal else None)
    reserve.create()
    role = WorkerRole.from_env()  # set when a coordinator started this process as a worker
    sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
    created = not study_exists(storage, study_name)
    try:
        if created:
            check_folder_free(sweep_dir, study_name, spec.display)
        study = _open_study(storage, study_name, s.directions, spec.display)
        state = SweepState(
            settings=s,
            space=space,
            spec=spec,
            storage=storage,
            study=study,
            sweep_dir=sweep_dir,
            role=role,
            worker=worker_id(role),
            # Jobs in other processes keep their disk data cache next to the study (runtime.diskcache).
            cache_dir=str(stable_sweep_root(config, cwd) / "cache"),
            concurrent=_concurrent(s, role, launcher),
            reserve=reserve,
            numbered_jobs=_numbered_jobs(config),
        )
        check_fixed_overrides(study, space.fixed_overrides)
        _continue_sweep_dir(state, config)
        claim_folder(state.sweep_dir, study_name, spec.display)
        existing = study.get_trials(deepcopy=False)
        closed = fail_stale(study, s.grace_period, set(), s.retry_interrupted)
        state.baseline_values = space.baseline(config) if s.baseline_trial else {}
        state.with_baseline = s.baseline_trial and not _baseline_off_grid(state)
        if s.warm_start is not None:  # before the baseline is enqueued: the earlier best is trial 0
            defaults = state.baseline_values if s.baseline_trial else space.baseline(config)
            warm_start.seed_study(study, s.warm_start, space, defaults,
                                  created=created, cwd=str(cwd), announce=role is None,
                                  lock=lambda: state.coordinator.study_lock(study_name))  # fmt: skip
        if role is None:  # this run (alone or coordinating workers) may go past an earlier stop
            terminator.forget_stop(study)
        joined = _join(state)
        # Distinct seeds per process, so workers and reruns draw new trials; except for the grid sampler,
        # whose seed orders the grid: grid id N (= trial N) must mean the same point in every process.
        offset = 0 if is_grid(s.sampler) else len(existing) + 1000 * joined
        study.sampler = build_sampler(s.sampler, space, seed_offset=offset)
        study.pruner = build_pruner(s.pruner)
        state.grid = isinstance(study.sampler, optuna.samplers.GridSampler)
        _log_header(state, existing, closed)
        _save_multirun_config(state.sweep_dir, config)
        state.tracker = SweepTracker.start(config, study, spec, storage, state.sweep_dir)
    except BaseException as exc:
        if created:
            delete_new_study(storage, study_name, sweep_dir)
        if isinstance(exc, OSError) and is_disk_full(exc):  # the sweep folder's first files
            raise DiskFullError(
                with_fix(
                    f"sweep not started: {disk_report(full_path(exc) or sweep_dir)}",
                    "free space on that disk (or set hydra.sweep.dir on another one), then rerun the same command",
                )
            ) from exc
        raise
    return state


def _open_study(storage: Any, study_name: str, directions: list[str], display: str) -> optuna.Study:
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        directions=directions,  # type: ignore[arg-type]  # checked by parse_directions
        load_if_exists=True,
    )
    found = [d.name.lower() for d in study.directions]
    if found != directions:
        raise SweepError(
            with_fix(
                f"study '{study_name}' in {display} has direction(s) {found}, the config says {directions}",
                "set another hydra.sweeper.study_name or storage",
            )
        )
    return study


def _concurrent(s: Settings, role: WorkerRole | None, launcher: Any) -> int:
    """Trials of this sweep running at once on this machine: the workers here, or a parallel batch."""
    if role is not None:
        return role.count if role.gpus is None and role.local else 1
    return 1 if is_basic_launcher(launcher) else s.n_jobs


def _numbered_jobs(config: DictConfig) -> bool:
    """Whether job folders are ``<sweep_dir>/<job number>`` (Hydra's default ``hydra.sweep.subdir``)."""
    raw = OmegaConf.to_container(config.hydra.sweep, resolve=False).get("subdir")  # type: ignore[union-attr]
    return raw == "${hydra.job.num}"


def _continue_sweep_dir(state: SweepState, config: DictConfig) -> None:
    """Keep a study in one sweep folder across reruns (Hydra's default folder has a timestamp)."""
    study = state.study
    stored = study.user_attrs.get(StudyAttr.SWEEP_DIR)
    if stored is None:
        study.set_user_attr(StudyAttr.SWEEP_DIR, str(state.sweep_dir))
        return
    if state.role is None:  # a coordinator's workers join the folder their coordinator just claimed
        log.info("resuming study '%s': continuing in its sweep folder %s", study.study_name, stored)
    if Path(stored) == state.sweep_dir:
        return
    state.sweep_dir = Path(stored)
    with read_write(config.hydra), open_dict(config.hydra):
        config.hydra.sweep.dir = stored  # the launcher reads this (it holds the same config object)
    state.sweep_dir_override = [f"hydra.sweep.dir={quote(stored)}"]


def _baseline_off_grid(state: SweepState) -> bool:
    """The grid sampler runs grid points only: a baseline whose defaults are not one is left out."""
    if not is_grid(state.settings.sampler):
        return False
    missing = sorted(set(state.space.params) - set(state.baseline_values))
    if missing:
        log.info("grid sampler: the defaults of %s are not grid values, so no baseline trial is run", missing)
    return bool(missing)


def _join(state: SweepState) -> int:
    """Enqueue the baseline trial once per study and count this process in; return its join index."""
    study, storage = state.study, state.storage
    with state.coordinator.study_lock(study.study_name):
        attrs = storage.get_study_system_attrs(study_id_of(study))
        joined = int(attrs.get(SystemAttr.WORKERS_JOINED, 0))
        storage.set_study_system_attr(study_id_of(study), SystemAttr.WORKERS_JOINED, joined + 1)
        trials = study.get_trials(deepcopy=False)
        if state.with_baseline and not any(
            t.user_attrs.get(TrialAttr.BASELINE) and not is_interrupted(t) for t in trials
        ):
            study.enqueue_trial(state.baseline_values, user_attrs={TrialAttr.BASELINE: True})
    return joined


def _log_header(state: SweepState, existing: Sequence[Any], closed: list[int]) -> None:
    s, study = state.settings, state.study
    log.info("Study '%s' in %s", study.study_name, state.spec.display)
    log.info(
        "Sampler %s, pruner %s, direction(s) %s, n_trials %d (total), n_jobs %d, workers %d",
        type(study.sampler).__name__,
        type(study.pruner).__name__,
        s.directions,
        s.n_trials,
        s.n_jobs,
        s.workers,
    )
    for spec in state.space.params.values():
        log.info("  %s: %s", spec.name, spec.distribution)
    if existing:
        log.info("Resuming: %d trial(s) in the study, %d count against n_trials", len(existing), budget_used(study))
    if closed:
        log.info("Closed trial(s) %s left running by a worker that is gone", closed)
    if s.workers > 1 or state.role is not None:
        log.info("Worker %s (%d worker(s) on this study)", state.worker, s.workers)


def _save_multirun_config(sweep_dir: Path, config: DictConfig) -> None:
    path = sweep_dir / "multirun.yaml"
    if not path.exists():  # a resumed run keeps the first run's record
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(config, path)
