"""The search space: config params merged with the command line, baseline values, grid, job overrides."""

from __future__ import annotations

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution

from clara_hydra.errors import SweepError
from clara_hydra.sweeper.space import SearchSpace

# The search space the converter emits for the seed example (conf/config.yaml).
SEED_PARAMS = {
    "learning_rate": "interval(0.0001, 0.001)",
    "loss": "choice(dice_loss, focal_loss)",
    "channels": "choice([16, 32, 64, 128, 256], [8, 16, 32, 64, 128])",
    "num_res_units": "choice(2, 1)",
    "a_min_a_max": "choice(m50_100, m60_150)",
    "myProb": "interval(0, 1)",
}


def seed_cfg() -> OmegaConf:
    return OmegaConf.create(
        {
            "learning_rate": 0.0002,
            "channels": [16, 32, 64, 128, 256],
            "num_res_units": 2,
            "myProb": 0.5,
            "a_min": -57,
            "DATA_ROOT": "???",
            "hydra": {
                "runtime": {"choices": {"loss": "focal_loss", "a_min_a_max": None, "hydra/sweeper": "clara_optuna"}}
            },
        }
    )


def test_seed_space() -> None:
    space = SearchSpace.from_config(SEED_PARAMS, [])
    assert space.distributions() == {
        "learning_rate": FloatDistribution(0.0001, 0.001),
        "loss": CategoricalDistribution(["dice_loss", "focal_loss"]),
        "channels": CategoricalDistribution(["[16, 32, 64, 128, 256]", "[8, 16, 32, 64, 128]"]),
        "num_res_units": CategoricalDistribution([2, 1]),
        "a_min_a_max": CategoricalDistribution(["m50_100", "m60_150"]),
        "myProb": FloatDistribution(0.0, 1.0),
    }
    assert space.fixed_overrides == []


def test_command_line_sweeps_replace_config_params_and_values_fix_them() -> None:
    space = SearchSpace.from_config(
        SEED_PARAMS, ["learning_rate=1e-4,3e-4", "num_res_units=1", "epochs=2", "+new=choice(a, b)", "~DATA_ROOT"]
    )
    assert space.params["learning_rate"].distribution == CategoricalDistribution([0.0001, 0.0003])
    assert "num_res_units" not in space.params  # fixed on the command line: not searched
    assert space.params["+new"].key == "new"
    assert space.fixed_overrides == ["num_res_units=1", "epochs=2", "~DATA_ROOT"]


def test_plain_value_under_params_is_a_fixed_override() -> None:
    space = SearchSpace.from_config({"epochs": 3, "lr": "interval(0, 1)"}, [])
    assert list(space.params) == ["lr"]
    assert space.fixed_overrides == ["epochs=3"]


def test_bad_params_name_the_key() -> None:
    with pytest.raises(SweepError, match=r"hydra\.sweeper\.params\.myProb 'myProb=interval"):
        SearchSpace.from_config({"myProb": "interval(1, 0)"}, [])
    with pytest.raises(SweepError, match="command line override 'x=range"):
        SearchSpace.from_config({}, ["x=range(3, 1)"])


def test_baseline_values_are_the_defaults_inside_the_space() -> None:
    space = SearchSpace.from_config(SEED_PARAMS, [])
    assert space.baseline(seed_cfg()) == {
        "learning_rate": 0.0002,
        "loss": "focal_loss",  # a config group: its default option
        "channels": "[16, 32, 64, 128, 256]",  # a list default: its encoded choice
        "num_res_units": 2,
        "myProb": 0.5,
        # a_min_a_max: default null lies outside choice(m50_100, m60_150): run without an override
    }


@pytest.mark.parametrize(
    ("sweep", "default", "expected"),
    [
        ("int(interval(1, 10))", 4, 4),
        ("range(0, 10, 3)", 4, None),  # not on the step
        ("range(0, 10, 3)", 6, 6),
        ("range(0.5, 2.0, 0.5)", 1.0, 1.0),
        ("interval(0, 1)", 2.0, None),  # outside
        ("choice(1, 2)", True, None),  # True is not 1 here
        ("choice(true, false)", True, True),
        ("interval(0, 1)", "0.5", None),
    ],
)
def test_baseline_value_matching(sweep: str, default: object, expected: object) -> None:
    space = SearchSpace.from_config({"k": sweep}, [])
    values = space.baseline(OmegaConf.create({"k": default}))
    assert values.get("k") == expected and ("k" in values) == (expected is not None)


def test_missing_default_has_no_baseline_value() -> None:
    space = SearchSpace.from_config({"DATA_ROOT": "choice(a, b)", "absent": "choice(a, b)"}, [])
    assert space.baseline(seed_cfg()) == {}


def test_grid_enumerates_discrete_dimensions() -> None:
    space = SearchSpace.from_config({"a": "choice(x, y)", "b": "range(1, 4)", "c": "range(0.5, 2.0, 0.5)"}, [])
    assert space.grid() == {"a": ["x", "y"], "b": [1, 2, 3], "c": [0.5, 1.0, 1.5]}
    with pytest.raises(SweepError, match="the grid sampler needs discrete dimensions"):
        SearchSpace.from_config({"lr": "interval(0, 1)"}, []).grid()


def test_suggest_and_overrides_with_a_real_trial() -> None:
    space = SearchSpace.from_config(SEED_PARAMS, ["epochs=2"])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"channels": "[8, 16, 32, 64, 128]", "learning_rate": 0.0005})
    trial = study.ask()
    values = space.suggest(trial)
    overrides = space.overrides(values)
    assert overrides[0] == "epochs=2"
    assert "channels=[8, 16, 32, 64, 128]" in overrides
    assert "learning_rate=0.0005" in overrides
    assert set(trial.params) == set(SEED_PARAMS)
