"""The coordination contract (clara_hydra/sweeper/coordination/_base.py) on every storage kind.

One parametrised supplier (``backend``) opens each real Optuna storage the way the sweeper does
(``open_storage``), the way Optuna tests its storages (optuna/testing/storages.py): the journal file, SQLite,
PostgreSQL (when ``CLARA_HYDRA_PG_URL`` is set; .ci/run sets it) and Optuna's gRPC storage proxy (a proxy
server in a subprocess, in front of a journal file). Every test below runs on each of them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from clara_hydra.sweep_record import SystemAttr, TrialAttr
from clara_hydra.sweeper._optuna_private import storage_of, trial_id_of
from clara_hydra.sweeper.coordination import Coordinator, coordinator_for
from clara_hydra.sweeper.heartbeat import Heartbeat, fail_stale
from clara_hydra.sweeper.storage import resolve_storage

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

GRACE = 2  # seconds


@dataclass
class Backend:
    """One storage kind: how to open it (again, in this or another process) and what the contract says of it."""

    name: str
    url: str  # the canonical URL open_storage takes
    journal: Path | None  # StorageSpec.journal_path
    locks: bool  # whether the study lock excludes other holders (another process included)

    def open(self) -> Any:
        from clara_hydra.sweeper.storage import open_storage

        return open_storage(self.url, heartbeat_interval=1, grace_period=GRACE)

    def coordinator(self, storage: Any) -> Coordinator:
        return coordinator_for(storage, self.journal)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(params=["journal", "sqlite", "postgresql", "grpc"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The supplier: every storage kind the sweeper coordinates on."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({})
    kind = request.param
    if kind == "journal":
        spec = resolve_storage(str(tmp_path / "s.journal"), "s", cfg, cwd=str(tmp_path))
        yield Backend(kind, spec.url, spec.journal_path, locks=True)
    elif kind == "sqlite":
        spec = resolve_storage(str(tmp_path / "s.db"), "s", cfg, cwd=str(tmp_path))
        # workers>1 is refused on SQLite (runner), so no other process asks on it: no lock needed.
        yield Backend(kind, spec.url, spec.journal_path, locks=False)
    elif kind == "postgresql":
        url = os.environ.get("CLARA_HYDRA_PG_URL")
        if not url:
            pytest.skip("set CLARA_HYDRA_PG_URL to run (.ci/run does)")
        pytest.importorskip("psycopg", reason="needs the PostgreSQL driver: pip install -e '.[postgres]'")
        yield Backend(kind, url, None, locks=True)
    else:
        pytest.importorskip("grpc", reason="needs grpcio")
        port = _free_port()
        code = (
            "import sys, optuna\n"
            "from optuna.storages.journal import JournalFileBackend, JournalStorage\n"
            "optuna.storages.run_grpc_proxy_server("
            "JournalStorage(JournalFileBackend(sys.argv[1])), host='127.0.0.1', port=int(sys.argv[2]))\n"
        )
        server = subprocess.Popen(
            [sys.executable, "-W", "ignore", "-c", code, str(tmp_path / "behind.journal"), str(port)],
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.1)
            yield Backend(kind, f"grpc://127.0.0.1:{port}", None, locks=False)
        finally:
            server.terminate()
            server.wait()


def _study(storage: Any) -> optuna.Study:
    name = f"c_{os.getpid()}_{time.time_ns()}"  # unique: a PostgreSQL database is shared between runs
    return optuna.create_study(study_name=name, storage=storage)


def test_the_kind_says_whether_it_locks(backend: Backend) -> None:
    coordinator = backend.coordinator(backend.open())
    assert coordinator.locks is backend.locks, coordinator.kind
    with coordinator.study_lock("s") as held:
        assert held is backend.locks
        if not held:
            # An unlocked kind excludes nothing: a second holder enters at once (callers check after ask).
            with coordinator.study_lock("s") as again:
                assert again is False


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from clara_hydra.sweeper.coordination import coordinator_for
    from clara_hydra.sweeper.storage import open_storage
    url, journal, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    coordinator = coordinator_for(open_storage(url), Path(journal) if journal else None)
    out.write_text("waiting")
    with coordinator.study_lock("s") as held:
        out.write_text(f"held {held} {time.time()}")
    """
)


def test_the_lock_excludes_a_holder_in_another_process(backend: Backend, tmp_path: Path) -> None:
    if not backend.locks:
        pytest.skip(f"{backend.name}: no study lock (the check-after-ask fallback)")
    coordinator = backend.coordinator(backend.open())
    out = tmp_path / "other.txt"
    with coordinator.study_lock("s") as held:
        assert held
        other = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, backend.url, str(backend.journal or ""), str(out)],
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        deadline = time.monotonic() + 60
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # the other process is waiting for the lock now
        assert out.read_text() == "waiting", "a second process entered the study lock while it was held"
        released = time.time()
    assert other.wait(timeout=60) == 0
    held_text, when = out.read_text().rsplit(" ", 1)
    assert held_text == "held True" and float(when) >= released


def test_the_lock_excludes_a_second_holder_in_this_process(backend: Backend) -> None:
    if not backend.locks:
        pytest.skip(f"{backend.name}: no study lock (the check-after-ask fallback)")
    first, second = backend.coordinator(backend.open()), backend.coordinator(backend.open())
    entered = threading.Event()

    def take() -> None:
        with second.study_lock("s"):
            entered.set()

    with first.study_lock("s"):
        thread = threading.Thread(target=take)
        thread.start()
        assert not entered.wait(1.5), "a second holder entered the study lock while it was held"
    thread.join(timeout=30)
    assert entered.is_set()


def test_a_heartbeat_keeps_a_trial_alive_and_its_absence_makes_it_stale(backend: Backend) -> None:
    storage = backend.open()
    study = _study(storage)
    beat = Heartbeat(storage, interval=1)
    try:
        beating, silent = study.ask(), study.ask()
        for trial, worker in ((beating, "w1@elsewhere"), (silent, "w2@elsewhere")):
            beat.claim(trial, worker)
            # A worker on another machine: judged by its heartbeat alone, not by its pid.
            storage.set_trial_system_attr(trial_id_of(trial), SystemAttr.WORKER_HOST, "elsewhere")
        beat.release(trial_id_of(silent))  # its worker stops beating (died)
        other = optuna.load_study(study_name=study.study_name, storage=backend.open())
        judge = backend.coordinator(storage_of(other))  # Optuna's cache in front of the storage: same kind
        assert judge.stale_trials(other, GRACE, mine=set()) == []  # both beat within the grace period
        time.sleep(GRACE + 2.5)
        stale = [t.number for t, _ in judge.stale_trials(other, GRACE, mine=set())]
        assert stale == [silent.number], f"{backend.name}: stale {stale}"
        assert fail_stale(other, GRACE, mine=set(), retry=True) == [silent.number]
        assert fail_stale(study, GRACE, mine=set(), retry=True) == []  # one worker wins the race
        states = {t.number: t.state for t in other.get_trials(deepcopy=False)}
        assert states[silent.number] == TrialState.FAIL and states[beating.number] == TrialState.RUNNING
        assert other.get_trials(deepcopy=False)[-1].user_attrs[TrialAttr.RETRY_OF] == silent.number
    finally:
        beat.stop()


def test_a_trial_of_mine_is_never_stale(backend: Backend) -> None:
    storage = backend.open()
    study = _study(storage)
    trial = study.ask()
    coordinator = backend.coordinator(storage)
    tid = coordinator.claim(trial, "w1@elsewhere")
    assert tid == trial_id_of(trial)
    storage.set_trial_system_attr(tid, SystemAttr.WORKER_HOST, "elsewhere")
    storage.set_trial_system_attr(tid, SystemAttr.HEARTBEAT, time.time() - 3600)
    assert coordinator.stale_trials(study, GRACE, mine={tid}) == []
    assert storage_of(study).get_trial(tid).user_attrs[TrialAttr.WORKER] == "w1@elsewhere"


def test_a_beat_on_a_finished_trial(backend: Backend) -> None:
    storage = backend.open()
    study = _study(storage)
    trial = study.ask()
    coordinator = backend.coordinator(storage)
    coordinator.claim(trial, "w1@here")
    study.tell(trial, 1.0)
    if coordinator.optuna_heartbeat:  # Optuna's heartbeat table: recorded harmlessly, never judged stale
        coordinator.beat(trial_id_of(trial))
        assert coordinator.stale_trials(study, 0, mine=set()) == []
        return
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        coordinator.beat(trial_id_of(trial))


def test_the_kind_is_chosen_by_what_the_storage_is(backend: Backend) -> None:
    coordinator = backend.coordinator(backend.open())
    expected = {"journal": "journal file", "sqlite": "RDB", "postgresql": "RDB", "grpc": "no study lock"}
    assert coordinator.kind == expected[backend.name]
    assert coordinator.optuna_heartbeat is (backend.name in ("sqlite", "postgresql"))
