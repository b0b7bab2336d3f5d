"""Nothing lost: a torn journal tail is repaired; a full disk fails the trial, stops the sweep, and resumes.

The full disk is real: a small tmpfs mounted under the test's folder (root only; skipped otherwise).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from clara_hydra.sweeper.disk import DiskFullError, is_disk_full, mount_point
from clara_hydra.sweeper.journal import SafeJournalFileBackend, repair_tail

TORN = b'{"op_code":4,"worker_id":"abc","trial_id":3,"user_attr":{"job_d'


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return proc.returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs (a real file system that fills up), unmounted afterwards."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "16m"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount -t tmpfs): the full-disk test needs a real one")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _study(journal: Path, name: str = "toy") -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(journal)))
    return optuna.load_study(study_name=name, storage=storage)


def _counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    out = []
    for t in study.get_trials():
        reason = str(t.user_attrs.get("fail_reason", ""))
        if t.state.is_finished() and not (
            t.state == TrialState.FAIL and (reason == "interrupted" or reason.startswith("disk full"))
        ):
            out.append(t)
    return out


# ----------------------------------------------------------------------------- the journal itself
def test_torn_tail_is_moved_aside_and_cut(tmp_path: Path) -> None:
    journal = tmp_path / "s.journal"
    storage = JournalStorage(SafeJournalFileBackend(str(journal)))
    study = optuna.create_study(study_name="s", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    whole = journal.read_bytes()
    with open(journal, "ab") as f:
        f.write(TORN)
    aside = repair_tail(journal)
    assert aside is not None and aside.read_bytes() == TORN
    assert journal.read_bytes() == whole
    assert repair_tail(journal) is None  # nothing left to repair
    assert len(_study(journal, "s").trials) == 3


def test_a_half_line_glued_to_a_record_is_cut_too(tmp_path: Path) -> None:
    """An older writer appended a whole record after a torn one: that line is no record either."""
    journal = tmp_path / "s.journal"
    storage = JournalStorage(SafeJournalFileBackend(str(journal)))
    optuna.create_study(study_name="s", storage=storage).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    whole = journal.read_bytes()
    glued = TORN + b'{"op_code":0,"worker_id":"w"}\n'
    with open(journal, "ab") as f:
        f.write(glued)
    # Ours repairs it on open (Optuna's own would fail on the next record appended after it).
    study = optuna.load_study(study_name="s", storage=JournalStorage(SafeJournalFileBackend(str(journal))))
    assert len(study.trials) == 2
    assert journal.read_bytes() == whole
    assert [p.read_bytes() for p in tmp_path.glob("s.journal.torn-*")] == [glued]


def test_an_append_after_a_torn_tail_from_another_writer_repairs_first(tmp_path: Path) -> None:
    journal = tmp_path / "s.journal"
    storage = JournalStorage(SafeJournalFileBackend(str(journal)))
    study = optuna.create_study(study_name="s", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    with open(journal, "ab") as f:  # a writer killed mid-line while this process keeps the study open
        f.write(TORN)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert len(_study(journal, "s").trials) == 2


def test_a_failed_append_leaves_no_half_line(small_disk: Path) -> None:
    journal = small_disk / "s.journal"
    storage = JournalStorage(SafeJournalFileBackend(str(journal)))
    study = optuna.create_study(study_name="s", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    filler = small_disk / "filler"
    with pytest.raises(OSError) as info, open(filler, "wb") as f:
        while True:
            f.write(b"0" * (1 << 16))
            f.flush()
    assert is_disk_full(info.value)
    big = {"blob": "x" * 200_000}  # larger than what is left: the write is cut short by ENOSPC
    trial = study.ask()
    with pytest.raises(OSError) as info2:
        trial.set_user_attr("big", big)
    assert is_disk_full(info2.value)
    assert journal.read_bytes().endswith(b"\n")
    filler.unlink()
    assert len(_study(journal, "s").trials) == 3  # the asked trial, its failed attribute absent
    assert mount_point(journal) == small_disk


def test_the_torn_bytes_are_not_cut_when_they_cannot_be_kept(small_disk: Path) -> None:
    journal = small_disk / "s.journal"
    JournalStorage(SafeJournalFileBackend(str(journal)))
    with open(journal, "ab") as f:
        f.write(b'{"op_code":0,"worker_id":"w","study_name":"s","directions":[1]}\n' + TORN)
    before = journal.read_bytes()
    filler = small_disk / "filler"
    with pytest.raises(OSError), open(filler, "wb") as f:
        while True:
            f.write(b"0" * (1 << 16))
            f.flush()
    with pytest.raises(DiskFullError, match=r"torn record.*disk full at"):
        repair_tail(journal)
    assert journal.read_bytes() == before
    filler.unlink()
    assert repair_tail(journal) is not None


# ----------------------------------------------------------------------------- whole sweeps
@pytest.mark.slow
def test_a_torn_journal_tail_is_repaired_and_the_sweep_resumes_to_n_trials(run_toy: Any, tmp_path: Path) -> None:
    first = run_toy("x=range(0,1,step=0.1)", "hydra.sweeper.n_trials=3")
    journal = first.sweep_dir / "optuna" / "toy.journal"
    with open(journal, "ab") as f:
        f.write(TORN)
    again = run_toy("x=range(0,1,step=0.1)", "hydra.sweeper.n_trials=5")
    assert again.output.count("torn record") == 1, again.output
    kept = list(journal.parent.glob("toy.journal.torn-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == TORN
    assert str(kept[0]) in again.output
    study = _study(journal)
    assert len(_counted(study)) == 5
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]


@pytest.mark.slow
@pytest.mark.parametrize("switch", ["TOY_FILL_AT", "TOY_FILL_QUIET_AT"])
def test_a_full_disk_fails_the_trial_stops_with_exit_2_and_resumes(
    run_toy: Any, small_disk: Path, tmp_path: Path, switch: str
) -> None:
    """TOY_FILL_AT: the job's checkpoint fills the disk; TOY_FILL_QUIET_AT: the sweeper's own write meets it."""
    args = ("x=range(0,1,step=0.1)", "hydra.sweeper.n_trials=4", f"hydra.sweep.dir={small_disk / 'sweep'}")
    full = run_toy(*args, env={switch: "2"}, check=False, sweep_dir=None)
    out = full.output
    assert full.proc.returncode == 2, out[-4000:]
    assert "Traceback" not in out, out[-4000:]
    assert f"file system mounted at {small_disk}" in out and "MB free of" in out, out[-3000:]
    assert "free space on that disk" in out
    journal = small_disk / "sweep" / "optuna" / "toy.journal"
    study = _study(journal)
    states = {t.number: t.state for t in study.trials}
    assert TrialState.RUNNING not in states.values(), states
    if switch == "TOY_FILL_AT":  # the job met the full disk: its trial fails with the disk's report
        failed = study.trials[2]
        assert failed.state == TrialState.FAIL
        assert str(failed.user_attrs["fail_reason"]).startswith("disk full at"), failed.user_attrs
        assert str(small_disk) in failed.user_attrs["fail_reason"]
    # (TOY_FILL_QUIET_AT: the job's outcome was recorded in the journal's last free bytes; the sweeper's
    # result files met the full disk, so the sweep stopped there.)
    # Free the space and run the same command again: the study resumes to exactly n_trials.
    for filler in (small_disk / "sweep").rglob("filler.pt"):
        filler.unlink()
    again = run_toy(*args, sweep_dir=None)
    study = _study(journal)
    assert len(_counted(study)) == 4, [(t.number, t.state, t.user_attrs) for t in study.trials]
    assert not [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    if switch == "TOY_FILL_AT":
        retried = [t for t in study.trials if t.user_attrs.get("retry_of") == 2]
        assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert (small_disk / "sweep" / "optuna" / "toy.journal.reserve").exists()  # made again for the next time
    assert again.proc.returncode == 0
    rows = (small_disk / "sweep" / "trials.csv").read_text().splitlines()
    assert len(rows) == 1 + len(study.trials)


@pytest.mark.slow
def test_a_disk_full_before_the_first_trial_is_one_compact_message(run_toy: Any, small_disk: Path) -> None:
    with pytest.raises(OSError), open(small_disk / "filler", "wb") as f:
        while True:
            f.write(b"0" * (1 << 16))
            f.flush()
    args = ("x=range(0,1,step=0.1)", "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={small_disk / 'sweep'}")
    full = run_toy(*args, check=False, sweep_dir=None)
    assert full.proc.returncode == 2, full.output[-3000:]
    assert "Traceback" not in full.output and "disk full at" in full.output, full.output[-3000:]
    assert f"file system mounted at {small_disk}" in full.output
    (small_disk / "filler").unlink()
    run_toy(*args, sweep_dir=None)
    study = _study(small_disk / "sweep" / "optuna" / "toy.journal")
    assert len(_counted(study)) == 2
