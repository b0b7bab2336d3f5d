"""``hydra.sweeper.terminator``: Optuna's Terminator stops a sweep when the best value cannot improve by more
than the objective's noise; off by default; bad settings are compact errors."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import optuna
import pytest

from clara_hydra.errors import SweepError
from clara_hydra.sweep_record import StudyAttr
from clara_hydra.sweeper import terminator, trial_report
from clara_hydra.sweeper.config import ClaraOptunaSweeperConf
from clara_hydra.sweeper.settings import Settings
from clara_hydra.trial_context import identity_env

pytest.importorskip("scipy", reason="Optuna's Gaussian process needs scipy (pip install scipy)")

BASE = ("hydra.sweeper.sampler.seed=0",)


def make_settings(**keys: Any) -> Settings:
    return Settings.from_node({"sampler": {"seed": 0}, **keys})


# ---------------------------------------------------------------- settings
def test_off_by_default() -> None:
    assert ClaraOptunaSweeperConf.terminator is None
    assert Settings.from_node({}).terminator is None
    study = optuna.create_study()
    assert terminator.start(study, None, ["x"]) is None
    assert terminator.results_entry(study) == {}


def test_settings_read_with_the_sampler_seed() -> None:
    s = make_settings(terminator="regret", terminator_min_trials=5, terminator_error=0.01)
    assert s.terminator == terminator.TerminatorSettings("regret", 5, 0.01, seed=0)
    assert make_settings(terminator="regret").terminator == terminator.TerminatorSettings("regret", 20, "auto", 0)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"terminator": "patience"}, "hydra.sweeper.terminator: unknown terminator 'patience'"),
        ({"terminator_min_trials": 1}, "hydra.sweeper.terminator_min_trials: expected an integer >= 2, got 1"),
        ({"terminator_min_trials": True}, "terminator_min_trials: expected an integer >= 2, got True"),
        ({"terminator_error": -0.1}, "hydra.sweeper.terminator_error: expected auto, median or a number > 0, got -0.1"),
        ({"terminator_error": "cv"}, "terminator_error: expected auto, median or a number > 0, got 'cv'"),
        ({"terminator_error": float("nan")}, "got nan"),
        ({"direction": ["minimize", "maximize"]}, "terminator: needs a single-objective study"),
    ],
)
def test_bad_settings_are_compact_errors(keys: dict[str, Any], message: str) -> None:
    with pytest.raises(SweepError, match="fix: ") as info:
        make_settings(**{"terminator": "regret", **keys})
    assert message in str(info.value)


# ---------------------------------------------------------------- the rule
def _sweep(scale: float, noise: float, seed: int, budget: int, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, int]:
    """A cheap ask/tell loop: 2-D bowl ``scale * ((x-0.3)^2 + (y-0.7)^2)``, each trial the mean of 5 noisy
    seeds reported with :func:`terminator.report_scores`, judged by a seeded StopCheck after every trial."""
    rng = np.random.default_rng(seed)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    check = terminator.StopCheck(terminator.TerminatorSettings("regret", 10, "auto", seed), ["x", "y"])
    for _ in range(budget):
        trial = study.ask()
        x, y = trial.suggest_float("x", 0, 1), trial.suggest_float("y", 0, 1)
        scores = scale * ((x - 0.3) ** 2 + (y - 0.7) ** 2) + rng.normal(0.0, noise, 5)
        env = identity_env("inmemory", study.study_name, trial._trial_id, trial.number)
        monkeypatch.setenv(*next(iter(env.items())))
        with trial_report.live_trial(trial):
            terminator.report_scores(scores)
        study.tell(trial, float(np.mean(scores)))
        record = check.check(study)
        if record is not None:
            return record, len(study.trials)
    return None, budget


@pytest.mark.parametrize("seed", [0, 1])
def test_stops_when_the_room_left_is_below_the_seed_noise(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Flat bowl (range 0.0058) under seed noise sd 0.05: the noise of a 5-seed mean, Optuna's
    # sd * sqrt(1/5 + 1/4) ~ 0.034, exceeds everything the space can still give, so the GP's regret bound
    # drops below it as soon as it is fitted on enough points (measured: after 20-21 trials for seed 0-1).
    # 30 trials leaves a margin of ~10 trials; the GP and sampler are seeded, so the count is reproducible.
    record, n = _sweep(scale=0.01, noise=0.05, seed=seed, budget=30, monkeypatch=monkeypatch)
    assert record is not None, "the terminator should have stopped a sweep that only measures noise"
    assert record["regret_bound"] < record["error"] and record["error"] > 0.01
    assert record["error_source"] == "the spread of the best trial's scores" and n == record["after_trial"] + 1


@pytest.mark.parametrize("seed", [0, 1])
def test_goes_on_while_the_room_left_exceeds_the_noise(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Steep bowl (range 0.58) with seed noise sd 0.001 (error ~0.0007): after 25 random trials the regret
    # bound is still 0.0027-0.016 (measured), 4-20x the noise, so stopping would be a false alarm.
    record, n = _sweep(scale=1.0, noise=0.001, seed=seed, budget=25, monkeypatch=monkeypatch)
    assert record is None and n == 25


def test_the_rule_and_figures_are_optunas(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our stop equals ``optuna.terminator.Terminator.should_terminate`` with the same seeded evaluators, and the
    regret bound we print is the one it compares (an Optuna change to either fails here)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    study.optimize(lambda t: (t.suggest_float("x", 0, 1) - 0.3) ** 2, n_trials=12)
    settings = terminator.TerminatorSettings("regret", 12, 1.0, seed=3)
    record = terminator.StopCheck(settings, ["x"]).check(study)
    assert record is not None  # a bound below 1.0 on a bowl of height <= 0.49
    bound = record["regret_bound"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from optuna.terminator import RegretBoundEvaluator, StaticErrorEvaluator, Terminator

        for error, expected in ((bound * 1.01, True), (bound * 0.99, False)):
            judge = Terminator(RegretBoundEvaluator(seed=3), StaticErrorEvaluator(error), min_n_trials=12)
            assert bool(judge.should_terminate(study)) is expected
        later = Terminator(RegretBoundEvaluator(seed=3), StaticErrorEvaluator(1.0), min_n_trials=13)
        assert not later.should_terminate(study)
    study.set_user_attr(StudyAttr.STOPPED, None)  # check() recorded its stop on the study
    settings13 = terminator.TerminatorSettings("regret", 13, 1.0, seed=3)
    assert terminator.StopCheck(settings13, ["x"]).check(study) is None  # min_trials not reached


def test_auto_without_scores_says_once_it_falls_back_to_the_median(caplog: pytest.LogCaptureFixture) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=4)
    check = terminator.StopCheck(terminator.TerminatorSettings("regret", 3, "auto", 0), ["x"])
    with caplog.at_level(logging.INFO, logger=terminator.__name__):
        # Optuna's median heuristic needs 10 warm-up + 20 trials: it never stops a 4-trial study.
        assert check.check(study) is None and check.check(study) is None
    assert [r.getMessage() for r in caplog.records].count(
        "terminator: the best trial reported no cross-validation or seed scores (report_scores); using Optuna's "
        "median heuristic, which needs 30 complete trials"
    ) == 1


def test_trials_without_every_parameter_are_left_out() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    study.enqueue_trial({})  # a trial that searched nothing (a baseline whose defaults lie outside the space)
    study.optimize(lambda t: 0.5, n_trials=1)
    check = terminator.StopCheck(terminator.TerminatorSettings("regret", 4, 1.0, 0), ["x"])
    assert check.check(study) is None  # 3 trials with x: below min_trials, although 4 are complete


def test_report_scores_needs_two_finite_values() -> None:
    with pytest.raises(SweepError, match=r"report_scores: needs two or more finite scores, got \[0.8\]"):
        terminator.report_scores([0.8])
    terminator.report_scores([0.8, 0.9])  # outside a sweep: nothing to report to, no error


# ---------------------------------------------------------------- end to end
@pytest.mark.slow
def test_a_sweep_stops_with_one_line_and_records_why(run_toy: Any) -> None:
    # The toy objective in x alone is a bowl of height <= 0.49 around x = 0.3; a tolerance of 0.02 is met
    # once TPE has sampled near the bottom and the GP has ~10 points: measured after trial 11 of 30 (seed 0).
    sweep = run_toy(
        "x=interval(0,1)", "hydra.sweeper.n_trials=30", "hydra.sweeper.terminator=regret",
        "hydra.sweeper.terminator_min_trials=5", "hydra.sweeper.terminator_error=0.02", *BASE,
    )  # fmt: skip
    rows = sweep.trials()
    assert 5 <= len(rows) < 30
    stopped = sweep.results()["stopped"]
    assert stopped["after_trial"] == int(rows[-1]["number"]) and stopped["complete_trials"] == len(rows)
    assert stopped["regret_bound"] < stopped["error"] == 0.02
    lines = [line for line in sweep.output.splitlines() if "terminator: stopping" in line]
    assert len(lines) == 1 and f"stopping after trial {stopped['after_trial']} " in lines[0]
    assert "less than terminator_error 0.02" in lines[0] and stopped["reason"] in lines[0]


@pytest.mark.slow
def test_a_bad_setting_stops_the_sweep_before_any_trial(run_toy: Any) -> None:
    sweep = run_toy("x=interval(0,1)", "hydra.sweeper.terminator=yes", *BASE, check=False)
    assert sweep.proc.returncode == 2
    assert "hydra.sweeper.terminator: unknown terminator 'yes'" in sweep.output
    assert "Traceback" not in sweep.output and not (sweep.sweep_dir / "0").exists()


def test_a_later_run_forgets_the_stop_of_an_earlier_one() -> None:
    study = optuna.create_study()
    record = {"by": "terminator", "after_trial": 24, "complete_trials": 25, "regret_bound": 0.002, "error": 0.031,
              "error_source": "the spread of the best trial's scores", "best_value": 0.91}  # fmt: skip
    study.set_user_attr(StudyAttr.STOPPED, record)
    assert terminator.results_entry(study)["stopped"]["reason"] == (
        "terminator: stopping after trial 24 (25 complete trials): the best value 0.91 can improve by at most 0.002 "
        "(regret bound), less than the objective's noise 0.031 (the spread of the best trial's scores)"
    )
    terminator.forget_stop(study)  # a rerun (terminator on or off) may run past it
    assert terminator.results_entry(study) == {}
