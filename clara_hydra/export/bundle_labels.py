"""The label maps an exported bundle's ``evaluate.json`` and ``inference.json`` write: post-transforms after the
validation's own."""

from __future__ import annotations

from typing import Any, TypeGuard

from clara_hydra.export.bundle_syntax import COMPOSE_TARGET, SEP

LABEL_MAP_KEY = "label_map"  # the prediction's label map in the inference's post-transforms
_AS_DISCRETE = "monai.transforms.AsDiscreted"
LABEL_MAP_POSTFIX = "seg"  # <image name>_seg.nii.gz, as MONAI's model zoo segmentation bundles name them


def label_map_transforms(
    post: list[Any], out_channels: int, *, invert: bool = True, section: str = "validate"
) -> list[dict[str, Any]]:
    """Post-transforms that save the prediction as a label map, appended to the validation's own (``post``;
    the metrics read their ``pred``, so it stays): a copy of ``pred`` made one channel of class indices (the
    argmax over its channels; a one-channel probability thresholded at 0.5; nothing where the validation
    already made it a label map, see :func:`pred_channels`), the geometry of the source image restored by
    inverting the pre-transforms (``Invertd``, nearest neighbour: labels stay labels), saved as NIfTI
    ``<image>_seg.nii.gz`` in the smallest integer type that holds the classes. ``section`` is the config
    section whose ``pre_transforms`` are inverted.
    """
    channels, discrete = pred_channels(post, out_channels)
    if channels > 1:
        to_labels: list[dict[str, Any]] = [{"_target_": _AS_DISCRETE, "keys": LABEL_MAP_KEY, "argmax": True}]
    elif not discrete:
        to_labels = [{"_target_": _AS_DISCRETE, "keys": LABEL_MAP_KEY, "threshold": 0.5}]
    else:
        to_labels = []
    restore = {
        "_target_": "monai.transforms.Invertd",
        "keys": LABEL_MAP_KEY,
        "transform": f"@{section}{SEP}pre_transforms",
        "orig_keys": "image",
        "nearest_interp": True,
        "to_tensor": True,
    }
    return [
        {"_target_": "monai.transforms.CopyItemsd", "keys": "pred", "names": LABEL_MAP_KEY},
        *to_labels,
        *([restore] if invert else []),
        {
            "_target_": "monai.transforms.SaveImaged",
            "keys": LABEL_MAP_KEY,
            "output_dir": "@output_dir",
            "output_postfix": LABEL_MAP_POSTFIX,
            "output_dtype": label_dtype(out_channels),
            "resample": False,
            "separate_folder": False,
            "print_log": False,
        },
    ]


def label_dtype(out_channels: int) -> str:
    """The smallest integer type of the saved label maps that holds ``out_channels`` classes."""
    return "uint8" if out_channels <= 256 else "int32"


def pred_channels(post: list[Any], out_channels: int) -> tuple[int, bool]:
    """``(channels, discrete)`` of ``pred`` after the validation's post-transforms ``post``: the network's
    ``out_channels`` of scores, changed by each ``AsDiscreted`` of ``pred`` (``argmax`` makes one channel of
    class indices, ``to_onehot`` N channels, ``threshold`` discrete values); other transforms keep them."""
    channels, discrete = out_channels, False
    for node in post:
        if not isinstance(node, dict) or node.get("_target_") != _AS_DISCRETE:
            continue
        keys = node.get("keys")
        keys = [keys] if isinstance(keys, str) else keys
        if not isinstance(keys, list) or "pred" not in keys:
            continue
        argmax, onehot, threshold = (_for_key(node.get(k), keys) for k in ("argmax", "to_onehot", "threshold"))
        if argmax is True:
            channels, discrete = 1, True
        if isinstance(onehot, int) and not isinstance(onehot, bool) and onehot > 0:
            channels, discrete = onehot, True
        if threshold not in (None, False):
            discrete = True
    return channels, discrete


def _for_key(value: Any, keys: list[Any]) -> Any:
    """The value of a dictionary transform's argument for ``pred`` (a list holds one value per key)."""
    if isinstance(value, list) and len(value) == len(keys):
        return value[keys.index("pred")]
    return value


def is_compose(node: Any) -> TypeGuard[dict[str, Any]]:
    return (
        isinstance(node, dict) and node.get("_target_") == COMPOSE_TARGET and isinstance(node.get("transforms"), list)
    )


def tensors_invertible(node: Any) -> None:
    """``ToTensord`` -> ``EnsureTyped`` (same arguments, same tensors): MONAI's ``ToTensord.inverse`` gives a
    numpy array, on which the inverse of the transforms before it (a crop, a spacing) then fails, so
    ``Invertd`` could not restore the source geometry. ``EnsureTyped`` records nothing to invert."""
    if isinstance(node, list):
        for item in node:
            tensors_invertible(item)
    elif isinstance(node, dict):
        if node.get("_target_") == "monai.transforms.ToTensord":
            node["_target_"] = "monai.transforms.EnsureTyped"
            node.setdefault("wrap_sequence", True)  # ToTensord's default (EnsureTyped's may differ)
        for value in node.values():
            tensors_invertible(value)
