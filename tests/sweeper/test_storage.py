"""Where a study lives: storage settings -> absolute URLs, the stable default journal, opening them."""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf

from clara_hydra.errors import SweepError
from clara_hydra.sweeper.storage import mask_password, open_storage, resolve_storage, stable_sweep_root


def cfg(sweep_dir: str, **top: object) -> OmegaConf:
    return OmegaConf.create({**top, "hydra": {"sweep": {"dir": sweep_dir}, "job": {"name": "train"}}})


DEFAULT = "multirun/${now:%Y-%m-%d}/${now:%H-%M-%S}"


@pytest.mark.parametrize(
    ("sweep_dir", "root"),
    [
        (DEFAULT, "multirun"),  # Hydra's default: the timestamp folders are cut off
        ("runs/${exp}/${now:%Y-%m-%d_%H-%M-%S}", "runs/seed"),  # interpolations before the stamp resolved
        ("runs/exp_${now:%H}", "runs"),
        ("/abs/sweeps/fixed", "/abs/sweeps/fixed"),  # no timestamp: the folder itself is stable
        ("${now:%H}", "."),
    ],
)
def test_stable_sweep_root(sweep_dir: str, root: str, tmp_path: Path) -> None:
    got = stable_sweep_root(cfg(sweep_dir, exp="seed"), tmp_path)
    assert got == (tmp_path / root).resolve() if not root.startswith("/") else got == Path(root)


def test_default_storage_is_a_journal_that_does_not_move_between_reruns(tmp_path: Path) -> None:
    spec = resolve_storage(None, "seed full", cfg(DEFAULT), cwd=str(tmp_path))
    assert spec.url == f"journal://{tmp_path}/multirun/optuna/seed_full.journal"
    assert spec.journal_path == tmp_path / "multirun" / "optuna" / "seed_full.journal"


@pytest.mark.parametrize(
    ("setting", "url"),
    [
        ("sqlite:///x.db", "sqlite:///{tmp}/x.db"),
        ("sqlite:////abs/x.db", "sqlite:////abs/x.db"),
        ("x.db", "sqlite:///{tmp}/x.db"),
        ("journal:///abs/s.journal", "journal:///abs/s.journal"),
        ("journal://rel/s.journal", "journal://{tmp}/rel/s.journal"),
        ("rel/s.journal", "journal://{tmp}/rel/s.journal"),
        ("postgresql://u:pw@localhost/optuna", "postgresql://u:pw@localhost/optuna"),
    ],
)
def test_storage_settings(setting: str, url: str, tmp_path: Path) -> None:
    assert resolve_storage(setting, "s", cfg(DEFAULT), cwd=str(tmp_path)).url == url.format(tmp=tmp_path)


def test_bad_storage_setting() -> None:
    with pytest.raises(SweepError, match=r"hydra\.sweeper\.storage: expected a URL or a path"):
        resolve_storage(3, "s", cfg(DEFAULT))


def test_password_is_masked() -> None:
    assert mask_password("postgresql://user:secret@host:5432/db") == "postgresql://user:***@host:5432/db"
    assert mask_password("sqlite:////a/b.db") == "sqlite:////a/b.db"


@pytest.mark.parametrize("setting", ["s.journal", "s.db"])
def test_open_storage_round_trip(setting: str, tmp_path: Path) -> None:
    url = resolve_storage(f"sub/{setting}", "s", cfg(DEFAULT), cwd=str(tmp_path)).url
    study = optuna.create_study(study_name="s", storage=open_storage(url), load_if_exists=True)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    again = optuna.load_study(study_name="s", storage=open_storage(url))
    assert len(again.trials) == 2


def test_unopenable_storage_is_a_sweep_error() -> None:
    with pytest.raises(SweepError, match="cannot open"):
        open_storage("postgresql://u:pw@127.0.0.1:1/none")


@pytest.mark.postgres
def test_postgres_storage() -> None:
    url = os.environ.get("CLARA_HYDRA_PG_URL")
    if not url:
        pytest.skip("set CLARA_HYDRA_PG_URL (e.g. postgresql://postgres@localhost/optuna) to run")
    pytest.importorskip("psycopg", reason="needs the PostgreSQL driver: pip install -e '.[postgres]'")
    name = f"test_pg_{os.getpid()}"
    study = optuna.create_study(study_name=name, storage=open_storage(url), load_if_exists=True)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(optuna.load_study(study_name=name, storage=open_storage(url)).trials) == 2
    optuna.delete_study(study_name=name, storage=open_storage(url))


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg", "postgresql+psycopg2"])
def test_postgres_url_forms(scheme: str) -> None:
    """The URL forms README lists: plain (SQLAlchemy 2.1 picks psycopg 3, the extra's driver), or a named driver."""
    url = os.environ.get("CLARA_HYDRA_PG_URL")
    if not url:
        pytest.skip("set CLARA_HYDRA_PG_URL (e.g. postgresql://postgres@localhost/optuna) to run")
    driver = {"postgresql": "psycopg", "postgresql+psycopg": "psycopg", "postgresql+psycopg2": "psycopg2"}[scheme]
    pytest.importorskip(driver, reason=f"{scheme}:// needs {driver}")
    form = scheme + "://" + url.split("://", 1)[1]
    storage = open_storage(form)
    assert storage.engine.dialect.driver == driver  # type: ignore[attr-defined]
    name = f"test_pg_form_{os.getpid()}_{driver}"
    optuna.create_study(study_name=name, storage=storage).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert len(optuna.load_study(study_name=name, storage=open_storage(form)).trials) == 1
    optuna.delete_study(study_name=name, storage=storage)
