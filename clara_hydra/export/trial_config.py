"""A trial's composed config as the exporters read it: unresolved (to keep ``${VAR}`` links) and resolved.

Hydra saved the trial's config, overrides applied, in ``<job dir>/.hydra/config.yaml``; interpolations are
still there (``lr: ${learning_rate}``), which is what lets an export keep Clara's variables. Values that need
one of our resolvers are resolved as the trial saw them: relative paths from the folder the sweep was started
in (``hydra.runtime.cwd`` of ``.hydra/hydra.yaml``), and ``${clara.job_dir:models}`` in a folder the exporter
chooses (the bundle's root for a bundle, the trial's own job folder otherwise).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue, OmegaConfBaseException

from clara_hydra import resolvers
from clara_hydra.errors import ExportError, InputFileError, shorten, with_fix
from clara_hydra.export.select import SelectedTrial

# `${VAR}`: a whole-value link to a top-level variable (Clara's "{VAR}", a bundle's "@VAR").
SIMPLE_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
JOB_DIR_INTERPOLATION = re.compile(r"\$\{" + re.escape(resolvers.JOB_DIR_RESOLVER) + r":([^}]*)\}")
MISSING = "???"  # OmegaConf's required value, kept as such in ``resolved``
# Top-level keys that are sections or Hydra's, never Clara variables (`tracking`: +tracking=mlflow, a run option).
NOT_VARIABLES = ("train", "validate", "hydra", "defaults", "_allow_", "tracking")


@dataclass(frozen=True)
class TrialConfig:
    """The composed config of one trial.

    Args:
        raw: the config as plain containers, interpolations kept (``${clara.job_dir:X}`` already replaced
            by ``<job_dir_base>/X``).
        resolved: the same, every interpolation resolved.
        launch_dir: the folder the sweep was started in (relative paths start there).
        job_dir: the trial's job folder.
        job_dir_vars: top-level variables whose unresolved value was ``${clara.job_dir:X}``: ``{name: X}``.
    """

    raw: dict[str, Any]
    resolved: dict[str, Any]
    launch_dir: Path
    job_dir: Path
    job_dir_vars: dict[str, str] = field(default_factory=dict)

    def variables(self) -> list[str]:
        """Top-level names that are not sections: Clara's first-level parameters and variables, in file order."""
        return [k for k in self.raw if k not in NOT_VARIABLES]


def load_trial_config(trial: SelectedTrial, job_dir_base: Path | None = None) -> TrialConfig:
    """Read and resolve the composed config of ``trial``.

    Args:
        trial: the trial (its job folder holds ``.hydra/config.yaml``).
        job_dir_base: where ``${clara.job_dir:X}`` points (``<base>/X``); default: the trial's job folder.

    Raises:
        InputFileError: the config file cannot be read.
        ExportError: a value cannot be resolved outside the trial's run (the message names its key).
    """
    try:
        cfg = OmegaConf.load(trial.config_file)
    except (OSError, yaml.YAMLError, OmegaConfBaseException) as exc:
        raise InputFileError(f"{trial.config_file}: cannot read the trial's config: {exc}") from exc
    if not isinstance(cfg, DictConfig):
        raise InputFileError(f"{trial.config_file}: not a mapping")
    container = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(container, dict)
    base = job_dir_base or trial.job_dir
    job_dir_vars = {
        str(k): m.group(1)
        for k, v in container.items()
        if isinstance(v, str) and (m := JOB_DIR_INTERPOLATION.fullmatch(v.strip()))
    }
    raw = _substitute_job_dir(container, base)
    launch_dir = _launch_dir(trial.job_dir)
    with _working_dir(launch_dir):
        resolved = _resolve(raw, trial)
    return TrialConfig(raw, resolved, launch_dir, trial.job_dir, job_dir_vars)


def _substitute_job_dir(node: Any, base: Path) -> Any:
    if isinstance(node, dict):
        return {k: _substitute_job_dir(v, base) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute_job_dir(v, base) for v in node]
    if isinstance(node, str) and JOB_DIR_INTERPOLATION.search(node):
        return JOB_DIR_INTERPOLATION.sub(lambda m: os.fspath(base / m.group(1)), node)
    return node


def _launch_dir(job_dir: Path) -> Path:
    """``hydra.runtime.cwd`` of the trial (where relative data paths start), else the current folder."""
    hydra_file = job_dir / ".hydra" / "hydra.yaml"
    if hydra_file.is_file():
        try:
            data = yaml.safe_load(hydra_file.read_text()) or {}
            cwd = data.get("hydra", {}).get("runtime", {}).get("cwd")
        except (OSError, yaml.YAMLError, AttributeError):
            cwd = None
        if cwd and Path(cwd).is_dir():
            return Path(cwd)
    return Path.cwd()


@contextmanager
def _working_dir(path: Path) -> Iterator[None]:
    # Our resolvers take relative paths from the launch folder (Hydra's original cwd, or the current one
    # outside a Hydra job): stand there while resolving, as the trial did.
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _resolve(raw: dict[str, Any], trial: SelectedTrial) -> dict[str, Any]:
    cfg = OmegaConf.create(raw)
    try:
        out = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException:
        out = _resolve_each(cfg, trial)  # a value links to a required one (???): that value stays ??? too
    assert isinstance(out, dict)
    return {str(k): v for k, v in out.items()}


def _resolve_each(node: Any, trial: SelectedTrial) -> Any:
    """Resolve node by node; a value that needs a missing (``???``) one becomes ``???`` (the exporters decide)."""
    if isinstance(node, DictConfig):
        return {str(k): _resolve_value(node, k, trial) for k in node}
    if isinstance(node, ListConfig):
        return [_resolve_value(node, i, trial) for i in range(len(node))]
    return node


def _resolve_value(container: DictConfig | ListConfig, key: Any, trial: SelectedTrial) -> Any:
    try:
        value = container[key]
    except (MissingMandatoryValue, InterpolationToMissingValueError):
        return MISSING
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", "") or key
        raise ExportError(
            with_fix(
                f"trial {trial.number}: {key} cannot be resolved outside its run: {shorten(str(exc).splitlines()[0])}",
                f"set it to a plain value in {trial.config_file} (or rerun the trial with it set)",
            )
        ) from exc
    if isinstance(value, DictConfig | ListConfig):
        return _resolve_each(value, trial)
    return value


def simple_link(value: Any, names: set[str] | frozenset[str]) -> str | None:
    """The variable a value is exactly a link to (``"${learning_rate}"`` -> ``learning_rate``), else None."""
    if isinstance(value, str):
        match = SIMPLE_INTERPOLATION.fullmatch(value.strip())
        if match and match.group(1) in names:
            return match.group(1)
    return None
