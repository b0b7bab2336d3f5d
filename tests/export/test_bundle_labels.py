"""The label-map post-transforms of a bundle's inference.json, run by MONAI on tensors (no sweep, no files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor

from clara_hydra.export.bundle_labels import LABEL_MAP_KEY, label_map_transforms, pred_channels, tensors_invertible
from clara_hydra.export.bundle_syntax import SEP

AS_DISCRETE = "monai.transforms.AsDiscreted"
SOFTMAX = {"_target_": "monai.transforms.Activationsd", "keys": "pred", "softmax": True}
SIGMOID = {"_target_": "monai.transforms.Activationsd", "keys": "pred", "sigmoid": True}


def _logits(channels: int) -> torch.Tensor:
    return torch.randn(channels, 6, 5, 4, generator=torch.Generator().manual_seed(channels))


def _argmax(channels: int) -> torch.Tensor:
    return _logits(channels).argmax(0, keepdim=True)


CASES: list[tuple[str, list[dict[str, Any]], int, tuple[int, bool], torch.Tensor]] = [
    # name, the validation's post-transforms, out_channels, pred_channels, the expected label map
    (
        "one-hot, as Clara's validation for MeanDice",
        [SOFTMAX, {"_target_": AS_DISCRETE, "keys": "pred", "argmax": True, "to_onehot": 3}],
        3,
        (3, True),
        _argmax(3),
    ),
    (
        "per-key lists",
        [SOFTMAX, {"_target_": AS_DISCRETE, "keys": ["pred", "label"], "argmax": [True, False], "to_onehot": [3, 3]}],
        3,
        (3, True),
        _argmax(3),
    ),
    (
        "already a label map: not argmax'd again",
        [{"_target_": AS_DISCRETE, "keys": "pred", "argmax": True}],
        3,
        (1, True),
        _argmax(3),
    ),
    ("scores only", [SOFTMAX], 3, (3, False), _argmax(3)),
    ("no post-transform at all: logits", [], 2, (2, False), _argmax(2)),
    (
        "a label's transform leaves pred alone",
        [{"_target_": AS_DISCRETE, "keys": "label", "to_onehot": 3}],
        3,
        (3, False),
        _argmax(3),
    ),
    ("one channel: the probability thresholded", [SIGMOID], 1, (1, False), (_logits(1) > 0).long()),
    (
        "one channel, thresholded by the validation",
        [SIGMOID, {"_target_": AS_DISCRETE, "keys": "pred", "threshold": 0.5}],
        1,
        (1, True),
        (_logits(1) > 0).long(),
    ),
]


@pytest.mark.parametrize(
    ("post", "out_channels", "channels", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_label_map_is_the_class_index_whatever_the_validation_left(
    post: list[dict[str, Any]], out_channels: int, channels: tuple[int, bool], expected: torch.Tensor
) -> None:
    assert pred_channels(post, out_channels) == channels
    steps = label_map_transforms(post, out_channels, invert=False)
    assert steps[-1]["_target_"] == "monai.transforms.SaveImaged"
    assert steps[-1]["output_dtype"] == "uint8"
    compose = {"_target_": "monai.transforms.Compose", "transforms": [*post, *steps[:-1]]}
    transform = ConfigParser({"post": compose}).get_parsed_content("post")
    pred = MetaTensor(_logits(out_channels))
    out = transform({"pred": pred, "label": torch.zeros(1, 6, 5, 4)})
    assert out[LABEL_MAP_KEY].shape == (1, 6, 5, 4)
    assert torch.equal(out[LABEL_MAP_KEY].long(), expected)


def test_many_classes_need_a_wider_type() -> None:
    assert label_map_transforms([], 256)[-1]["output_dtype"] == "uint8"
    assert label_map_transforms([], 257)[-1]["output_dtype"] == "int32"


def test_totensord_inverse_still_gives_numpy() -> None:
    """Why the inference config has EnsureTyped where the trial had ToTensord (``tensors_invertible``): MONAI's
    ToTensord.inverse returns a numpy array, which the inverse of an earlier crop cannot take. When this test
    fails, MONAI fixed it and the swap can go."""
    from monai.transforms import Compose, CropForegroundd, EnsureTyped, ToTensord

    volume = np.zeros((1, 8, 8, 8), dtype=np.float32)
    volume[0, 2:5, 2:5, 2:5] = 1
    pre = Compose([CropForegroundd(keys="image", source_key="image"), ToTensord(keys="image")])
    with pytest.raises(RuntimeError, match=r"Cropd\.inverse"):
        pre.inverse(pre({"image": MetaTensor(volume)}))
    fixed = Compose([CropForegroundd(keys="image", source_key="image"), EnsureTyped(keys="image")])
    assert fixed.inverse(fixed({"image": MetaTensor(volume)}))["image"].shape == (1, 8, 8, 8)


def test_label_map_returns_to_the_source_grid_through_a_resampling_pipeline(tmp_path: Path) -> None:
    """The inversion on a pipeline that reorients and resamples (Clara's spleen validation), not only crops: the
    label map of a perfect prediction comes back on the source grid and affine, equal to the truth but for the
    nearest-neighbour round trip at the sphere's edge."""
    import nibabel as nib

    grid = np.stack(np.meshgrid(*(np.arange(40),) * 3, indexing="ij"))
    truth = (np.sqrt(((grid - np.array([18, 21, 20])[:, None, None, None]) ** 2).sum(0)) < 9).astype(np.uint8)
    image = np.where(truth > 0, 200.0, -500.0).astype(np.float32)
    affine = np.array([[-0.9, 0, 0, 30.0], [0, 1.1, 0, -12.0], [0, 0, 1.7, 4.0], [0, 0, 0, 1]])  # LAS, anisotropic
    for name, volume in (("img", image), ("lab", truth)):
        nib.save(nib.Nifti1Image(volume, affine), tmp_path / f"{name}.nii.gz")
    keys = ["image", "label"]
    pre = {
        "_target_": "monai.transforms.Compose",
        "transforms": [
            {"_target_": "monai.transforms.LoadImaged", "keys": keys},
            {"_target_": "monai.transforms.EnsureChannelFirstd", "keys": keys},
            {"_target_": "monai.transforms.Orientationd", "keys": keys, "axcodes": "RAS"},
            {
                "_target_": "monai.transforms.Spacingd",
                "keys": keys,
                "pixdim": [1.5, 1.5, 2.0],
                "mode": ["bilinear", "nearest"],
            },
            {
                "_target_": "monai.transforms.ScaleIntensityRanged",
                "keys": "image",
                "a_min": -100,
                "a_max": 300,
                "b_min": 0.0,
                "b_max": 1.0,
                "clip": True,
            },
            {"_target_": "monai.transforms.CropForegroundd", "keys": keys, "source_key": "image"},
            {"_target_": "monai.transforms.ToTensord", "keys": keys},
        ],
    }
    tensors_invertible(pre)
    post = [{"_target_": AS_DISCRETE, "keys": ["pred", "label"], "to_onehot": [2, 2]}]
    steps = label_map_transforms(post, 2)
    config = {
        "validate": {"pre_transforms": pre},
        "post": {"_target_": "monai.transforms.Compose", "transforms": [*post, *steps[:-1]]},
    }
    parser = ConfigParser(config)
    item = parser.get_parsed_content(f"validate{SEP}pre_transforms")(
        {"image": str(tmp_path / "img.nii.gz"), "label": str(tmp_path / "lab.nii.gz")}
    )
    assert item["image"].shape[1:] != truth.shape  # the network's grid is another one
    # A perfect network: its output is the transformed label, carrying the image's metadata (as the inferer's).
    item["pred"] = MetaTensor(item["label"].as_tensor().clone(), meta=item["image"].meta)
    out = parser.get_parsed_content("post")(item)[LABEL_MAP_KEY]
    assert tuple(out.shape) == (1, *truth.shape)
    np.testing.assert_allclose(np.asarray(out.affine), affine, atol=1e-5)
    back = out[0].numpy().astype(np.uint8)
    dice = 2 * np.logical_and(back == 1, truth == 1).sum() / ((back == 1).sum() + (truth == 1).sum())
    # Nearest neighbour twice (1.1 -> 1.5 -> 1.1 mm, ...) moves only voxels at the sphere's surface: measured
    # 0.940 for this radius-9 sphere. A one-voxel shift alone costs about 3/(4*9) = 0.08 on top, and a flipped
    # axis (the centre is off by 3 voxels in x) far more, so 0.93 fails any misplaced label map.
    assert dice > 0.93
