"""Nothing granted by a storage: deletions stay inside the sweep folder; a storage password is written nowhere."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.distributions import FloatDistribution
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState, create_trial

from clara_hydra.sweeper.checkpoints import prune_checkpoints
from clara_hydra.sweeper.storage import STORAGE_REF, StorageSpec, for_jobs, from_job_config


def _foreign_study(journal: Path, records: dict[str, float]) -> optuna.Study:
    """A study whose trials name the given job folders (a tampered or foreign journal)."""
    journal.parent.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name="toy", storage=JournalStorage(JournalFileBackend(str(journal))))
    for job_dir, value in records.items():
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                value=value,
                params={"x": 0.5},
                distributions={"x": FloatDistribution(0.0, 0.9, step=0.1)},
                user_attrs={"job_dir": job_dir},
            )
        )
    return study


def _checkpoint(folder: Path) -> Path:
    (folder / "models").mkdir(parents=True, exist_ok=True)
    path = folder / "models" / "model.pt"
    path.write_bytes(b"precious")
    return path


def test_keep_best_deletes_nothing_outside_the_sweep_folder(tmp_path: Path, caplog: Any) -> None:
    sweep = tmp_path / "sweep"
    elsewhere = tmp_path / "elsewhere"
    outside = _checkpoint(elsewhere / "a")
    behind_link = _checkpoint(elsewhere / "b")
    sweep.mkdir()
    (sweep / "7").symlink_to(elsewhere / "b")  # a job folder that is a symlink pointing out
    inside_link = _checkpoint(sweep / "3")
    (sweep / "3" / "models" / "out").symlink_to(elsewhere / "a" / "models")  # a symlink inside a job folder
    mine = _checkpoint(sweep / "4")
    best = _checkpoint(sweep / "0")
    study = _foreign_study(
        sweep / "optuna" / "toy.journal",
        {
            str(sweep / "0"): 0.1,
            str(elsewhere / "a"): 5.0,
            str(sweep / "7"): 6.0,
            str(sweep / "3"): 7.0,
            str(sweep / "4" / ".." / ".." / "elsewhere" / "a"): 8.0,
            str(sweep / "4"): 9.0,
            str(sweep): 10.0,
            "/": 11.0,
        },
    )
    with caplog.at_level("WARNING"):
        deleted = prune_checkpoints(study, 1, sweep)
    assert outside.exists() and behind_link.exists() and best.exists()
    assert not mine.exists() and not inside_link.exists()
    assert sorted(deleted) == sorted([mine.resolve(), inside_link.resolve()])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "not inside the sweep folder" in warnings[0], warnings
    for number in (1, 2, 4, 6, 7):
        assert f"trial {number}:" in warnings[0]
    caplog.clear()
    prune_checkpoints(study, 1, sweep)  # warned once per trial, not after every batch
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


@pytest.mark.slow
def test_a_resumed_sweep_on_a_tampered_journal_deletes_nothing_outside(run_toy: Any, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    elsewhere = tmp_path / "elsewhere"
    outside = _checkpoint(elsewhere / "a")
    behind_link = _checkpoint(elsewhere / "b")
    sweep.mkdir()
    (sweep / "9").symlink_to(elsewhere / "b")
    study = _foreign_study(sweep / "optuna" / "toy.journal", {str(elsewhere / "a"): 5.0, str(sweep / "9"): 6.0})
    study.set_user_attr("sweep_dir", str(sweep))
    result = run_toy("x=range(0,1,step=0.1)", "hydra.sweeper.n_trials=5", "hydra.sweeper.keep_best=1")
    assert outside.read_bytes() == b"precious" and behind_link.read_bytes() == b"precious"
    assert result.output.count("not inside the sweep folder") == 1, result.output
    jobs = [p for p in sweep.glob("[0-9]*") if not p.is_symlink()]
    remaining = [p for p in jobs if (p / "models" / "model.pt").exists()]
    assert len(remaining) == 1  # inside the sweep folder keep_best still works: only the best keeps its file


def test_a_url_with_a_password_goes_to_jobs_by_reference() -> None:
    plain = StorageSpec("journal:///tmp/x.journal")
    assert for_jobs(plain) == plain.url
    assert from_job_config(plain.url, "s") == plain.url
    secret = StorageSpec("postgresql://u:pw@h/db")
    assert for_jobs(secret) == STORAGE_REF


@pytest.mark.slow
@pytest.mark.postgres
def test_a_storage_password_is_written_nowhere(run_toy: Any, tmp_path: Path) -> None:
    url = os.environ.get("CLARA_HYDRA_PG_URL")
    if not url:
        pytest.skip("set CLARA_HYDRA_PG_URL (e.g. postgresql://postgres@localhost/postgres) to run")
    password = f"pw-{uuid.uuid4().hex[:12]}"
    # The CI server trusts local connections: the password is carried, not checked, which is all this test needs.
    rest = url.split("://", 1)[1].split("@", 1)[-1]
    user = url.split("://", 1)[1].split("@", 1)[0].split(":")[0] if "@" in url else "postgres"
    secret_url = f"postgresql://{user}:{password}@{rest}"
    study = f"secret_{uuid.uuid4().hex[:8]}"
    result = run_toy(
        "x=range(0,1,step=0.1)",
        "hydra.sweeper.storage=${oc.env:OPTUNA_DB}",
        f"hydra.sweeper.study_name={study}",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.keep_best=1",
        "steps=2",
        env={"OPTUNA_DB": secret_url, "TOY_REOPEN": "1"},  # jobs reopen the trial from the storage
    )
    assert password not in result.output
    assert f"{user}:***@" in result.output
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "hydra.yaml" for p in files)
    leaks = [str(p) for p in files if password.encode() in p.read_bytes()]
    assert not leaks
    # The jobs did reach the study through the reference (the pruner saw their intermediate values).
    stored = optuna.load_study(study_name=study, storage=secret_url)
    trained = [t for t in stored.trials if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs]
    assert trained and all(t.intermediate_values for t in trained)
    job_configs = sorted(result.sweep_dir.glob("*/.hydra/hydra.yaml"))
    assert job_configs and all(STORAGE_REF in OmegaConf.to_yaml(OmegaConf.load(p)) for p in job_configs)
    optuna.delete_study(study_name=study, storage=secret_url)
