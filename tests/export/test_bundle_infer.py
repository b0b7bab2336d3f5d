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


def test_image_only_pipeline_sees_and_restores_what_the_validation_does(tmp_path: Path) -> None:
    """A validation that reorients, resamples (per-key modes), scales and crops: restricted to the image, it gives
    the network the same tensor with no label file anywhere, and its inverse puts the same label map back on the
    source grid as the full pipeline's (what evaluate.json and inference.json write for one image)."""
    import nibabel as nib
    import numpy as np
    import torch
    from monai.bundle import ConfigParser
    from monai.data import MetaTensor

    from clara_hydra.export.bundle_labels import LABEL_MAP_KEY, label_map_transforms, tensors_invertible

    grid = np.stack(np.meshgrid(*(np.arange(32),) * 3, indexing="ij"))
    ball = np.sqrt(((grid - np.array([14, 17, 16])[:, None, None, None]) ** 2).sum(0)) < 7
    affine = np.array([[-0.9, 0, 0, 30.0], [0, 1.1, 0, -12.0], [0, 0, 1.7, 4.0], [0, 0, 0, 1]])  # LAS, anisotropic
    nib.save(nib.Nifti1Image(np.where(ball, 200.0, -500.0).astype(np.float32), affine), tmp_path / "img.nii.gz")
    nib.save(nib.Nifti1Image(ball.astype(np.uint8), affine), tmp_path / "lab.nii.gz")
    pre = {
        "_target_": T + "Compose",
        "transforms": [
            {"_target_": T + "LoadImaged", "keys": BOTH},
            {"_target_": T + "EnsureChannelFirstd", "keys": BOTH},
            {"_target_": T + "Orientationd", "keys": BOTH, "axcodes": "RAS"},
            {"_target_": T + "Spacingd", "keys": BOTH, "pixdim": [1.5, 1.5, 2.0], "mode": ["bilinear", "nearest"]},
            {
                "_target_": T + "ScaleIntensityRanged",
                "keys": "image",
                "a_min": -100,
                "a_max": 300,
                "b_min": 0.0,
                "b_max": 1.0,
            },
            {"_target_": T + "CropForegroundd", "keys": BOTH, "source_key": "image", "margin": 2},
            {"_target_": T + "ToTensord", "keys": BOTH},
        ],
    }
    tensors_invertible(pre)
    image_pre = {**pre, "transforms": without_label(pre["transforms"], "validate.pre_transforms")}
    post = [{"_target_": T + "AsDiscreted", "keys": ["pred", "label"], "argmax": [True, False], "to_onehot": [2, 2]}]
    image_post = without_label(post, "validate.post_transforms")
    config = {
        "validate": {"pre_transforms": pre},
        "infer": {"pre_transforms": image_pre},
        "eval_post": {"_target_": T + "Compose", "transforms": [*post, *label_map_transforms(post, 2)[:-1]]},
        "infer_post": {
            "_target_": T + "Compose",
            "transforms": [*image_post, *label_map_transforms(image_post, 2, section="infer")[:-1]],
        },
    }
    parser = ConfigParser(config)
    full = parser.get_parsed_content("validate::pre_transforms")(
        {"image": str(tmp_path / "img.nii.gz"), "label": str(tmp_path / "lab.nii.gz")}
    )
    (tmp_path / "lab.nii.gz").unlink()  # inference has no label file
    alone = parser.get_parsed_content("infer::pre_transforms")({"image": str(tmp_path / "img.nii.gz")})
    assert "label" not in alone
    assert torch.equal(alone["image"].as_tensor(), full["image"].as_tensor())
    np.testing.assert_array_equal(np.asarray(alone["image"].affine), np.asarray(full["image"].affine))
    # One prediction (a network's logits: the scaled image against its complement), both ways to a label map.
    for item in (full, alone):
        logits = torch.cat([1 - item["image"].as_tensor(), item["image"].as_tensor()])
        item["pred"] = MetaTensor(logits, meta=item["image"].meta)
    evaluated = parser.get_parsed_content("eval_post")(full)[LABEL_MAP_KEY]
    inferred = parser.get_parsed_content("infer_post")(alone)[LABEL_MAP_KEY]
    assert tuple(inferred.shape) == (1, *ball.shape)
    np.testing.assert_allclose(np.asarray(inferred.affine), affine, atol=1e-5)
    assert torch.equal(inferred.as_tensor(), evaluated.as_tensor())
    assert 0 < int(inferred.sum()) < inferred.numel()  # a real map, not all one class
