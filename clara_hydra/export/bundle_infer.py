"""The label-free ``configs/inference.json`` of an exported bundle: the trial's validation pipeline on new images.

``configs/evaluate.json`` is the validation as the trial ran it (labels, metrics). ``inference.json`` is what MONAI's
model zoo ships under that name: images only, in a MONAI datalist JSON read by ``monai.data.load_decathlon_datalist``
(no ``$``: the zoo's ``"$list(sorted(glob.glob(...)))"`` has no `$`-free form, a datalist file has), the
validation's deterministic pre-transforms restricted to the image (:func:`without_label`), the same inferer, the
network's output made a label map in the source geometry (:mod:`bundle_labels`), and no metric.

Which key is the label: MONAI's ``CommonKeys.LABEL`` (``"label"``), the only key the evaluator's default
``prepare_batch`` reads as the ground truth, and Clara's name for it. Keys made from it (``CopyItemsd`` of the
label) go with it.
"""

from __future__ import annotations

from typing import Any

from clara_hydra.errors import ExportError, with_fix
from clara_hydra.export.bundle_labels import is_compose, label_map_transforms, tensors_invertible
from clara_hydra.export.bundle_syntax import SEP, references

LABEL_KEY = "label"
IMAGE_KEY = "image"
SECTION = "infer"
DATALIST_TARGET = "monai.data.load_decathlon_datalist"
DATALIST_FILE, DATALIST_KEY, DATASET_DIR = "datalist_file", "datalist_key", "dataset_dir"
INFER_IDS = (DATALIST_FILE, DATALIST_KEY, DATASET_DIR)

# Arguments of MONAI's dictionary transforms that hold one value per key: MONAI expands each with
# `ensure_tuple_rep(value, len(self.keys))`, so a list as long as `keys` is one value per key, and dropping a key
# drops its entry. The test `test_per_key_arguments_cover_monais` reads MONAI's source and fails when MONAI adds one.
PER_KEY_ARGS = frozenset(
    [
        "additional_info",
        "align_corners",
        "anti_aliasing",
        "anti_aliasing_sigma",
        "argmax",
        "data_shape",
        "data_type",
        "data_value",
        "delay_time",
        "device",
        "dst_keys",
        "dtype",
        "factor_key",
        "field_mode",
        "func",
        "grid_mode",
        "inv_func",
        "meta_info",
        "meta_key_postfix",
        "meta_keys",
        "mode",
        "nearest_interp",
        "orig_keys",
        "orig_meta_keys",
        "other",
        "overwrite",
        "padding_mode",
        "post_func",
        "prefix",
        "refer_keys",
        "rounding",
        "scale_extent",
        "sigmoid",
        "softmax",
        "threshold",
        "to_onehot",
        "to_tensor",
        "use_re",
        "value_range",
    ]
)
# Arguments that name the keys a transform writes (CopyItemsd's names, ConcatItemsd's name): not a read.
_OUTPUT_ARGS = frozenset({"name", "names"})
# Handlers with nothing to do without a label: checkpoints, curves, metric files.
NOT_FOR_INFERENCE = (
    "CheckpointSaver",
    "TensorBoardStatsHandler",
    "TensorBoardImageHandler",
    "ValidationHandler",
    "MetricsSaver",
    "MetricLogger",
    "EarlyStopHandler",
)


def _keys(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _names(node: dict[str, Any]) -> set[str]:
    return {n for arg in _OUTPUT_ARGS for n in _keys(node.get(arg)) if isinstance(n, str)}


def _target(node: Any) -> str:
    return str(node.get("_target_", "?")) if isinstance(node, dict) else type(node).__name__


def without_label(transforms: list[Any], where: str, dropped: set[str] | None = None) -> list[Any]:
    """``transforms`` (a Compose's list) as they run on an image alone: the label's keys left out of each
    ``keys`` (with their entries of the per-key arguments, :data:`PER_KEY_ARGS`), a transform of the label alone
    left out, a nested Compose restricted the same way.

    Args:
        transforms: the translated transform nodes.
        where: their place in the trial's config, for messages (``validate.pre_transforms``).
        dropped: the keys to leave out (default: the label); keys written from them are added.

    Raises:
        ExportError: a kept transform reads the label through another argument (``CropForegroundd`` with
            ``source_key: label``): it cannot run without one.
    """
    dropped = {LABEL_KEY} if dropped is None else dropped
    kept: list[Any] = []
    for i, node in enumerate(transforms):
        place = f"{where}[{i}] ({_target(node)})"
        if not isinstance(node, dict):
            kept.append(node)
            continue
        out = dict(node)
        if is_compose(node):
            out["transforms"] = without_label(node["transforms"], f"{place}.transforms", dropped)
        if "keys" in node:
            keys = _keys(node["keys"])
            keep = [j for j, k in enumerate(keys) if k not in dropped]
            if not keep:
                dropped |= _names(node)  # a copy of the label is a label too
                continue
            if len(keep) < len(keys):
                out["keys"] = [keys[j] for j in keep]
                for arg in PER_KEY_ARGS & node.keys():
                    value = node[arg]
                    if isinstance(value, list) and len(value) == len(keys):
                        out[arg] = [value[j] for j in keep]
        _refuse_label_reads(out, dropped, place)
        kept.append(out)
    return kept


def _refuse_label_reads(node: dict[str, Any], dropped: set[str], place: str) -> None:
    for arg, value in node.items():
        if arg in ("_target_", "keys", "transforms", *_OUTPUT_ARGS):
            continue
        read = sorted(k for k in _keys(value) if isinstance(k, str) and k in dropped)
        if read:
            raise ExportError(
                with_fix(
                    f"{place}: reads the label through {arg}={value!r}; the bundle's label-free "
                    "configs/inference.json cannot run it on new images (and an image-only stand-in would "
                    "predict on other voxels than the trial's validation)",
                    f"make the trial's validation read the image there ({arg}: {IMAGE_KEY}) and export a trial "
                    "that ran so, or use --to validation for a labelled evaluation",
                )
            )


def find_target(node: Any, target: str) -> dict[str, Any] | None:
    """The first node under ``node`` (depth first) whose ``_target_`` is ``target``."""
    if isinstance(node, dict):
        if node.get("_target_") == target:
            return node
        node = list(node.values())
    if isinstance(node, list):
        for item in node:
            found = find_target(item, target)
            if found is not None:
                return found
    return None


def _renamed(node: Any, old: str, new: str) -> Any:
    """References ``@old::x`` as ``@new::x``."""
    if isinstance(node, str) and node.startswith(f"@{old}{SEP}"):
        return f"@{new}{SEP}" + node[len(old) + len(SEP) + 1 :]
    if isinstance(node, dict):
        return {k: _renamed(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [_renamed(v, old, new) for v in node]
    return node


def _is_handler(node: Any, names: tuple[str, ...]) -> bool:
    target = node.get("_target_", "") if isinstance(node, dict) else ""
    return isinstance(target, str) and target.rsplit(".", 1)[-1] in names


def inference_section(
    validate: dict[str, Any], loader: dict[str, Any], out_channels: int, notes: list[str]
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The ``infer`` section of ``inference.json`` and the top-level ids that name its data, made from the
    translated ``validate`` section (its slots as bundle nodes); None (with a note) where it has no form.

    Args:
        validate: the validation's slots (``pre_transforms``, ``dataset``, ``evaluator``, ...).
        loader: the handler that loads ``models/model.pt``.
        out_channels: the network's output channels.
        notes: where to say why there is no inference.json.
    """
    pre, post = validate.get("pre_transforms"), validate.get("post_transforms")
    datalist = find_target(validate.get("dataset"), DATALIST_TARGET)
    problems = [
        *([] if is_compose(pre) else ["validate.pre_transforms is no Compose"]),
        *([] if is_compose(post) else ["validate.post_transforms is no Compose"]),
        *([] if datalist is not None else ["the validation reads no datalist file"]),
        *([] if "evaluator" in validate else ["there is no validate.evaluator"]),
    ]
    if problems or not is_compose(pre) or not is_compose(post) or datalist is None:
        notes.append(f"{'; '.join(problems)}: no label-free configs/inference.json (evaluate.json has the validation)")
        return None
    ids = {
        DATALIST_FILE: datalist.get("data_list_file_path"),
        DATALIST_KEY: datalist.get("data_list_key", "validation"),
        DATASET_DIR: datalist.get("base_dir"),
    }
    ref = f"@{SECTION}{SEP}"
    image_pre = {**pre, "transforms": without_label(pre["transforms"], "validate.pre_transforms")}
    tensors_invertible(image_pre)
    image_post = without_label(post["transforms"], "validate.post_transforms")
    image_post += label_map_transforms(image_post, out_channels, section=SECTION)
    handlers = validate.get("handlers")
    kept = [h for h in handlers if not _is_handler(h, NOT_FOR_INFERENCE)] if isinstance(handlers, list) else []
    metrics = ("key_val_metric", "additional_metrics", "metric_cmp_fn")
    evaluator = {k: v for k, v in validate["evaluator"].items() if k not in metrics}
    section: dict[str, Any] = {
        "pre_transforms": image_pre,
        "dataset": {
            "_target_": "monai.data.Dataset",
            "data": {
                "_target_": DATALIST_TARGET,
                "data_list_file_path": f"@{DATALIST_FILE}",
                "is_segmentation": False,  # relative label paths, if the list has any, are not even joined
                "data_list_key": f"@{DATALIST_KEY}",
                "base_dir": f"@{DATASET_DIR}",
            },
            "transform": f"{ref}pre_transforms",
        },
        "post_transforms": {**post, "transforms": image_post},
        "handlers": [loader, *kept],
        "evaluator": evaluator,
    }
    # The rest of the validation's slots (dataloader, inferer, ...) where the section still refers to them.
    pending = {r for r in references(section) if r.startswith(f"validate{SEP}")}
    done: set[str] = set()
    while pending:
        slot = pending.pop().split(SEP)[1]
        if slot in done or slot in section or slot not in validate:
            continue
        done.add(slot)
        section[slot] = validate[slot]
        pending |= {r for r in references(validate[slot]) if r.startswith(f"validate{SEP}")}
    order = [slot for slot in validate if slot in section] + [slot for slot in section if slot not in validate]
    section = _renamed({slot: section[slot] for slot in order}, "validate", SECTION)
    left = sorted(r for r in references(section) if r.startswith(f"{SECTION}{SEP}") and r.split(SEP)[1] not in section)
    if left:
        notes.append(f"the validation's {left} have no label-free form: no configs/inference.json")
        return None
    return ids, section
