"""Many workers, one study: worker processes of the toy app sharing a journal file or a PostgreSQL study.

Each test starts a few real ``app.py -m`` processes (start-up ~1.5 s each) whose trials sleep a little
(``TOY_SLEEP``) so that they overlap; a test asserts the study's accounting from the storage itself.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from clara_hydra.sweep_record import TrialAttr
from clara_hydra.sweeper.results import trials_csv
from clara_hydra.sweeper.storage import open_storage
from tests.sweeper.conftest import TOY_APP

# A discrete space of 6 points (+ the baseline's defaults): 9 trials must meet duplicates.
DISCRETE = ("opt=sgd,adam", "n=range(1,4)", "hydra/sweeper/sampler=random")
SEED = ("hydra.sweeper.sampler.seed=0",)


class Workers:
    """Start toy sweep processes in ``tmp_path`` against one study and read the outcome back."""

    def __init__(self, tmp_path: Path, storage: str, study: str = "toy") -> None:
        self.tmp = tmp_path
        self.storage = storage
        self.study = study
        self.log = tmp_path / "trainings.jsonl"
        self.procs: list[subprocess.Popen[str]] = []
        self.outs: list[Any] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        skip = ("TOY_", "CLARA_HYDRA_OPTUNA", "CLARA_HYDRA_WORKER")
        base = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
        full_env = {**base, "TOY_LOG": str(self.log), **(env or {})}
        cmd = [
            sys.executable, str(TOY_APP), "-m", *args, f"hydra.sweeper.storage={self.storage}",
            f"hydra.sweeper.study_name={self.study}", f"hydra.sweep.dir={self.tmp / 'sweep'}",
        ]  # fmt: skip
        # Output to a file, not a pipe: a pipe nobody reads while the workers run could fill and block them.
        out = open(self.tmp / f"worker{len(self.procs)}.out", "w")  # noqa: SIM115  (closed in output())
        proc = subprocess.Popen(cmd, cwd=self.tmp, env=full_env, stdout=out, stderr=subprocess.STDOUT, text=True)
        self.procs.append(proc)
        self.outs.append(out)
        return proc

    def output(self, proc: subprocess.Popen[str]) -> str:
        i = self.procs.index(proc)
        self.outs[i].close()
        return (self.tmp / f"worker{i}.out").read_text()

    def wait(self, timeout: float = 240) -> list[tuple[int, str]]:
        return [(p.wait(timeout=timeout), self.output(p)) for p in self.procs]

    def trainings(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def wait_for_training(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [t for t in self.trainings() if pred(t)]
            if hits:
                return hits[0]
            time.sleep(0.1)
        raise AssertionError(f"no training matched in {timeout} s: {self.trainings()}")

    def study_trials(self) -> list[optuna.trial.FrozenTrial]:
        study = optuna.load_study(study_name=self.study, storage=open_storage(self.storage))
        return study.get_trials(deepcopy=False)


def counted(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    return [t for t in trials if t.state.is_finished() and t.user_attrs.get("fail_reason") != "interrupted"]


def check_exact(w: Workers, n_trials: int) -> list[optuna.trial.FrozenTrial]:
    """Exactly n_trials counted, nothing RUNNING/WAITING, one folder per trained trial, no set trained twice."""
    trials = w.study_trials()
    assert len(counted(trials)) == n_trials, [(t.number, t.state.name, t.user_attrs) for t in trials]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    trainings = w.trainings()
    folders = [t["output_dir"] for t in trainings]
    assert len(folders) == len(set(folders))  # job folder N = trial N, unique across workers
    assert all(Path(f).name == str(t["trial"]) for f, t in zip(folders, trainings, strict=True))
    retried = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
    keys = [(t["x"], t["n"], t["opt"], tuple(t["width"])) for t in trainings if t["trial"] not in retried]
    # A retry of a dead worker's trial trains its parameters again, on purpose; nothing else does.
    by_key = [k for k in keys if keys.count(k) > 1]
    retrained = {(t.params.get("opt"), t.params.get("n")) for t in trials if "retry_of" in t.user_attrs}
    assert all((k[2], k[1]) in retrained for k in by_key), by_key
    # The result files say what the storage says.
    csv_text = (w.tmp / "sweep" / "trials.csv").read_text()
    study = optuna.load_study(study_name=w.study, storage=open_storage(w.storage))
    assert csv_text == trials_csv(study.get_trials(deepcopy=False), 1)
    return trials


def test_three_workers_started_together_on_the_journal(tmp_path: Path) -> None:
    w = Workers(tmp_path, f"journal://{tmp_path / 'study.journal'}")
    for _ in range(3):
        w.start(*DISCRETE, *SEED, "hydra.sweeper.n_trials=9", env={"TOY_SLEEP": "0.3"})
    for code, out in w.wait():
        assert code == 0, out[-3000:]
    trials = check_exact(w, 9)
    assert sum(1 for t in trials if t.user_attrs.get("baseline")) == 1  # the baseline runs once per study
    assert len({t.user_attrs[TrialAttr.WORKER] for t in trials if t.user_attrs.get("duplicate_of") is None}) >= 2
    # 7 distinct trainings at most (6 grid points + the baseline's defaults n=2 sgd are among them): duplicates
    # were reused, not retrained.
    assert len(w.trainings()) <= 6


@pytest.mark.postgres
def test_three_workers_started_together_on_a_fresh_postgresql_database(tmp_path: Path) -> None:
    url = os.environ.get("CLARA_HYDRA_PG_URL")
    if not url:
        pytest.skip("set CLARA_HYDRA_PG_URL (e.g. postgresql://postgres@localhost/postgres) to run")
    sqlalchemy = pytest.importorskip("sqlalchemy")
    pytest.importorskip("psycopg", reason="needs the PostgreSQL driver: pip install -e '.[postgres]'")
    from clara_hydra.sweeper.storage import with_available_driver

    db = f"clara_workers_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(with_available_driver(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE DATABASE {db}"))
    fresh = url.rsplit("/", 1)[0] + "/" + db
    try:
        w = Workers(tmp_path, fresh)
        for _ in range(3):  # all three create Optuna's tables at once
            w.start(*DISCRETE, *SEED, "hydra.sweeper.n_trials=9", env={"TOY_SLEEP": "0.3"})
        for code, out in w.wait():
            assert code == 0, out[-3000:]
        check_exact(w, 9)
    finally:
        sqlalchemy.pool.clear_managers() if hasattr(sqlalchemy.pool, "clear_managers") else None
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        admin.dispose()


def test_a_killed_worker_s_trial_is_retried_by_a_survivor(tmp_path: Path) -> None:
    w = Workers(tmp_path, f"journal://{tmp_path / 'study.journal'}")
    args = ("x=interval(0,1)", *SEED, "hydra.sweeper.n_trials=6", "hydra.sweeper.heartbeat_interval=1")
    victim = w.start(*args, env={"TOY_SLEEP": "2"})
    w.wait_for_training(lambda t: t["pid"] == victim.pid)
    survivor = w.start(*args, env={"TOY_SLEEP": "0.5"})
    victim_trial = w.wait_for_training(lambda t: t["pid"] == victim.pid and t["trial"] > 0)
    os.kill(victim.pid, signal.SIGKILL)  # mid-trial: it sleeps 2 s in every training
    victim.wait()
    code = survivor.wait(timeout=240)
    out = w.output(survivor)
    assert code == 0, out[-3000:]
    trials = check_exact(w, 6)
    dead = next(t for t in trials if t.number == victim_trial["trial"])
    assert (dead.state, dead.user_attrs["fail_reason"]) == (TrialState.FAIL, "interrupted")
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == dead.number)
    assert retry.state == TrialState.COMPLETE and retry.params == dead.params
    assert f"trial {dead.number} failed as interrupted" in out


def test_a_worker_that_joins_later_leaves_the_running_trial_alone(tmp_path: Path) -> None:
    w = Workers(tmp_path, f"journal://{tmp_path / 'study.journal'}")
    args = ("x=interval(0,1)", *SEED, "hydra.sweeper.n_trials=5")
    first = w.start(*args, env={"TOY_SLEEP": "1"})
    w.wait_for_training(lambda t: t["pid"] == first.pid)  # its baseline trial is running now
    w.start(*args, env={"TOY_SLEEP": "0.2"})
    for code, out in w.wait():
        assert code == 0, out[-3000:]
    trials = check_exact(w, 5)
    assert all(t.state == TrialState.COMPLETE for t in trials)  # nothing failed as interrupted
    assert len({t.user_attrs[TrialAttr.WORKER] for t in trials}) == 2


def _overlap(trials: list[optuna.trial.FrozenTrial]) -> bool:
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials if t.datetime_complete)
    return any(b[0] < a[1] for a, b in itertools.pairwise(spans))


def test_workers_2_in_one_command_overlap_and_print_one_line_per_trial(run_toy: Any) -> None:
    sweep = run_toy(
        "x=interval(0,1)", *SEED, "hydra.sweeper.n_trials=6", "hydra.sweeper.workers=2", env={"TOY_SLEEP": "0.8"}
    )
    rows = sweep.trials()
    assert len(rows) == 6 and {r["state"] for r in rows} == {"COMPLETE"}
    assert {r["worker"].split("@")[0] for r in rows} == {"w1", "w2"}
    study = optuna.load_study(study_name="toy", storage=open_storage(sweep.results()["storage"]))
    assert _overlap(study.get_trials(deepcopy=False)), "the two workers' trials ran at the same time"
    lines = [line for line in sweep.output.splitlines() if line.startswith("trial ")]
    assert len(lines) == 6 and all("/6 COMPLETE value=" in line and " · best " in line for line in lines)
    assert all(line.rsplit(" · ", 1)[1].startswith(("w1@", "w2@")) for line in lines)
    assert "Optuna study 'toy': 6 trial(s)" in sweep.output  # the coordinator's summary
    assert {json.loads(t["worker"])["index"] for t in sweep.trainings()} == {1, 2}


def test_two_workers_through_the_joblib_launcher(run_toy: Any) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="needs hydra-joblib-launcher")
    sweep = run_toy(
        "x=interval(0,1)", *SEED, "hydra.sweeper.n_trials=4", "hydra.sweeper.workers=2", "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2", env={"TOY_SLEEP": "0.5"},
    )  # fmt: skip
    rows = sweep.trials()
    assert len(rows) == 4 and {r["state"] for r in rows} == {"COMPLETE"}
    assert {r["worker"].split("@")[0] for r in rows} == {"w1", "w2"}
    assert sorted(p.name for p in (sweep.sweep_dir / "workers").iterdir()) == ["0", "1"]  # the worker jobs


def test_sqlite_with_several_workers_is_refused(run_toy: Any, tmp_path: Path) -> None:
    sweep = run_toy("x=interval(0,1)", "hydra.sweeper.workers=2", "hydra.sweeper.storage=s.db", check=False)
    assert sweep.proc.returncode == 2
    assert "PostgreSQL" in sweep.output and "journal" in sweep.output and "Traceback" not in sweep.output
    assert not (tmp_path / "s.db").exists()


def test_a_sweep_that_cannot_start_leaves_no_study(run_toy: Any, tmp_path: Path) -> None:
    sweep = run_toy("x=interval(0,1)", "hydra/sweeper/sampler=grid", check=False)
    assert sweep.proc.returncode == 2 and "grid sampler needs discrete dimensions" in sweep.output
    journal = tmp_path / "sweep" / "optuna" / "toy.journal"
    assert not journal.exists() or not optuna.get_all_study_names(storage=open_storage(f"journal://{journal}"))


def test_a_new_study_never_writes_into_another_study_s_folder(run_toy: Any, tmp_path: Path) -> None:
    first = run_toy("x=interval(0,1)", "hydra.sweeper.n_trials=1", *SEED)
    before = (first.sweep_dir / "trials.csv").read_text()
    other = run_toy("x=interval(0,1)", "hydra.sweeper.n_trials=1", "hydra.sweeper.study_name=other", check=False)
    assert other.proc.returncode == 2 and "belongs to study 'toy'" in other.output
    assert (first.sweep_dir / "trials.csv").read_text() == before
    storage = open_storage(f"journal://{tmp_path / 'sweep' / 'optuna' / 'other.journal'}")
    assert optuna.get_all_study_names(storage=storage) == []  # and it left no study behind


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_workers_through_optunas_grpc_storage_proxy(tmp_path: Path) -> None:
    """No study lock through the proxy: the check after ask keeps the count exact all the same."""
    import socket

    pytest.importorskip("grpc", reason="needs grpcio")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server_code = (
        "import sys, optuna\n"
        "from optuna.storages.journal import JournalFileBackend, JournalStorage\n"
        "optuna.storages.run_grpc_proxy_server("
        "JournalStorage(JournalFileBackend(sys.argv[1])), host='127.0.0.1', port=int(sys.argv[2]))\n"
    )
    server = subprocess.Popen([sys.executable, "-c", server_code, str(tmp_path / "behind.journal"), str(port)])
    try:
        w = Workers(tmp_path, f"grpc://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait for the proxy to listen
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        for _ in range(2):
            w.start("x=interval(0,1)", *SEED, "hydra.sweeper.n_trials=6", env={"TOY_SLEEP": "0.3"})
        for code, out in w.wait():
            assert code == 0, out[-3000:]
        trials = w.study_trials()
        assert len(counted(trials)) == 6 and not [t for t in trials if not t.state.is_finished()]
        assert len({t.user_attrs[TrialAttr.WORKER] for t in counted(trials)}) == 2
    finally:
        server.terminate()
        server.wait()


def test_two_workers_on_a_seeded_grid_visit_every_point_once(run_toy: Any) -> None:
    """The grid sampler's seed orders the grid: every worker must use the same order (no seed offset)."""
    sweep = run_toy(
        "hydra/sweeper/sampler=grid", "opt=sgd,adam", "n=range(1,4)", "hydra.sweeper.baseline_trial=false",
        "hydra.sweeper.n_trials=6", "hydra.sweeper.workers=2", *SEED, env={"TOY_SLEEP": "0.3"},
    )  # fmt: skip
    rows = sweep.trials()
    assert len(rows) == 6 and not [r for r in rows if r["duplicate_of"]]
    assert len({(r["params_opt"], r["params_n"]) for r in rows}) == 6 == len(sweep.trainings())


def test_two_workers_as_submitit_local_jobs(run_toy: Any) -> None:
    """The SLURM code path (hydra-submitit-launcher), run locally: each submitted job is one worker."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="needs hydra-submitit-launcher")
    sweep = run_toy(
        "x=interval(0,1)", *SEED, "hydra.sweeper.n_trials=4", "hydra.sweeper.workers=2",
        "hydra/launcher=submitit_local", env={"TOY_SLEEP": "0.5"},
    )  # fmt: skip
    rows = sweep.trials()
    assert len(rows) == 4 and {r["state"] for r in rows} == {"COMPLETE"}
    assert {r["worker"].split("@")[0] for r in rows} == {"w1", "w2"}
    assert sorted(p.name for p in (sweep.sweep_dir / "workers").iterdir()) == ["0", "1"]
