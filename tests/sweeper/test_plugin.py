"""The plugin is found the standard way, registers its config groups, and stays cheap to import."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper

from clara_hydra.keywords import Sweep
from clara_hydra.sweeper.config import PRUNERS, SAMPLERS, SWEEPER_TARGET


def test_plugin_is_discovered() -> None:
    names = {f"{p.__module__}.{p.__name__}" for p in Plugins.instance().discover(Sweeper)}
    assert SWEEPER_TARGET in names


def test_config_groups_are_registered() -> None:
    Plugins.instance()  # plugin discovery imports the plugin module, which stores the configs
    repo = ConfigStore.instance().repo["hydra"]["sweeper"]
    assert f"{Sweep.SWEEPER_NAME}.yaml" in repo
    assert {f"{n}.yaml" for n in SAMPLERS} <= set(repo["sampler"])
    assert {f"{n}.yaml" for n in PRUNERS} <= set(repo["pruner"])
    assert set(SAMPLERS) == {"tpe", "random", "grid", "cmaes", "gp", "qmc", "nsgaii"}
    assert set(PRUNERS) == {"median", "percentile", "successive_halving", "hyperband", "threshold", "patient", "nop"}


def test_plugin_discovery_does_not_import_optuna() -> None:
    code = (
        "import sys\n"
        "from hydra.core.plugins import Plugins\n"
        "from hydra.plugins.sweeper import Sweeper\n"
        "Plugins.instance().discover(Sweeper)\n"
        "import clara_hydra.sweeper.trial_report as r\n"
        "r.report(1.0, 0)\n"  # outside a sweep: a no-op, and no Optuna import
        "assert 'hydra_plugins.clara_optuna_sweeper.clara_optuna_sweeper' in sys.modules\n"
        "print('optuna' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # QMC, GP: experimental in Optuna
def test_every_sampler_and_pruner_builds_with_optunas_defaults() -> None:
    from omegaconf import OmegaConf

    from clara_hydra.sweeper.optuna_objects import build_pruner, build_sampler
    from clara_hydra.sweeper.space import SearchSpace

    space = SearchSpace.from_config({"a": "choice(x, y)"}, [])
    for name, conf in SAMPLERS.items():
        if name == "cmaes":
            continue  # needs the optional cmaes package
        node = OmegaConf.structured(conf)
        node.seed = 1
        sampler = build_sampler(node, space)
        assert type(sampler).__name__ == conf._target_.rsplit(".", 1)[1]
    for name, conf in PRUNERS.items():
        node = OmegaConf.structured(conf)
        if name == "threshold":
            node.lower = 0.0  # Optuna needs lower or upper
        pruner = build_pruner(node)
        assert type(pruner).__name__ == conf._target_.rsplit(".", 1)[1], name
