"""The label-free inference.json's pipeline: the validation's transforms restricted to the image (no sweep)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import monai
import pytest

from clara_hydra.errors import ExportError
from clara_hydra.export.bundle_infer import PER_KEY_ARGS, inference_section, without_label

T = "monai.transforms."
BOTH = ["image", "label"]


def test_per_key_arguments_cover_monais() -> None:
    """Every argument MONAI's dictionary transforms expand per key (``ensure_tuple_rep(x, len(self.keys))``) is
    in the table: fails when MONAI adds one, which would otherwise keep the label's entry."""
    per_key = re.compile(r"ensure_tuple_rep\(\s*([a-z_]+),\s*len\(self\.keys\)\)")
    found = {
        name
        for path in Path(monai.__file__).parent.joinpath("transforms").rglob("*.py")
        for name in per_key.findall(path.read_text())
    }
    assert found, "MONAI's source changed shape: the pattern finds nothing"
    assert found <= PER_KEY_ARGS, sorted(found - PER_KEY_ARGS)


def test_the_label_leaves_each_transform_with_its_per_key_values() -> None:
    transforms: list[Any] = [
        {"_target_": T + "LoadImaged", "keys": BOTH, "image_only": True},
        {"_target_": T + "Spacingd", "keys": BOTH, "pixdim": [1.5, 1.5], "mode": ["bilinear", "nearest"]},
        {"_target_": T + "CopyItemsd", "keys": "label", "names": "label_copy"},  # a copy of the label is a label
        {"_target_": T + "AsDiscreted", "keys": "label_copy", "to_onehot": 2},
        {"_target_": T + "CropForegroundd", "keys": BOTH, "source_key": "image", "margin": [1, 1]},
        {"_target_": T + "Compose", "transforms": [{"_target_": T + "EnsureTyped", "keys": BOTH, "dtype": ["a", "b"]}]},
        {"_target_": T + "ScaleIntensityd", "keys": "image"},
    ]
    assert without_label(transforms, "validate.pre_transforms") == [
        {"_target_": T + "LoadImaged", "keys": ["image"], "image_only": True},
        # pixdim is no per-key argument: two values for two spatial dims stay, though as many as the keys
        {"_target_": T + "Spacingd", "keys": ["image"], "pixdim": [1.5, 1.5], "mode": ["bilinear"]},
        {"_target_": T + "CropForegroundd", "keys": ["image"], "source_key": "image", "margin": [1, 1]},
        {"_target_": T + "Compose", "transforms": [{"_target_": T + "EnsureTyped", "keys": ["image"], "dtype": ["a"]}]},
        {"_target_": T + "ScaleIntensityd", "keys": "image"},
    ]


@pytest.mark.parametrize(
    ("node", "arg"),
    [
        ({"_target_": T + "CropForegroundd", "keys": BOTH, "source_key": "label"}, "source_key"),
        ({"_target_": T + "RandCropByPosNegLabeld", "keys": "image", "label_key": "label"}, "label_key"),
        ({"_target_": T + "Invertd", "keys": "pred", "orig_keys": ["label"]}, "orig_keys"),
    ],
)
def test_a_transform_that_reads_the_label_is_refused_where_it_is(node: dict[str, Any], arg: str) -> None:
    ok = {"_target_": T + "LoadImaged", "keys": BOTH}
    with pytest.raises(ExportError) as info:
        without_label([ok, node], "validate.pre_transforms")
    text = str(info.value)
    assert f"validate.pre_transforms[1] ({node['_target_']}): reads the label through {arg}=" in text
    assert "fix: make the trial's validation read the image there" in text


def test_no_inference_without_a_datalist_file_says_why() -> None:
    compose = {"_target_": T + "Compose", "transforms": []}
    notes: list[str] = []
    validate = {"pre_transforms": compose, "post_transforms": compose, "evaluator": {}, "dataset": {"data": []}}
    assert inference_section(validate, {}, 2, notes) is None
    assert notes == [
        "the validation reads no datalist file: no label-free configs/inference.json (evaluate.json has the validation)"
    ]
