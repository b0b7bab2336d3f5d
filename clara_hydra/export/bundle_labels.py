"""The label maps an exported bundle's ``inference.json`` writes: post-transforms after the validation's own."""

from __future__ import annotations

from typing import Any, TypeGuard

from clara_hydra.export.bundle_syntax import COMPOSE_TARGET, SEP

LABEL_MAP_KEY = "label_map"  # the prediction's label map in the inference's post-transforms
LABEL_MAP_POSTFIX = "seg"  # <image name>_seg.nii.gz, as MONAI's model zoo segmentation bundles name them


def label_map_transforms(out_channels: int, *, invert: bool = True) -> list[dict[str, Any]]:
    """Post-transforms that save the prediction as a label map, after those of the validation (which the
    metrics read, so they stay): a copy of ``pred``, one channel of class indices (argmax over the channels;
    a one-channel network's probability thresholded at 0.5), the geometry of the source image restored by
    inverting the pre-transforms (``Invertd``, nearest neighbour: labels stay labels) and saved as NIfTI
    ``<image>_seg.nii.gz`` in the smallest integer type that holds the classes.
    """
    discrete: dict[str, Any] = {"argmax": True} if out_channels > 1 else {"threshold": 0.5}
    restore = {
        "_target_": "monai.transforms.Invertd",
        "keys": LABEL_MAP_KEY,
        "transform": f"@validate{SEP}pre_transforms",
        "orig_keys": "image",
        "nearest_interp": True,
        "to_tensor": True,
    }
    return [
        {"_target_": "monai.transforms.CopyItemsd", "keys": "pred", "names": LABEL_MAP_KEY},
        {"_target_": "monai.transforms.AsDiscreted", "keys": LABEL_MAP_KEY, **discrete},
        *([restore] if invert else []),
        {
            "_target_": "monai.transforms.SaveImaged",
            "keys": LABEL_MAP_KEY,
            "output_dir": "@output_dir",
            "output_postfix": LABEL_MAP_POSTFIX,
            "output_dtype": "uint8" if out_channels <= 256 else "int32",
            "resample": False,
            "separate_folder": False,
            "print_log": False,
        },
    ]


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
