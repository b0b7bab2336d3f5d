"""``clara-hydra export SWEEP --to bundle OUT/``: one trial as a MONAI bundle.

Layout (MONAI's bundle specification)::

    OUT/configs/train.json       the trial's training, MONAI bundle syntax, no `$` expression
    OUT/configs/evaluate.json    its validation: loads models/model.pt, the metrics, saves label maps
    OUT/configs/inference.json   label maps of new images (no label, no metric: bundle_infer.py)
    OUT/configs/metadata.json    checked against MONAI's metadata schema (shipped: schema/)
    OUT/configs/logging.conf     the model zoo's console logging (MONAI reads it next to the config)
    OUT/models/model.pt          the trial's network weights (a state_dict)
    OUT/LICENSE, OUT/docs/README.md

The bundle travels: as in MONAI's model zoo, ``bundle_root`` is ``"."`` and every file of the bundle is named
from it (:func:`under_root`), so ``cd OUT && python -m monai.bundle run --config_file configs/inference.json``
works wherever OUT was copied, and ``--bundle_root OUT`` runs it from any other folder. The data (the trial's
``DATA_ROOT``, ``DATASET_JSON``, ...) stay where the trial read them: top-level ids to override.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clara_hydra.errors import ExportError, with_fix
from clara_hydra.export import bundle_docs
from clara_hydra.export.bundle_infer import INFER_IDS, SECTION, find_target, inference_section
from clara_hydra.export.bundle_labels import is_compose, label_dtype, label_map_transforms, tensors_invertible
from clara_hydra.export.bundle_paths import ROOT_DEFAULT, ROOT_ID, built_on_variable, data_ids, relocate, under_root
from clara_hydra.export.bundle_syntax import (
    DEVICE_ID,
    MODEL_PATH,
    NETWORK_ID,
    SEP,
    BundleTranslator,
    references,
)
from clara_hydra.export.checkpoint import find_checkpoint, load_weights
from clara_hydra.export.metadata import build_metadata, validate_metadata
from clara_hydra.export.select import SelectedTrial
from clara_hydra.export.trial_config import MISSING, TrialConfig, load_trial_config
from clara_hydra.runtime.summary import read_summary

CHECKPOINT_FILE = "models/model.pt"
EVAL_DIR = "eval"
RESERVED_IDS = (
    ROOT_ID,
    DEVICE_ID,
    NETWORK_ID,
    "ckpt_path",
    "output_dir",
    "initialize",
    "run",
    "train",
    "validate",
    SECTION,
    *INFER_IDS,
)
# Handlers an evaluation has no use for: it saves no checkpoint and writes no training curves.
_NOT_FOR_EVALUATION = ("CheckpointSaver", "TensorBoardStatsHandler", "TensorBoardImageHandler", "ValidationHandler")


@dataclass
class BundleExport:
    """What :func:`export_bundle` wrote.

    Args:
        root: the bundle folder.
        checkpoint: the trial's checkpoint the weights came from.
        files: the files written, relative to ``root``.
        notes: things the user should know (e.g. a clara-hydra callable the bundle needs).
    """

    root: Path
    checkpoint: Path
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def export_bundle(trial: SelectedTrial, out: str | os.PathLike[str], *, force: bool = False) -> BundleExport:
    """Write ``trial`` as a MONAI bundle into ``out``.

    Args:
        trial: the trial (see :func:`clara_hydra.export.select.select_trial`).
        out: the bundle folder; created.
        force: write into a non-empty folder.

    Returns:
        What was written.

    Raises:
        ExportError: the folder is not empty, the trial has no checkpoint, a node has no bundle form,
            the weights do not fit the exported network, the metadata breaks MONAI's schema.
    """
    root = Path(out).resolve()
    if root.exists() and any(root.iterdir()) and not force:
        raise ExportError(with_fix(f"{root} is not empty", "choose a new folder, or pass --force to write into it"))
    checkpoint = find_checkpoint(trial.job_dir)
    tc = load_trial_config(trial, job_dir_base=root)
    for section, slot in (("train", "trainer"), ("train", "model")):
        if not isinstance(tc.resolved.get(section), dict) or slot not in tc.resolved[section]:
            raise ExportError(f"trial {trial.number}: its config has no {section}.{slot}: not a training config")
    variables = tc.variables()
    clash = sorted(set(variables) & set(RESERVED_IDS))
    if clash:
        raise ExportError(f"top-level name(s) {clash} are ids the bundle needs itself ({list(RESERVED_IDS)})")
    t = BundleTranslator(tc, variables)
    common = _common(t, tc, variables)
    train = relocate(_train_config(t, tc, common), root)
    result = BundleExport(root=root, checkpoint=checkpoint)
    evaluate = _evaluate_config(t, tc, common, result.notes)
    evaluate = relocate(evaluate, root) if evaluate is not None else None
    inference = _inference_config(t, tc, common, result.notes)
    inference = relocate(inference, root) if inference is not None else None
    _drop_missing(tc, [c for c in (train, evaluate, inference) if c is not None])

    weights = load_weights(checkpoint)
    _check_weights(train, weights, checkpoint)
    if t.uses_clara_hydra:
        result.notes.append("the configs name clara_hydra callables (discard_output, ...): install clara-hydra")
    meta = _metadata(tc, trial, t.uses_clara_hydra)
    validate_metadata(meta)

    import torch

    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "docs").mkdir(parents=True, exist_ok=True)
    _write_json(root / "configs" / "train.json", train)
    result.files.append("configs/train.json")
    if evaluate is not None:
        _write_json(root / "configs" / "evaluate.json", evaluate)
        result.files.append("configs/evaluate.json")
    else:
        result.notes.append("no validate section: no configs/evaluate.json nor configs/inference.json")
    if inference is not None:
        _write_json(root / "configs" / "inference.json", inference)
        result.files.append("configs/inference.json")
    (root / "configs" / "logging.conf").write_text(bundle_docs.LOGGING_CONF)
    _write_json(root / "configs" / "metadata.json", meta)
    torch.save(weights, root / "models" / "model.pt")
    (root / "LICENSE").write_text(bundle_docs.license_text(trial))
    datalist = {k: inference[k] for k in INFER_IDS} if inference is not None else None
    readme = bundle_docs.readme(
        trial, checkpoint, variables, result.notes, data_ids(train, variables), result.files, datalist
    )
    (root / "docs" / "README.md").write_text(readme)
    result.files += ["configs/metadata.json", "configs/logging.conf", "models/model.pt", "LICENSE", "docs/README.md"]
    return result


def _common(t: BundleTranslator, tc: TrialConfig, variables: list[str]) -> dict[str, Any]:
    """The ids both configs start with: the bundle root, the device, the trial's variables, the network."""
    common: dict[str, Any] = {
        ROOT_ID: ROOT_DEFAULT,
        # CUDA when there is one, else the CPU: an importable callable instead of a `$torch.device(...)` expression.
        DEVICE_ID: {"_target_": "ignite.distributed.device"},
    }
    for name in variables:
        common[name] = built_on_variable(tc, name, variables) or t.variable_value(name)
    common[NETWORK_ID] = t.node(MODEL_PATH)
    return common


def _drop_missing(tc: TrialConfig, configs: list[dict[str, Any]]) -> None:
    """Leave out variables without a value (``???``) that no config uses; refuse those that one uses."""
    for config in configs:
        missing = [k for k in tc.variables() if config.get(k) == MISSING]
        used = sorted(set(missing) & references({k: v for k, v in config.items() if k not in missing}))
        if used:
            raise ExportError(
                with_fix(f"the trial's {used} have no value (???)", "export a trial that ran with them set")
            )
        for name in missing:
            del config[name]


def _initialize(tc: TrialConfig) -> list[Any]:
    seed = (tc.resolved.get("determinism") or {}).get("random_seed") if isinstance(tc.resolved, dict) else None
    if seed is None:
        return []
    return [{"_target_": "monai.utils.set_determinism", "seed": f"@determinism{SEP}random_seed"}]


def _train_config(t: BundleTranslator, tc: TrialConfig, common: dict[str, Any]) -> dict[str, Any]:
    config = dict(common)
    for section in ("train", "validate"):
        if isinstance(tc.resolved.get(section), dict):
            config[section] = {
                slot: t.node(f"{section}.{slot}") for slot in tc.resolved[section] if f"{section}.{slot}" != MODEL_PATH
            }
    trainer_target = tc.resolved["train"]["trainer"]["_target_"]
    config["initialize"] = _initialize(tc)
    # `Workflow.run` as an importable callable with the trainer as `self`: no `$@train::trainer.run()`.
    config["run"] = [{"_target_": f"{trainer_target}.run", "self": f"@train{SEP}trainer"}]
    return config


def _loader() -> dict[str, Any]:
    """The handler that loads ``models/model.pt`` into the network (a plain ``state_dict``, on the CPU first)."""
    return {
        "_target_": "monai.handlers.CheckpointLoader",
        "load_path": "@ckpt_path",
        "load_dict": {"model": f"@{NETWORK_ID}"},
        "map_location": "cpu",
    }


def _finish(
    t: BundleTranslator, tc: TrialConfig, config: dict[str, Any], section: str, evaluator: str
) -> dict[str, Any]:
    """The train slots the section refers to (rare), ``initialize`` and ``run`` (the evaluator's ``run``)."""
    train = _referenced_train_slots(t, tc, config)
    if train:
        config["train"] = train
    config["initialize"] = _initialize(tc)
    config["run"] = [{"_target_": f"{evaluator}.run", "self": f"@{section}{SEP}evaluator"}]
    return config


def _inference_config(
    t: BundleTranslator, tc: TrialConfig, common: dict[str, Any], notes: list[str]
) -> dict[str, Any] | None:
    """``inference.json``: label maps of new images, no label and no metric (:mod:`bundle_infer`)."""
    validate = tc.resolved.get("validate")
    if not isinstance(validate, dict) or "evaluator" not in validate:
        return None
    slots = {slot: t.node(f"validate.{slot}") for slot in validate}
    made = inference_section(slots, _loader(), _model_io(tc)[1], notes)
    if made is None:
        return None
    ids, section = made
    config = {**common, **ids, "ckpt_path": under_root(CHECKPOINT_FILE), "output_dir": under_root(EVAL_DIR)}
    config[SECTION] = section
    return _finish(t, tc, config, SECTION, validate["evaluator"]["_target_"])


def _evaluate_config(
    t: BundleTranslator, tc: TrialConfig, common: dict[str, Any], notes: list[str]
) -> dict[str, Any] | None:
    """``evaluate.json``: the trial's validation (labels, metrics) with models/model.pt, saving label maps."""
    validate = tc.resolved.get("validate")
    if not isinstance(validate, dict) or "evaluator" not in validate:
        return None
    config = dict(common)
    config["ckpt_path"] = under_root(CHECKPOINT_FILE)
    config["output_dir"] = under_root(EVAL_DIR)
    section = {slot: t.node(f"validate.{slot}") for slot in validate}
    handlers = section.get("handlers")
    kept = [h for h in handlers if not _is_handler(h, _NOT_FOR_EVALUATION)] if isinstance(handlers, list) else []
    section["handlers"] = [_loader(), *kept]
    post = section.get("post_transforms")
    if is_compose(post):
        pre = section.get("pre_transforms")
        invertible = is_compose(pre)
        if invertible:
            tensors_invertible(pre)
        else:
            notes.append("validate.pre_transforms is no Compose: the label maps keep the transformed geometry")
        post["transforms"] += label_map_transforms(post["transforms"], _model_io(tc)[1], invert=invertible)
    else:
        notes.append("validate.post_transforms is no Compose of transforms: evaluate.json saves no label map")
    config["validate"] = section
    return _finish(t, tc, config, "validate", validate["evaluator"]["_target_"])


def _referenced_train_slots(t: BundleTranslator, tc: TrialConfig, config: dict[str, Any]) -> dict[str, Any]:
    train: dict[str, Any] = {}
    pending = references(config)
    while pending:
        ref = pending.pop()
        section, _, slot = ref.partition(SEP)
        if section != "train" or not slot or SEP in slot or slot in train:
            continue
        train[slot] = t.node(f"train.{slot}")
        pending |= references(train[slot])
    return train


def _is_handler(node: Any, names: tuple[str, ...]) -> bool:
    target = node.get("_target_", "") if isinstance(node, dict) else ""
    return isinstance(target, str) and target.rsplit(".", 1)[-1] in names


def _check_weights(train: dict[str, Any], weights: dict[str, Any], checkpoint: Path) -> None:
    """Build the exported network with MONAI's own parser and load the weights strictly: a mistranslated
    network argument fails here, not in the user's ``ckpt_export``."""
    from monai.bundle import ConfigParser

    parser = ConfigParser({k: v for k, v in train.items() if k not in ("train", "validate", "run", "initialize")})
    try:
        network = parser.get_parsed_content(NETWORK_ID)
        network.load_state_dict(weights, strict=True)
    except Exception as exc:
        raise ExportError(
            f"{checkpoint}: the weights do not fit the exported network_def: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0]}"
        ) from exc


def _model_io(tc: TrialConfig) -> tuple[int, int, int]:
    """``(in_channels, out_channels, spatial_dims)`` of the trial's network (1, 1, 3 where it does not say)."""
    model = tc.resolved["train"]["model"]
    if not isinstance(model, dict):
        return 1, 1, 3
    return int(model.get("in_channels", 1)), int(model.get("out_channels", 1)), int(model.get("spatial_dims", 3))


def _spatial_shape(tc: TrialConfig, dims: int) -> list[Any]:
    """The network's input patch: the validation's ``roi_size``, else a multiple of the network's total
    stride (``"16*n"``: ``verify_net_in_out`` builds its test input from it), else any size (``"*"``)."""
    roi = (tc.resolved.get("validate") or {}).get("inferer", {})
    roi_size = roi.get("roi_size") if isinstance(roi, dict) else None
    if isinstance(roi_size, list) and len(roi_size) == dims and all(isinstance(s, int) for s in roi_size):
        return list(roi_size)
    model = tc.resolved["train"]["model"]
    strides = model.get("strides") if isinstance(model, dict) else None
    if isinstance(strides, list) and strides and all(isinstance(s, int) for s in strides):
        return [f"{math.prod(strides)}*n"] * dims
    return ["*"] * dims


def _metadata(tc: TrialConfig, trial: SelectedTrial, needs_clara_hydra: bool) -> dict[str, Any]:
    in_channels, out_channels, dims = _model_io(tc)
    summary = read_summary(trial.job_dir)
    metric = str(summary.get("objective", {}).get("name") or "key_metric")
    return build_metadata(
        study=trial.study_name,
        trial=trial.number,
        metric=metric,
        value=trial.value,
        overrides=trial.overrides,
        in_channels=in_channels,
        out_channels=out_channels,
        spatial=_spatial_shape(tc, dims),
        input_range=_input_range(tc),
        data_source=str(tc.resolved.get("DATASET_JSON") or tc.resolved.get("DATA_ROOT") or "see docs/README.md"),
        needs_clara_hydra=needs_clara_hydra,
        label_dtype=label_dtype(out_channels),
        class_names=_class_names(tc, out_channels),
    )


def _class_names(tc: TrialConfig, out_channels: int) -> dict[str, str]:
    """The classes' names from the validation datalist's ``labels`` (the Medical Segmentation Decathlon's
    ``{"0": "background", "1": "spleen"}``) where it names each class index once; else none."""
    found = find_target(tc.resolved.get("validate"), "clara_hydra.data.load_datalist")
    path = found.get("data_list_file_path") if found else None
    if not isinstance(path, str):
        return {}
    try:
        labels = json.loads((tc.launch_dir / path).read_text()).get("labels")
    except (OSError, ValueError, AttributeError):
        return {}
    wanted = {str(i) for i in range(max(out_channels, 2))}
    if not isinstance(labels, dict) or set(labels) != wanted or not all(isinstance(v, str) for v in labels.values()):
        return {}
    return {k: labels[k] for k in sorted(labels, key=int)}


def _input_range(tc: TrialConfig) -> list[float]:
    """``[b_min, b_max]`` of the first intensity scaling in the training transforms, else empty (unknown)."""
    pre = (tc.resolved.get("train") or {}).get("pre_transforms")
    for node in pre.values() if isinstance(pre, dict) else []:
        if isinstance(node, dict) and isinstance(node.get("b_min"), int | float) and "b_max" in node:
            return [float(node["b_min"]), float(node["b_max"])]
    return []


def _write_json(path: Path, content: Any) -> None:
    path.write_text(json.dumps(content, indent=2) + "\n")
