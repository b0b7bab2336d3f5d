"""The label-map post-transforms of a bundle's inference.json, run by MONAI on tensors (no sweep, no files)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor

from clara_hydra.export.bundle_labels import LABEL_MAP_KEY, label_map_transforms, pred_channels

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
