"""``hydra.sweeper.warm_start``: a new study starts with an earlier study's finished trials that fit its space,
the earlier best retried as trial 0; what no longer fits is listed and skipped; a bad source is a compact error."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from clara_hydra.errors import SweepError
from clara_hydra.sweep_record import StudyAttr, TrialAttr
from clara_hydra.sweeper.space import SearchSpace
from clara_hydra.sweeper.storage import open_storage
from clara_hydra.sweeper.warm_start import (
    WarmStartSource,
    fit_value,
    parse_warm_start,
    seed_study,
)

BASE = ("hydra.sweeper.sampler.seed=0",)


# ---------------------------------------------------------------- the setting
@pytest.mark.parametrize(
    ("text", "target", "study"),
    [
        ("multirun/2026-01-01/12-00-00", "multirun/2026-01-01/12-00-00", None),
        ("multirun/sweep:toy", "multirun/sweep", "toy"),
        ("sqlite:///studies/x.db", "sqlite:///studies/x.db", None),
        ("sqlite:///studies/x.db:toy", "sqlite:///studies/x.db", "toy"),
        ("journal:///abs/x.journal:toy_2", "journal:///abs/x.journal", "toy_2"),
        ("postgresql://u:pw@host:5432/db", "postgresql://u:pw@host:5432/db", None),
        ("postgresql://u:pw@host/db:toy", "postgresql://u:pw@host/db", "toy"),
        ("redis://host:6379", "redis://host:6379", None),
        ("x.journal", "x.journal", None),
    ],
)
def test_the_study_suffix(text: str, target: str, study: str | None) -> None:
    assert parse_warm_start(text) == WarmStartSource(target, study)


@pytest.mark.parametrize("value", ["", "  ", 3, True])
def test_a_bad_setting_is_a_compact_error(value: Any) -> None:
    with pytest.raises(SweepError, match=r"hydra.sweeper.warm_start: expected a sweep folder or a storage, got"):
        parse_warm_start(value)


@pytest.mark.parametrize(
    ("value", "dist", "fitted", "why"),
    [
        ("sgd", CategoricalDistribution(["sgd", "adam"]), "sgd", ""),
        ("rmsprop", CategoricalDistribution(["sgd", "adam"]), None, "is not one of the choices ['sgd', 'adam']"),
        (1, CategoricalDistribution([True, False]), None, "is not one of the choices [True, False]"),
        (2.0, CategoricalDistribution([1, 2]), 2, ""),
        (0.25, FloatDistribution(0.0, 0.5), 0.25, ""),
        (0.75, FloatDistribution(0.0, 0.5), None, "lies outside [0.0, 0.5]"),
        (0.3, FloatDistribution(0.1, 0.5, step=0.1), 0.3, ""),
        (0.25, FloatDistribution(0.1, 0.5, step=0.1), None, "is not on the step of [0.1, 0.5] step 0.1"),
        (3, FloatDistribution(1.0, 5.0), 3.0, ""),
        (4, IntDistribution(2, 8, step=2), 4, ""),
        (5, IntDistribution(2, 8, step=2), None, "is not on the step of [2, 8] step 2"),
        (4.5, IntDistribution(2, 8), None, "is not an integer, the space needs [2, 8]"),
        ("adam", IntDistribution(2, 8), None, "is not a number, the space needs [2, 8]"),
        (1e-3, FloatDistribution(1e-4, 1e-2, log=True), 1e-3, ""),
    ],
)
def test_what_fits_the_current_space(value: Any, dist: Any, fitted: Any, why: str) -> None:
    got, reason = fit_value(value, dist)
    assert (got, reason) == (fitted, why) and type(got) is type(fitted)


# ---------------------------------------------------------------- the earlier study
def earlier_study(path: Path, name: str = "earlier", direction: str = "minimize") -> str:
    """A journal study with hand-made trials of the toy app's space (x in [0, 1], opt, n)."""
    url = f"journal://{path}"
    study = optuna.create_study(study_name=name, storage=open_storage(url), direction=direction)
    x, opt, n = FloatDistribution(0.0, 1.0), CategoricalDistribution(["sgd", "adam", "rmsprop"]), IntDistribution(1, 3)

    def trial(value: float | None, state: TrialState = TrialState.COMPLETE, **params: Any) -> Any:
        dists = {"x": x, "opt": opt, "n": n}
        return create_trial(params=params, distributions={k: dists[k] for k in params}, value=value, state=state)

    study.add_trials(
        [
            trial(0.063, x=0.5, opt="sgd"),  # 0: x outside the new [0, 0.4]
            trial(0.010, x=0.38, opt="rmsprop"),  # 1: the best, but rmsprop is no longer offered
            trial(0.0255, x=0.35, opt="sgd"),  # 2: the best that still fits
            trial(0.113, x=0.1, opt="adam"),  # 3: fits
            trial(0.04, x=0.2, opt="sgd", n=3),  # 4: n is no longer searched
            trial(None, TrialState.FAIL, x=0.3, opt="sgd"),  # 5: not finished COMPLETE: never added
        ]
    )
    return url


# ---------------------------------------------------------------- end to end
@pytest.mark.slow
def test_from_a_journal_into_a_fresh_sqlite_study(run_toy: Any, tmp_path: Path) -> None:
    first = run_toy("x=interval(0,1)", "opt=sgd,adam", "hydra.sweeper.n_trials=5", *BASE, sweep_dir="first")
    old = optuna.load_study(study_name="toy", storage=open_storage(first.results()["storage"]))
    assert old.best_trial.number != 0  # seed 0: trial 4 (not the baseline, which the new sweep runs anyway)
    assert first.results()["storage"].startswith("journal://")
    (tmp_path / "trainings.jsonl").unlink()
    args = ("x=interval(0,1)", "opt=sgd,adam", "hydra.sweeper.storage=sqlite:///new.db", *BASE)
    second = run_toy(*args, "hydra.sweeper.n_trials=2", f"hydra.sweeper.warm_start={first.sweep_dir}")
    new = optuna.load_study(study_name="toy", storage=open_storage(f"sqlite:///{tmp_path / 'new.db'}"))
    trials = new.get_trials()
    # Trial 0 is the earlier best configuration, trained again (it is the first training of this sweep).
    assert trials[0].params == old.best_trial.params and trials[0].user_attrs[TrialAttr.WARM_START_BEST] == (
        f"study 'toy' trial {old.best_trial.number}"
    )
    trainings = second.trainings()
    assert trainings[0]["trial"] == 0 and trainings[0]["x"] == old.best_trial.params["x"]
    assert trainings[0]["opt"] == old.best_trial.params["opt"]
    # Every earlier COMPLETE trial is in the new study, marked and with its value; n_trials counts new trials only.
    added = [t for t in trials if TrialAttr.WARM_START in t.user_attrs]
    assert sorted((t.params["x"], t.value) for t in added) == sorted((t.params["x"], t.value) for t in old.trials)
    assert len(trainings) == 2 and len(trials) == 5 + 2  # the retry, the added trials, the baseline
    results = second.results()["warm_start"]
    assert (results["added"], results["skipped"], results["best_retried"]["trial"]) == (5, [], old.best_trial.number)
    assert f"warm_start: added 5 finished trial(s) of study 'toy' in {first.sweep_dir}; trial 0 retries its best" in (
        second.output
    )
    # The progress line counts the trials run here against n_trials (the baseline is study trial 6).
    assert "trial 0/2 COMPLETE" in second.output and "trial 1/2 (study trial 6) COMPLETE" in second.output
    assert "trial 6/2" not in second.output
    # The best is a trial run here, with its folder and best_config.yaml (the added ones keep their rows).
    best = second.results()["best_trial"]
    assert best not in {t.number for t in added} and second.results()["best_job_dir"]
    assert f"Best trial {best} " in (second.sweep_dir / "best_config.yaml").read_text()
    rows = {r["number"]: r for r in second.trials()}
    assert rows["1"]["reason"].startswith("warm start: study 'toy' trial ") and rows["1"]["job_dir"] == ""
    # The same command again resumes the study: no second warm start, said once.
    third = run_toy(*args, "hydra.sweeper.n_trials=3", f"hydra.sweeper.warm_start={first.sweep_dir}")
    assert third.output.count("warm start seeds new studies only: ignored") == 1
    again = optuna.load_study(study_name="toy", storage=open_storage(f"sqlite:///{tmp_path / 'new.db'}"))
    assert sum(TrialAttr.WARM_START in t.user_attrs for t in again.trials) == 5 and len(third.trainings()) == 3


@pytest.mark.slow
def test_a_changed_space_skips_and_lists_what_no_longer_fits(run_toy: Any, tmp_path: Path) -> None:
    url = earlier_study(tmp_path / "old.journal")
    sweep = run_toy(
        "x=interval(0,0.4)", "opt=sgd,adam", "hydra.sweeper.n_trials=1", "hydra.sweeper.storage=sqlite:///new.db",
        f"hydra.sweeper.warm_start={url}:earlier", *BASE,
    )  # fmt: skip
    warning = sweep.output[sweep.output.index("warm_start: 3 of 5 finished trial(s)") :]
    assert "no longer fit the search space, skipped:\n" in warning
    for line in (
        "  trial 0: x=0.5 lies outside [0.0, 0.4]",
        "  trial 1: opt='rmsprop' is not one of the choices ['sgd', 'adam']",
        "  trial 4: n is no longer searched",
    ):
        assert line in warning
    new = optuna.load_study(study_name="toy", storage=open_storage(f"sqlite:///{tmp_path / 'new.db'}"))
    trials = new.get_trials()
    # The earlier best (trial 1) does not fit: the best that does (trial 2) is retried as trial 0.
    assert trials[0].params == {"x": 0.35, "opt": "sgd"} and trials[0].state == TrialState.COMPLETE
    assert sweep.trainings()[0]["x"] == 0.35 and len(sweep.trainings()) == 1
    added = sorted(t.params["x"] for t in trials if TrialAttr.WARM_START in t.user_attrs)
    assert added == [0.1, 0.35]
    assert [s["trial"] for s in sweep.results()["warm_start"]["skipped"]] == [0, 1, 4]


@pytest.mark.slow
def test_a_missing_source_stops_before_any_trial_and_leaves_no_study(run_toy: Any, tmp_path: Path) -> None:
    sweep = run_toy("x=interval(0,1)", "hydra.sweeper.warm_start=no/such/folder", *BASE, check=False)
    assert sweep.proc.returncode == 2 and "Traceback" not in sweep.output
    assert "hydra.sweeper.warm_start=no/such/folder: no sweep folder or storage file at" in sweep.output
    journal = sweep.sweep_dir / "optuna" / "toy.journal"
    assert not journal.exists() or not optuna.get_all_study_summaries(open_storage(f"journal://{journal}"))
    assert not (sweep.sweep_dir / "0").exists()


# ---------------------------------------------------------------- a bad source
def new_study() -> optuna.Study:
    return optuna.create_study(study_name="new")


def seed(source: str, study: optuna.Study | None = None, cwd: str = "/") -> optuna.Study:
    study = study or new_study()
    space = SearchSpace.from_config({"x": "interval(0,1)"}, [])
    seed_study(study, parse_warm_start(source), space, {}, created=True, cwd=cwd)  # type: ignore[arg-type]
    return study


def test_no_such_study_names_the_ones_there(tmp_path: Path) -> None:
    url = earlier_study(tmp_path / "old.journal")
    with pytest.raises(SweepError) as info:
        seed(f"{url}:nope")
    assert f"hydra.sweeper.warm_start={url}:nope: no study 'nope' in" in str(info.value)
    assert "fix: one of ['earlier']" in str(info.value)


def test_several_studies_need_the_suffix(tmp_path: Path) -> None:
    url = earlier_study(tmp_path / "old.journal")
    earlier_study(tmp_path / "old.journal", name="other")
    with pytest.raises(SweepError, match=r"(?s)2 studies in .*\['earlier', 'other'\].*fix: choose one with "
                       r"warm_start: FOLDER_OR_STORAGE:STUDY"):  # fmt: skip
        seed(url)


def test_an_unreadable_storage_is_a_compact_error(tmp_path: Path) -> None:
    (tmp_path / "notes.db").write_text("not a database\n")
    with pytest.raises(SweepError, match=r"(?s)^hydra.sweeper.warm_start=notes.db: cannot open sqlite:///.*notes.db: "
                       r".*file is not a database.*\n    fix: "):  # fmt: skip
        seed("notes.db", cwd=str(tmp_path))


def test_another_direction_is_refused(tmp_path: Path) -> None:
    url = earlier_study(tmp_path / "old.journal", direction="maximize")
    with pytest.raises(SweepError, match=r"has direction\(s\) \['maximize'\], this sweep \['minimize'\]"):
        seed(url)


def test_a_resumed_study_is_not_seeded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = earlier_study(tmp_path / "old.journal")
    study = new_study()
    space = SearchSpace.from_config({"x": "interval(0,1)"}, [])
    with caplog.at_level("INFO"):
        seed_study(study, parse_warm_start(url), space, {}, created=False, cwd="/")  # type: ignore[arg-type]
    assert study.trials == [] and "warm start seeds new studies only: ignored" in caplog.text


def test_a_new_parameter_takes_its_default(tmp_path: Path) -> None:
    url = earlier_study(tmp_path / "old.journal")
    study = new_study()
    space = SearchSpace.from_config({"x": "interval(0,1)", "opt": "choice(sgd,adam,rmsprop)", "n": "range(1,4)",
                                     "lr": "interval(0.001,0.1)"}, [])  # fmt: skip
    defaults = {"lr": 0.01, "n": 2}
    seed_study(study, parse_warm_start(url), space, defaults, created=True, cwd="/")  # type: ignore[arg-type]
    added = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(added) == 5 and all(t.params["lr"] == 0.01 for t in added)
    first = study.ask()  # the enqueued retry of the earlier best, with the new parameter's default
    assert first.number == 0 and space.suggest(first) == {"x": 0.38, "opt": "rmsprop", "n": 2, "lr": 0.01}
    assert [t.params["n"] for t in added] == [2, 2, 2, 2, 3]  # trial 4 ran with n=3, the others with the default
    assert study.user_attrs[StudyAttr.WARM_START]["defaults_filled"] == defaults


@pytest.mark.postgres
def test_from_postgresql_into_a_journal(run_toy: Any, tmp_path: Path) -> None:
    url = os.environ.get("CLARA_HYDRA_PG_URL")
    if not url:
        pytest.skip("set CLARA_HYDRA_PG_URL (e.g. postgresql://postgres@localhost/optuna) to run")
    pytest.importorskip("psycopg", reason="needs a PostgreSQL driver: pip install -e '.[postgres]'")
    name = f"warm_{os.getpid()}_{id(tmp_path)}"
    source = optuna.create_study(study_name=name, storage=open_storage(url))
    x = FloatDistribution(0.0, 1.0)
    source.add_trials([create_trial(params={"x": v}, distributions={"x": x}, value=abs(v - 0.3)) for v in (0.9, 0.32)])
    try:
        sweep = run_toy("x=interval(0,1)", "hydra.sweeper.n_trials=1", f"hydra.sweeper.warm_start={url}:{name}", *BASE)
    finally:
        optuna.delete_study(study_name=name, storage=open_storage(url))
    assert sweep.results()["storage"].startswith("journal://") and sweep.results()["warm_start"]["added"] == 2
    assert sweep.trainings()[0]["x"] == 0.32 and sweep.trials()[0]["params_x"] == "0.32"
