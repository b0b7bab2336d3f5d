"""Pins for every private Optuna/Hydra name the sweeper uses (all in clara_hydra/sweeper/_optuna_private.py).

Each test exercises the helper against the real library: a rename or a change of meaning upstream fails here,
with the name in the message, rather than somewhere in a sweep.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from clara_hydra.sweeper import _optuna_private as private

optuna = pytest.importorskip("optuna")


def _studies(tmp_path: Path) -> list[optuna.Study]:
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    storages = [
        optuna.storages.InMemoryStorage(),
        JournalStorage(JournalFileBackend(str(tmp_path / "journal.log"))),
        RDBStorage(f"sqlite:///{tmp_path / 'db.sqlite'}"),
    ]
    return [optuna.create_study(storage=s, study_name="pin") for s in storages]


def test_trial_and_study_ids_are_the_storage_ids(tmp_path: Path) -> None:
    for study in _studies(tmp_path):
        storage = private.storage_of(study)
        assert isinstance(storage, optuna.storages.BaseStorage), "Study._storage is no longer the storage"
        assert private.study_id_of(study) == storage.get_study_id_from_name("pin"), "Study._study_id changed"
        study.ask()
        live = study.ask()
        tid = private.trial_id_of(live)
        assert storage.get_trial(tid).number == live.number == 1, "Trial._trial_id is no longer the storage id"
        frozen = study.get_trials(deepcopy=False)[1]
        assert private.trial_id_of(frozen) == tid, "FrozenTrial._trial_id is no longer the storage id"
        assert storage.get_trial_id_from_study_id_trial_number(private.study_id_of(study), 1) == tid


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_heartbeat_enabled_and_stale_trial_ids(tmp_path: Path) -> None:
    from optuna.storages import RDBStorage

    url = f"sqlite:///{tmp_path / 'hb.sqlite'}"
    assert not private.heartbeat_enabled(RDBStorage(url)), "is_heartbeat_enabled: no interval must mean off"
    assert not private.heartbeat_enabled(optuna.storages.InMemoryStorage())
    storage = RDBStorage(url, heartbeat_interval=1, grace_period=1)
    assert private.heartbeat_enabled(storage), "optuna.storages._heartbeat.is_heartbeat_enabled changed"
    study = optuna.create_study(storage=storage, study_name="hb")
    beating, silent = study.ask(), study.ask()
    storage.record_heartbeat(private.trial_id_of(beating))
    storage.record_heartbeat(private.trial_id_of(silent))
    sid = private.study_id_of(study)
    assert private.stale_trial_ids(storage, sid) == [], "a fresh heartbeat must not be stale"
    time.sleep(2.2)  # the database clock counts whole seconds on SQLite; stale means over grace_period
    storage.record_heartbeat(private.trial_id_of(beating))
    stale = private.stale_trial_ids(storage, sid)
    assert stale == [private.trial_id_of(silent)], f"RDBStorage._get_stale_trial_ids changed meaning: {stale}"


def test_basic_launcher_is_recognised() -> None:
    # The launcher Hydra instantiates is the class its plugin discovery loaded (discovery re-executes the
    # plugin modules), so the check must import the class late, as is_basic_launcher does.
    from hydra.core.plugins import Plugins
    from hydra.plugins.launcher import Launcher

    found = [c for c in Plugins.instance().discover(Launcher) if c.__name__ == "BasicLauncher"]
    assert [c.__module__ for c in found] == ["hydra._internal.core_plugins.basic_launcher"], (
        f"Hydra's basic launcher moved: {found}"
    )
    assert private.is_basic_launcher(found[0]()), "is_basic_launcher no longer recognises Hydra's basic launcher"
    assert not private.is_basic_launcher(object())


@pytest.mark.parametrize(
    ("value", "sep", "text"),
    [
        (0.0003, False, "0.0003"),
        ("dice_loss", False, "dice_loss"),
        ("a b", True, "a\\ b"),
        (True, False, "True"),
        (None, False, "null"),
        ("x,y", True, "x\\,y"),
        ([1, "a"], True, "[1, a]"),
        ([1, "a"], False, "[1,a]"),
    ],
)
def test_override_element_text_is_hydras_formatter(value: object, sep: bool, text: str) -> None:
    assert private.override_element_text(value, space_after_sep=sep) == text, (
        "Override._get_value_element_as_str changed its output"
    )


def test_job_result_is_the_return_value_or_the_exception() -> None:
    from hydra.core.utils import JobReturn, JobStatus

    done = JobReturn(status=JobStatus.COMPLETED, _return_value=0.25)
    assert private.job_result(done) == done.return_value == 0.25, "JobReturn._return_value changed meaning"
    error = ValueError("boom")
    failed = JobReturn(status=JobStatus.FAILED, _return_value=error)
    assert private.job_result(failed) is error, "JobReturn._return_value no longer holds a failed job's exception"
    with pytest.raises(ValueError, match="boom"):
        failed.return_value  # noqa: B018  # the public property re-raises: why the adapter reads the field
