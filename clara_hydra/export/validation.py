"""``clara-hydra export SWEEP --to validation CONF_VAL/``: point a converted Clara validation config at a trial.

A Clara 4.1 validation config (``config_validation.json``) lists two models, a TorchScript file and a
checkpoint, each switched off by a variable (``"disabled": "{dont_load_ts_model}"``), and reads the checkpoint
from ``{MMAR_CKPT}``. Converted, that is a ``_one_of_`` slot whose choice hangs on those flags, and the
checkpoint's file name (``checkpoint_key_metric=0.93.pt``) needs quoting in Hydra's override grammar. So
instead of flags on the command line, the export writes one experiment option into the converted tree::

    CONF_VAL/experiment/sweep_best.yaml     # @package _global_: MMAR_CKPT, the flags, the trial's data paths

and the one command that evaluates the trial's checkpoint is ``python train.py -cd CONF_VAL/
experiment=sweep_best``. The checkpoint carries its training config (``train_conf``), from which
``clara_hydra.expressions.model_from_checkpoint`` rebuilds the network.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clara_hydra import tree_nodes
from clara_hydra.errors import ExportError, InputFileError, with_fix
from clara_hydra.export.checkpoint import find_checkpoint
from clara_hydra.export.select import SelectedTrial
from clara_hydra.export.trial_config import SIMPLE_INTERPOLATION, load_trial_config
from clara_hydra.keywords import Emitted
from clara_hydra.tree_nodes import Kind

CKPT_MODEL = "clara_hydra.expressions.model_from_checkpoint"
DEFAULT_OPTION = "sweep_best"
_MISSING = "???"


@dataclass
class ValidationExport:
    """What :func:`export_validation` wrote.

    Args:
        option: the experiment file.
        command: the command that evaluates the trial's checkpoint with it.
        values: the values the option sets.
        notes: values still missing (``???``) that the trial could not supply.
    """

    option: Path
    command: str
    values: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def export_validation(
    trial: SelectedTrial, conf_dir: str | os.PathLike[str], *, option: str = DEFAULT_OPTION, force: bool = False
) -> ValidationExport:
    """Write ``conf_dir/experiment/<option>.yaml`` so that the validation config evaluates ``trial``'s checkpoint.

    Args:
        trial: the trial whose checkpoint to evaluate.
        conf_dir: a tree written by ``clara-hydra convert config_validation.json``.
        option: the experiment option's name.
        force: replace an existing option file.

    Raises:
        InputFileError: ``conf_dir`` holds no ``config.yaml``.
        ExportError: the tree has no checkpoint model (``ckpt_path``), or the option file exists.
    """
    root = Path(conf_dir)
    config_file = root / "config.yaml"
    if not config_file.is_file():
        raise InputFileError(
            with_fix(f"{root}: no config.yaml", "convert the validation config first: clara-hydra convert ... -o DIR")
        )
    tree = yaml.safe_load(config_file.read_text()) or {}
    target = root / "experiment" / f"{option}.yaml"
    if target.exists() and not force:
        raise ExportError(with_fix(f"{target} exists", "pass --force to replace it"))
    checkpoint = find_checkpoint(trial.job_dir).resolve()
    values: dict[str, Any] = {}
    switched_off: set[str] = set()  # variables only the switched-off alternatives read (MMAR_TORCHSCRIPT)
    found = False
    for path, node, siblings in _checkpoint_models(tree):
        found = True
        _set(values, tree, f"{path}.ckpt_path", node.get("ckpt_path"), os.fspath(checkpoint))
        _set(values, tree, f"{path}.{Emitted.DISABLED}", node.get(Emitted.DISABLED), False)
        for sibling_path, sibling in siblings:
            _set(values, tree, f"{sibling_path}.{Emitted.DISABLED}", sibling.get(Emitted.DISABLED), True)
            switched_off |= set(SIMPLE_INTERPOLATION.findall(yaml.safe_dump(sibling)))
    if not found:
        raise ExportError(
            with_fix(
                f"{config_file}: no checkpoint model ({{_target_: {CKPT_MODEL}}}): not a converted Clara "
                "validation config with a ckpt_path model",
                'convert a config_validation.json whose "model" lists {"ckpt_path": "{MMAR_CKPT}"}',
            )
        )
    notes = _fill_required(values, tree, trial, switched_off)
    target.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# @package _global_\n"
        f"# Written by `clara-hydra export --to validation`: evaluate trial {trial.number} of study "
        f"'{trial.study_name}'\n# (checkpoint {checkpoint}) with this validation config:\n"
        f"#   python train.py -cd {root} experiment={option}\n"
    )
    target.write_text(header + yaml.safe_dump(values, sort_keys=False, allow_unicode=True))
    return ValidationExport(target, f"python train.py -cd {root} experiment={option}", values, notes)


def _checkpoint_models(tree: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any], list[tuple[str, Any]]]]:
    """``(path, node, siblings)`` of every checkpoint-model node; siblings are the other ``_one_of_`` members."""
    if not isinstance(tree, dict):
        return
    alternatives = tree_nodes.kind_of(tree) is Kind.ONE_OF
    for key, value in tree.items():
        sub = f"{path}.{key}" if path else str(key)
        if isinstance(value, dict) and value.get(Emitted.TARGET) == CKPT_MODEL:
            siblings = (
                [
                    (f"{path}.{k}" if path else str(k), v)
                    for k, v in tree.items()
                    if k != key and isinstance(v, dict) and tree_nodes.is_member_key(k)
                ]
                if alternatives
                else []
            )
            yield sub, value, siblings
        elif isinstance(value, dict):
            yield from _checkpoint_models(value, sub)


def _set(values: dict[str, Any], tree: dict[str, Any], path: str, current: Any, wanted: Any) -> None:
    """Set ``wanted`` where ``current`` takes it from: the top-level variable it links to, else the key itself."""
    link = SIMPLE_INTERPOLATION.fullmatch(current.strip()) if isinstance(current, str) else None
    if link and link.group(1) in tree:
        values[link.group(1)] = wanted
        return
    node = values
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = wanted


def _fill_required(values: dict[str, Any], tree: dict[str, Any], trial: SelectedTrial, off: set[str]) -> list[str]:
    """Give the tree's required top-level values (``???``) the trial's values (its data paths, channels)."""
    missing = [k for k, v in tree.items() if v == _MISSING and k not in values and k not in off]
    if not missing:
        return []
    resolved = load_trial_config(trial).resolved
    notes = []
    for name in missing:
        if name in resolved and resolved[name] is not None and not isinstance(resolved[name], dict):
            values[name] = resolved[name]
        else:
            notes.append(f"{name} is still required (???): add {name}=... to the command")
    return notes
