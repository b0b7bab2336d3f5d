"""Every study and trial attribute a sweep records, and the result file's name: the bottom of the record.

Imported by the storage layer too (``retrying_storage``, ``coordination``), so it imports nothing of ours.
"""

from __future__ import annotations

from enum import StrEnum

RESULTS_FILE = "optimization_results.yaml"


class TrialAttr(StrEnum):
    """Trial user attributes (``trial.user_attrs``), written by the sweeper."""

    JOB_DIR = "job_dir"  # the trial's job folder (.hydra/, models/, trial_summary.json)
    FAIL_REASON = "fail_reason"  # why a FAIL trial failed (counts only on a FAIL trial)
    PRUNE_REASON = "prune_reason"  # why a PRUNED trial was pruned
    DUPLICATE_OF = "duplicate_of"  # the earlier trial whose parameters it repeats: not retrained
    BASELINE = "baseline"  # the enqueued trial of the unsearched defaults
    RETRY_OF = "retry_of"  # the interrupted trial whose parameters it retries
    OVERRIDES = "overrides"  # the searched overrides of the trial's job
    FIXED_OVERRIDES = "fixed_overrides"  # the sweep's fixed overrides when the trial ran
    WORKER = "worker"  # the worker that ran it (w1@host), for the report's timeline
    WARM_START = "warm_start_from"  # added from an earlier study (not run here): "study 'x' trial 3"
    WARM_START_BEST = "warm_start_best_of"  # retries the earlier study's best under the current config
    MLFLOW_RUN_ID = "mlflow_run_id"  # the trial's MLflow run (clara_hydra.tracking)


class StudyAttr(StrEnum):
    """Study user attributes (``study.user_attrs``)."""

    SWEEP_DIR = "sweep_dir"  # the sweep folder of the study's first run
    FIXED_OVERRIDES = "fixed_overrides"  # the fixed overrides of its first run (a changed one is refused)
    WARM_START = "clara_warm_start"  # what a warm start added and skipped
    STOPPED = "clara_stopped"  # why and where the Terminator stopped the sweep


class SystemAttr(StrEnum):
    """System attributes (``system_attrs``): the sweeper's bookkeeping, and the one Optuna name it reads."""

    WORKERS_JOINED = "clara_workers_joined"  # study: how many workers joined (the baseline is enqueued once)
    HEARTBEAT = "clara_heartbeat"  # trial: the last beat of the worker running it (seconds since the epoch)
    WORKER_HOST = "clara_worker_host"  # trial: the host of its worker
    WORKER_PID = "clara_worker_pid"  # trial: the pid of its worker
    WORKER_PID_START = "clara_worker_pid_start"  # trial: that process's start time (pids are reused)
    CREATE_TOKEN = "clara_create_token"  # trial (RDB servers): unique per creation, finds it after a lost reply
    # Optuna's own mark of an enqueued trial (Study.enqueue_trial stores the parameters under it); pinned by
    # tests/test_sweep_record.py::test_optuna_marks_enqueued_trials_with_fixed_params.
    OPTUNA_FIXED_PARAMS = "fixed_params"
