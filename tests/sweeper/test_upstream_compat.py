"""hydra-optuna-sweeper's own behaviours, as its released app-level tests check them (our tests of them).

Upstream's suite (Hydra's ``1.3_branch``, ``plugins/hydra_optuna_sweeper``) run against this plugin needs:
the results file's format (``name``, ``best_params`` naming every parameter, ``best_value``; ``solutions``
for a multi-objective study), the deprecated ``search_space`` key accepted with upstream's warning, and an
explicit ``max_failure_rate`` meaning exactly upstream's rule (our ``fail_fast`` then off).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from clara_hydra.sweeper.deprecated_space import BOTH, DEPRECATED, entry_to_text, resolve_params
from clara_hydra.sweeper.settings import Settings
from clara_hydra.sweeper.space import SearchSpace

BASE = ("hydra.sweeper.sampler.seed=0",)


# ------------------------------------------------------------------ optimization_results.yaml
def _dominates(a: list[float], b: list[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def test_multi_objective_results_hold_upstreams_solutions(run_toy: Any) -> None:
    sweep = run_toy(
        "objectives=2", "hydra.sweeper.direction=[minimize,minimize]", "x=interval(0,1)", "n=range(1,4)",
        "hydra.sweeper.n_trials=6", *BASE,
    )  # fmt: skip
    results = sweep.results()
    assert results["name"] == "optuna"
    solutions = results["solutions"]
    assert solutions and all(set(s) == {"params", "values"} for s in solutions)
    assert all(set(s["params"]) == {"x", "n"} for s in solutions)  # the baseline's too (its defaults lie inside)
    for a in solutions:
        assert not any(_dominates(b["values"], a["values"]) for b in solutions)
    assert [s["values"] for s in solutions] == [p["values"] for p in results["pareto_front"]]


def test_best_params_name_every_parameter_also_for_the_baseline(run_toy: Any) -> None:
    # x's default 0.5 lies outside [0.6, 1]: the baseline trial (trial 0, the defaults) does not suggest x,
    # yet it is the best (the objective is smallest at x = 0.3), so best_params must still name x.
    sweep = run_toy("x=interval(0.6,1)", "n=choice(1,2)", "hydra.sweeper.n_trials=3", *BASE)
    results = sweep.results()
    assert results["best_trial"] == 0
    assert results["best_params"] == {"x": 0.5, "n": 2}


# ------------------------------------------------------------------ the deprecated search_space key
@pytest.mark.parametrize(
    ("entry", "expected"),
    [  # upstream's create_optuna_distribution_from_config cases, in today's Optuna classes
        ({"type": "categorical", "choices": [1, 2, 3]}, CategoricalDistribution([1, 2, 3])),
        ({"type": "int", "low": 0, "high": 10}, IntDistribution(0, 10)),
        ({"type": "int", "low": 0, "high": 10, "step": 2}, IntDistribution(0, 10, step=2)),
        ({"type": "int", "low": 1, "high": 100, "log": True}, IntDistribution(1, 100, log=True)),
        ({"type": "float", "low": 0, "high": 1}, FloatDistribution(0, 1)),
        ({"type": "float", "low": 0, "high": 10, "step": 2}, FloatDistribution(0, 10, step=2)),
        ({"type": "float", "low": -5.5, "high": 5.5, "step": 0.5}, FloatDistribution(-5.5, 5.5, step=0.5)),
        ({"type": "float", "low": 1, "high": 100, "log": True}, FloatDistribution(1, 100, log=True)),
    ],
)
def test_search_space_entries_mean_upstreams_distributions(entry: dict[str, Any], expected: Any) -> None:
    space = SearchSpace.from_config({"key": entry_to_text("key", entry)}, [])
    assert space.params["key"].distribution == expected


def test_search_space_warns_as_upstream_and_params_win() -> None:
    with pytest.warns(UserWarning, match="is deprecated and will be removed"):
        assert resolve_params(None, {"x": {"type": "float", "low": 0, "high": 1}}) == {"x": "interval(0.0, 1.0)"}
    with pytest.warns(UserWarning, match="Both hydra.sweeper.params and hydra.sweeper.search_space"):
        assert resolve_params({"y": "choice(1, 2)"}, {}) == {"y": "choice(1, 2)"}
    assert resolve_params({}, None) == {}
    assert "deprecated" in DEPRECATED and "params" in BOTH


def test_a_sweep_with_search_space_runs_with_the_warning(run_toy: Any, tmp_path: Path) -> None:
    # As upstream's example does it: the key in a config file (the toy's config plus search_space).
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "deprecated.yaml").write_text(
        "defaults:\n  - config\n  - _self_\n"
        "hydra:\n  sweeper:\n    search_space:\n      x: {type: float, low: 0.0, high: 1.0, step: 0.25}\n"
    )
    sweep = run_toy("--config-dir=extra", "--config-name=deprecated", "hydra.sweeper.n_trials=3", *BASE)
    assert "`hydra.sweeper.search_space` is deprecated" in sweep.proc.stderr
    xs = [float(r["params_x"]) for r in sweep.trials()]
    assert len(xs) == 3 and all(x in (0.0, 0.25, 0.5, 0.75, 1.0) for x in xs)


# ------------------------------------------------------------------ max_failure_rate
def test_explicit_max_failure_rate_is_upstreams_rule_alone() -> None:
    assert (Settings.from_node({}).max_failure_rate, Settings.from_node({}).fail_fast) == (1.0, 3)
    explicit = Settings.from_node({"max_failure_rate": 1.0})
    assert (explicit.max_failure_rate, explicit.fail_fast) == (1.0, 0)
    both = Settings.from_node({"max_failure_rate": 0.5, "fail_fast": 2})
    assert (both.max_failure_rate, both.fail_fast) == (0.5, 2)


def test_max_failure_rate_one_never_stops_a_failing_sweep(run_toy: Any) -> None:
    kept = run_toy(
        "mode=raise", "x=interval(0,1)", "hydra.sweeper.max_failure_rate=1.0", "hydra.sweeper.n_trials=4", *BASE
    )
    assert [r["state"] for r in kept.trials()] == ["FAIL"] * 4
    stopped = run_toy(
        "mode=raise", "x=interval(0,1)", "hydra.sweeper.n_trials=4", "hydra.sweeper.study_name=toy_ff", *BASE,
        check=False, sweep_dir="sweep_ff",
    )  # fmt: skip
    assert stopped.proc.returncode != 0  # unset: our fail_fast stops a sweep whose first trials all raise
    assert "toy failure" in stopped.output


def test_max_failure_rate_below_one_stops_with_the_error(run_toy: Any) -> None:
    sweep = run_toy(
        "mode=raise", "x=interval(0,1)", "hydra.sweeper.max_failure_rate=0.5", "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=6", *BASE, check=False,
    )  # fmt: skip
    assert sweep.proc.returncode != 0 and "toy failure" in sweep.output
    assert len(sweep.trials()) == 2  # the first batch
