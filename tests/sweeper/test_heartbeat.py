"""Stale trials of dead workers on real Optuna storages (journal file, PostgreSQL when available)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from clara_hydra.sweep_record import SystemAttr, TrialAttr
from clara_hydra.sweeper.heartbeat import Heartbeat, fail_stale
from clara_hydra.sweeper.progress import format_seconds, trial_line
from clara_hydra.sweeper.storage import open_storage


def study_on(tmp_path: Path) -> optuna.Study:
    storage = open_storage(f"journal://{tmp_path / 's.journal'}")
    return optuna.create_study(study_name="s", storage=storage)


def test_a_trial_without_heartbeat_for_the_grace_period_is_failed_once_and_retried(tmp_path: Path) -> None:
    study = study_on(tmp_path)
    storage = study._storage
    remote = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    # Claimed by a worker on another machine whose last beat is 100 s old.
    storage.set_trial_system_attr(remote._trial_id, SystemAttr.WORKER_HOST, "elsewhere")
    storage.set_trial_system_attr(remote._trial_id, SystemAttr.HEARTBEAT, time.time() - 100)
    live = study.ask()
    storage.set_trial_system_attr(live._trial_id, SystemAttr.WORKER_HOST, "elsewhere")
    storage.set_trial_system_attr(live._trial_id, SystemAttr.HEARTBEAT, time.time())  # beating: left alone
    assert fail_stale(study, grace_period=20, mine=set(), retry=True) == [remote.number]
    other_worker = optuna.load_study(study_name="s", storage=open_storage(f"journal://{tmp_path / 's.journal'}"))
    assert fail_stale(other_worker, grace_period=20, mine=set(), retry=True) == []  # already failed: no double retry
    trials = study.get_trials(deepcopy=False)
    assert [(t.number, t.state) for t in trials] == [
        (0, TrialState.FAIL), (1, TrialState.RUNNING), (2, TrialState.WAITING)
    ]  # fmt: skip
    assert trials[0].user_attrs["fail_reason"] == "interrupted"
    assert trials[2].system_attrs["fixed_params"] == trials[0].params and trials[2].user_attrs["retry_of"] == 0
    # The retry dies too: it is failed, but not retried a second time.
    retry = study.ask()
    storage.set_trial_system_attr(retry._trial_id, SystemAttr.WORKER_HOST, "elsewhere")
    storage.set_trial_system_attr(retry._trial_id, SystemAttr.HEARTBEAT, time.time() - 100)
    assert fail_stale(study, grace_period=20, mine={live._trial_id}, retry=True) == [retry.number]
    assert not study.get_trials(deepcopy=False, states=(TrialState.WAITING,))


def test_a_dead_pid_on_this_host_is_stale_at_once_and_a_live_one_never(tmp_path: Path) -> None:
    study = study_on(tmp_path)
    beat = Heartbeat(study._storage, interval=1)
    mine = study.ask()
    beat.claim(mine, "w1@here")
    dead_proc = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_proc.wait()
    dead = study.ask()
    beat.claim(dead, "w2@here")  # claimed as this process, then rewritten to a pid that has exited
    study._storage.set_trial_system_attr(dead._trial_id, SystemAttr.WORKER_PID, dead_proc.pid)
    study._storage.set_trial_system_attr(dead._trial_id, SystemAttr.WORKER_PID_START, "gone")
    other = optuna.load_study(study_name="s", storage=open_storage(f"journal://{tmp_path / 's.journal'}"))
    # No grace period needed for the dead pid; this process's own trial is alive whatever its age.
    assert fail_stale(other, grace_period=3600, mine=set(), retry=False) == [dead.number]
    time.sleep(2.2)
    assert (
        study._storage.get_trial(mine._trial_id).system_attrs[SystemAttr.HEARTBEAT] > time.time() - 2
    )  # still beating
    assert fail_stale(other, grace_period=1, mine=set(), retry=False) == []
    beat.stop()
    assert study._storage.get_trial(mine._trial_id).user_attrs["worker"] == "w1@here"


@pytest.mark.postgres
def test_optuna_heartbeats_on_postgresql() -> None:
    url = os.environ.get("CLARA_HYDRA_PG_URL")
    if not url:
        pytest.skip("set CLARA_HYDRA_PG_URL to run")
    pytest.importorskip("psycopg", reason="needs the PostgreSQL driver: pip install -e '.[postgres]'")
    storage = open_storage(url, heartbeat_interval=1, grace_period=2)
    name = f"hb_{os.getpid()}_{time.time_ns()}"
    study = optuna.create_study(study_name=name, storage=storage)
    try:
        beat = Heartbeat(storage, interval=1)
        trial = study.ask()
        beat.claim(trial, "w1@elsewhere")
        storage.set_trial_system_attr(trial._trial_id, SystemAttr.WORKER_HOST, "elsewhere")  # judged by heartbeat only
        time.sleep(2.5)
        assert fail_stale(study, grace_period=2, mine=set(), retry=True) == []  # beating
        beat.stop()
        time.sleep(3.5)
        assert fail_stale(study, grace_period=2, mine=set(), retry=True) == [trial.number]
        assert study.get_trials(deepcopy=False)[-1].state == TrialState.WAITING
    finally:
        optuna.delete_study(study_name=name, storage=storage)


def test_progress_line(tmp_path: Path) -> None:
    study = study_on(tmp_path)
    job = tmp_path / "0"
    job.mkdir()
    (job / "trial_summary.json").write_text('{"objective": {"name": "val_mean_dice"}}')
    t0 = study.ask()
    t0.set_user_attr(TrialAttr.JOB_DIR, str(job))
    study.tell(t0, 0.9)
    t1 = study.ask()
    t1.set_user_attr("prune_reason", "pruned at step 2 (value 0.08)")
    study.tell(t1, state=TrialState.PRUNED)
    frozen = study.get_trials(deepcopy=False)
    line0 = trial_line(study, frozen[0], 20)
    assert line0.startswith("trial 0/20 COMPLETE val_mean_dice=0.9 · best 0.9 (trial 0) · ")
    assert " · ETA " in line0
    line1 = trial_line(study, frozen[1], 20, workers=2, worker="w2@host")
    assert line1.startswith("trial 1/20 PRUNED pruned at step 2 (value 0.08) · best 0.9 (trial 0)")
    assert line1.endswith(" · w2@host")
    assert [format_seconds(s) for s in (14, 180, 5400)] == ["14 s", "3 min", "1.5 h"]


def test_past_budget_gives_back_the_later_of_two_racing_asks() -> None:
    from clara_hydra.sweeper.resume import past_budget

    def t(number: int, state: TrialState, reason: str | None = None) -> optuna.trial.FrozenTrial:
        frozen = optuna.trial.create_trial(
            state=state, value=1.0 if state == TrialState.COMPLETE else None,
            user_attrs={"fail_reason": reason} if reason else None,
        )  # fmt: skip
        frozen.number = number
        return frozen

    trials = [t(0, TrialState.COMPLETE), t(1, TrialState.FAIL, "interrupted"), t(2, TrialState.RUNNING)]
    assert past_budget([*trials, t(3, TrialState.RUNNING)], n_trials=3) == set()  # interrupted: no place
    assert past_budget([*trials, t(3, TrialState.RUNNING), t(4, TrialState.RUNNING)], n_trials=3) == {4}
    assert past_budget([t(0, TrialState.RUNNING), t(1, TrialState.COMPLETE)], n_trials=1) == set()


def test_result_files_survive_concurrent_writers(tmp_path: Path) -> None:
    """Workers rewrite the result files after each trial: unique temp names, so writers never collide."""
    import threading

    from clara_hydra.sweeper.results import write_all

    study = study_on(tmp_path)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(20):
                write_all(study, tmp_path / "sweep", "journal:///x", {})
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert not list((tmp_path / "sweep").glob(".*.tmp"))
    assert (tmp_path / "sweep" / "trials.csv").read_text().count("\n") == 4
