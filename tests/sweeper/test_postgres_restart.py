"""A PostgreSQL server restarted while a sweep runs: the sweep carries on and ends with exactly n_trials.

The tests start their own throw-away server (``initdb`` under /tmp, port 54345 or a free one) so they can
stop and start it; skipped where PostgreSQL's programs are missing or cannot run here. The server is
stopped while a trial runs (the toy job sleeps), for long enough that the sweeper's heartbeat, the job's
report and the sweeper's tell/ask all meet the outage, then started again.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.sweeper.conftest import TOY_APP

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _port() -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 54345))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A PostgreSQL server this module owns."""

    ctl: list[str]
    options: list[str]
    port: int

    def stop(self) -> None:
        subprocess.run([*self.ctl, "-m", "fast", "-w", "stop"], check=True, capture_output=True)

    def start(self) -> None:
        subprocess.run([*self.ctl, *self.options, "-w", "start"], check=True, capture_output=True)

    def new_database(self) -> str:
        """A fresh database (each test its own study); its URL."""
        import psycopg

        name = "t" + uuid.uuid4().hex[:10]
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    pytest.importorskip("psycopg", reason="needs the PostgreSQL driver: pip install -e '.[postgres]'")
    bindir = _bindir()
    if not bindir:
        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed")
    # Under /tmp, not pytest's folder: that one is private to this user, and the server may run as another.
    data = Path(tempfile.mkdtemp(prefix="clara-hydra-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user (as .ci/run does)
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL")
        shutil.chown(data, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _port()
    init = subprocess.run(
        [*as_user, f"{bindir}/initdb", "-D", str(data), "-A", "trust", "-U", "postgres"], capture_output=True, text=True
    )
    if init.returncode != 0:
        shutil.rmtree(data, ignore_errors=True)
        pytest.skip(f"initdb failed here: {init.stderr[-300:]}")
    srv = Server(
        ctl=[*as_user, f"{bindir}/pg_ctl", "-D", str(data), "-l", str(data / "log")],
        options=["-o", f"-p {port} -k /tmp -c listen_addresses=127.0.0.1"],
        port=port,
    )
    srv.start()
    try:
        yield srv
    finally:
        subprocess.run([*srv.ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def _command(url: str, tmp_path: Path) -> list[str]:
    return [
        sys.executable,
        str(TOY_APP),
        "-m",
        "x=interval(0,1)",
        "hydra.sweeper.n_trials=4",
        f"hydra.sweeper.storage={url}",
        "hydra.sweeper.heartbeat_interval=1",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "steps=2",
    ]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOY_", "CLARA_HYDRA_OPTUNA", "CLARA_HYDRA_STO"))}
    env.update(TOY_LOG=str(tmp_path / "toy.log"), **extra)
    return env


def _wait_for_trainings(log: Path, n: int, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    """Until the n-th toy training has started (its job is running now)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if log.exists() and len(log.read_text().splitlines()) >= n:
            return
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.05)
    raise AssertionError(f"training {n} did not start in {timeout} s")


def _states(url: str) -> list[str]:
    import optuna

    study = optuna.load_study(study_name="toy", storage=url)
    return [t.state.name for t in study.trials]


def test_a_sweep_survives_a_postgresql_restart(server: Server, tmp_path: Path) -> None:
    url = server.new_database()
    log = tmp_path / "toy.log"
    proc = subprocess.Popen(
        _command(url, tmp_path),
        cwd=tmp_path,
        env=_env(tmp_path, TOY_SLEEP="1.5", TOY_REOPEN="1"),  # jobs reopen their trial, as in another process
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for_trainings(log, 2, proc)  # trial 1 runs, trial 0 was told through the storage
        server.stop()  # the job's report, the heartbeat, the tell and the next ask all meet the outage
        time.sleep(3)
        server.start()
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
        if subprocess.run([*server.ctl, "status"], capture_output=True).returncode:  # stopped: the next test needs it
            server.start()
    assert proc.returncode == 0, out[-4000:]
    assert "Traceback" not in out, out[-4000:]
    assert out.count("storage unreachable (PostgreSQL at 127.0.0.1:") == 1, out[-4000:]
    assert "storage reachable again" in out, out[-4000:]
    assert _states(url) == ["COMPLETE"] * 4  # nothing lost, nothing duplicated
    trained = [json.loads(line)["trial"] for line in log.read_text().splitlines()]
    assert sorted(trained) == [0, 1, 2, 3], trained  # each trial trained once


def test_an_outage_longer_than_the_bound_stops_the_sweep_and_the_rerun_completes(
    server: Server, tmp_path: Path
) -> None:
    url = server.new_database()
    log = tmp_path / "toy.log"
    env = _env(tmp_path, TOY_SLEEP="1", CLARA_HYDRA_STORAGE_RETRY="3")
    proc = subprocess.Popen(
        _command(url, tmp_path), cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        _wait_for_trainings(log, 2, proc)
        server.stop()
        out, _ = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.start()
    assert proc.returncode == 2, out[-4000:]
    assert "Traceback" not in out, out[-4000:]
    assert "storage unreachable for " in out and "(PostgreSQL at 127.0.0.1:" in out, out[-3000:]
    assert "rerun the same command" in out, out[-3000:]

    again = subprocess.run(_command(url, tmp_path), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90)
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    states = _states(url)
    assert states.count("COMPLETE") == 4, states
    assert "RUNNING" not in states and "WAITING" not in states, states


class _LoseReplies:
    """Writes that commit but whose reply is lost (a network cut between the server's commit and its answer): the
    next ``n`` commits that wrote something are committed by the driver, then the driver raises the error psycopg
    raises for a dropped connection. Injected at the dialect's ``do_commit``, below SQLAlchemy and Optuna."""

    def __init__(self, storage: object, n: int) -> None:
        from sqlalchemy import event

        self.left = n
        self.wrote = False
        self.engine = storage.engine  # type: ignore[attr-defined]
        self.dialect = self.engine.dialect
        self.real_commit = self.dialect.do_commit
        self.dialect.do_commit = self.commit
        event.listen(self.engine, "before_cursor_execute", self.executed)

    def executed(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.wrote = self.wrote or statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))

    def commit(self, dbapi_connection: Any) -> None:
        import psycopg

        self.real_commit(dbapi_connection)
        wrote, self.wrote = self.wrote, False
        if wrote and self.left > 0:
            self.left -= 1
            raise psycopg.OperationalError("server closed the connection unexpectedly")

    def remove(self) -> None:
        from sqlalchemy import event

        del self.dialect.do_commit
        event.remove(self.engine, "before_cursor_execute", self.executed)


def test_repeated_writes_after_lost_replies_do_not_duplicate(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    import optuna

    from clara_hydra.sweep_record import TrialAttr
    from clara_hydra.sweeper.storage import open_storage

    storage = open_storage(server.new_database())
    study = optuna.create_study(study_name="toy", storage=storage)
    # create_new_trial: Optuna repeats a failed commit by itself; the copy it made is closed at once.
    lose = _LoseReplies(storage, 1)
    trial = study.ask()
    lose.remove()
    trials = study.get_trials(deepcopy=False)
    assert [t.state.name for t in trials] == ["RUNNING", "FAIL"], trials
    assert trials[0].number == trial.number and trials[1].user_attrs[TrialAttr.FAIL_REASON] == "interrupted"
    assert "a lost database reply made Optuna create trial ids" in caplog.text
    # set_trial_state_values: the finished state went through; its repetition is refused by Optuna, that is success.
    trial.suggest_float("x", 0, 1)
    lose = _LoseReplies(storage, 1)
    study.tell(trial, 0.5)
    lose.remove()
    assert study.trials[0].state.name == "COMPLETE" and study.trials[0].value == 0.5
    # an attribute written twice is the same attribute
    lose = _LoseReplies(storage, 1)
    study.set_user_attr("k", 1)
    lose.remove()
    assert study.user_attrs == {"k": 1}
    # the budget: the closed copy counts as interrupted, never as a trial
    from clara_hydra.sweeper.resume import budget_used

    assert budget_used(study) == 1
    # a storage sent to another process (pickled) is the same kind of storage, watching its own sessions
    import pickle

    from clara_hydra.sweeper.retrying_storage import RetryingStorage

    copy = pickle.loads(pickle.dumps(storage))
    assert isinstance(copy, RetryingStorage) and copy._inner._backend is copy.rdb
    again = optuna.load_study(study_name="toy", storage=copy)
    lose = _LoseReplies(copy, 1)
    again.ask()
    lose.remove()
    assert [t.state.name for t in again.get_trials(deepcopy=False)] == ["COMPLETE", "FAIL", "RUNNING", "FAIL"]


def test_opening_waits_for_the_server_only_when_asked(server: Server) -> None:
    import threading

    import optuna

    from clara_hydra.errors import SweepError
    from clara_hydra.sweeper.storage import open_storage

    url = server.new_database()
    optuna.create_study(study_name="toy", storage=open_storage(url))
    server.stop()
    try:
        started = time.monotonic()
        with pytest.raises(SweepError, match=r"cannot open postgresql://postgres@127\.0\.0\.1:\d+/\w+: .*refused"):
            open_storage(url)  # a sweep that starts: reported at once
        assert time.monotonic() - started < 5
        threading.Timer(2, server.start).start()
        storage = open_storage(url, wait=True)  # a job reopening its trial: waits
        assert optuna.load_study(study_name="toy", storage=storage).trials == []
    finally:
        if subprocess.run([*server.ctl, "status"], capture_output=True).returncode:
            server.start()
