"""Clara 3.x (TensorFlow, ``ai4med``) components: their MONAI/torch counterparts, or why there is none.

Sources: NVIDIA's Clara Train 3.1 API documentation (pages "ai4med.components.lr_policies package",
"ai4med.libs.lr_policies package", "ai4med.components.losses package", "ai4med.components.transforms
package") and the 4.0 migration page ("Converting from Clara 3.1 to Clara 4.0"). These rules apply to a
name that only Clara 3.x had, in any file; a name MONAI also has (``Dice``, ``Unet``) follows them only
when the component is evidently the 3.x one (see :func:`is_tf_component`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from clara_hydra.convert.legacy.rules import Fold, Rule, concrete
from clara_hydra.convert.model import Var, VarText

_T = "monai.transforms."
_COMPAT = "clara_hydra.components."
#: Clara 3.x's poly schedules ran for the whole training: ``{epochs}``, the first-level variable
_EPOCHS = VarText((Var("epochs"),))


def _negate(old: str, new: str) -> Fold:
    def func(v: Mapping[str, Any]) -> dict[str, Any]:
        return {new: not concrete(v[old], old)}

    return Fold((old,), func, f"'{old}: x' means '{new}: not x'")


def _spacing_mode(v: Mapping[str, Any]) -> dict[str, Any]:
    # Clara resampled labels with nearest neighbour; MONAI's Spacingd chooses by `mode`.
    return {"mode": "nearest" if concrete(v["is_label"], "is_label") else "bilinear"}


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _crop_keys(image_arg: str) -> Fold:
    # Clara cropped the image field(s) *and* the label field together; MONAI crops exactly `keys`.
    def func(v: Mapping[str, Any]) -> dict[str, Any]:
        label = v.get("label_field", "label")
        keys = _as_list(v.get(image_arg, "image"))
        return {"keys": keys + ([label] if label not in keys else []), "label_key": label}

    return Fold((image_arg, "label_field"), func, "Clara cropped the image and the label field together")


def _comma_ints(arg: str) -> Fold:
    def func(v: Mapping[str, Any]) -> dict[str, Any]:
        raw = concrete(v[arg], arg)
        return {arg: [int(x) for x in raw.split(",")] if isinstance(raw, str) else raw}

    return Fold((arg,), func, f"Clara wrote '{arg}' as a comma-separated string; MONAI takes a sequence")


def _group_norm(v: Mapping[str, Any]) -> dict[str, Any]:
    if not concrete(v.get("use_group_norm", True), "use_group_norm"):
        return {"norm": "BATCH"}
    return {"norm": ["GROUP", {"num_groups": concrete(v.get("use_group_normG", 8), "use_group_normG")}]}


_PER_STEP = (
    "Clara counted decay_freq in training steps (iterations): step it per iteration "
    "(LrScheduleHandler with epoch_level: false), or divide step_size by the iterations per epoch"
)
_PLATEAU = (
    "mode=max assumes a higher-is-better key metric (Dice); LrScheduleHandler must step it with that metric "
    "(step_transform), and torch checks it on each step, Clara on each validation"
)


def _variance(v: Mapping[str, Any]) -> dict[str, Any]:
    return {"std": math.sqrt(float(concrete(v["variance"], "variance")))}


def _patience(v: Mapping[str, Any]) -> dict[str, Any]:
    # Clara reduced once the metric had not improved `plateau_count_trigger` times; torch once the bad epochs
    # exceed `patience`.
    return {"patience": max(int(concrete(v["plateau_count_trigger"], "plateau_count_trigger")) - 1, 0)}


_FINAL_ACT = "MONAI networks return logits: add sigmoid/softmax to the loss and an Activationsd post-transform"


def _tf(old: str, new: str, why: str, *, fields: bool = True, prob: bool = False, **kw: Any) -> Rule:
    """A 3.x rule. ``fields``/``prob``: the target takes ``keys``/``prob`` for 3.x ``fields``/``probability``."""
    common = {"fields": "keys"} if fields else {}
    if prob:
        common["probability"] = "prob"
    return Rule(old, new, why, renames={**common, **kw.pop("renames", {})}, drop_unknown=True, **kw)


# Clara 3.x (TensorFlow) components with an evident MONAI counterpart. Applied only to 3.x configs, before
# the name is looked up (3.x `Dice`, `Unet` mean Clara's classes, not MONAI's aliases of the same name).
TF_RULES: tuple[Rule, ...] = (
    _tf("LoadNifti", _T + "LoadImaged", "reads NIfTI into the fields"),
    _tf("ConvertToChannelsFirst", _T + "EnsureChannelFirstd", "moves or adds the channel axis first"),
    _tf("ScaleIntensityRange", _T + "ScaleIntensityRanged", "same linear window, same args"),
    _tf(
        "ScaleByResolution",
        _T + "Spacingd",
        "resamples to a voxel size",
        renames={"target_resolution": "pixdim", "is_label": "mode"},
        folds=(Fold(("is_label",), _spacing_mode, "labels are resampled with nearest"),),
    ),
    _tf(
        "CropFixedSizeRandomCenter",
        _T + "RandSpatialCropd",
        "fixed-size crop at a random centre",
        renames={"size": "roi_size"},
        add={"random_size": False},
    ),
    _tf(
        "FastCropByPosNegRatio",
        _T + "RandCropByPosNegLabeld",
        "crops centred on foreground/background with ratio pos:neg",
        renames={"fields": "keys", "label_field": "label_key", "size": "spatial_size", "batch_size": "num_samples"},
        folds=(_crop_keys("fields"),),
    ),
    _tf(
        "FastPosNegRatioCropROI",
        _T + "RandCropByPosNegLabeld",
        "crops centred on foreground/background with ratio pos:neg",
        fields=False,
        renames={
            "image_field": "keys",
            "label_field": "label_key",
            "size": "spatial_size",
            "batch_size": "num_samples",
        },
        folds=(_crop_keys("image_field"),),
        drop={
            a: "its built-in augmentation has no place in a MONAI crop: add RandRotated/RandZoomd/Rand3DElasticd"
            for a in ("deform", "rotation", "rotation_degree", "scale", "scale_factor", "fast_crop")
        },
    ),
    _tf("RandomAxisFlip", _T + "RandAxisFlipd", "flips along one random axis", prob=True),
    _tf("RandomSpatialFlip", _T + "RandFlipd", "random flip of the spatial axes", prob=True),
    # "ai4med.components.transforms package": AddGaussianNoise(fields, probability=0.5, variance=0.1).
    _tf(
        "AddGaussianNoise",
        _T + "RandGaussianNoised",
        "adds Gaussian noise with a probability",
        prob=True,
        folds=(Fold(("variance",), _variance, "MONAI takes the standard deviation"),),
        # Clara's defaults, not MONAI's (prob 0.1, std 0.1); MONAI samples the std from [0, std] unless told not to.
        add={"prob": 0.5, "std": math.sqrt(0.1), "sample_std": False},
    ),
    _tf(
        "Dice",
        "monai.losses.DiceLoss",
        "soft Dice loss",
        fields=False,
        renames={"skip_background": "include_background", "is_onehot_targets": "to_onehot_y"},
        folds=(_negate("skip_background", "include_background"), _negate("is_onehot_targets", "to_onehot_y")),
        caveat="Clara's Dice took activated outputs; set sigmoid or softmax on DiceLoss if the network returns logits",
    ),
    _tf(
        "Focal",
        "monai.losses.FocalLoss",
        "focal loss",
        fields=False,
        renames={"skip_background": "include_background"},
        folds=(_negate("skip_background", "include_background"),),
    ),
    _tf(
        "SegResnet",
        "monai.networks.nets.SegResNet",
        "the same residual encoder-decoder (without the VAE branch)",
        fields=False,
        renames={"num_classes": "out_channels", "use_group_norm": "norm", "use_group_normG": "norm"},
        folds=(
            _comma_ints("blocks_down"),
            _comma_ints("blocks_up"),
            Fold(("use_group_norm", "use_group_normG"), _group_norm, "MONAI takes the norm layer by name"),
        ),
        drop={
            "final_activation": _FINAL_ACT,
            "use_vae": "the VAE branch is MONAI's SegResNetVAE; use it by hand if use_vae was true",
            "reg_weight": "the VAE regularisation weight belongs to SegResNetVAE",
        },
    ),
    _tf(
        "ReducePoly",
        "torch.optim.lr_scheduler.PolynomialLR",
        "polynomial decay of the learning rate",
        fields=False,
        renames={"poly_power": "power"},
        add={"total_iters": _EPOCHS},
        caveat="total_iters is set to {epochs}: the decay reaches zero at the last epoch, as Clara's did",
    ),
    # LR policies: "ai4med.components.lr_policies package" and "ai4med.libs.lr_policies package" (Clara 3.1 docs).
    _tf(
        "DecayOnStep",
        "torch.optim.lr_scheduler.StepLR",
        "multiplies the LR by decay_ratio every decay_freq steps",
        fields=False,
        renames={"decay_ratio": "gamma", "decay_freq": "step_size"},
        caveat=_PER_STEP,
    ),
    _tf(
        "ReduceCosine",
        _COMPAT + "ReduceCosineLR",
        "cosine reduction of the LR over the run's epochs",
        fields=False,
        add={"total_iters": _EPOCHS},
    ),
    _tf(
        "ReduceOnPlateau",
        "torch.optim.lr_scheduler.ReduceLROnPlateau",
        "reduces the LR when the validation metric stops improving",
        fields=False,
        renames={"reduction_rate": "factor", "plateau_count_trigger": "patience"},
        folds=(Fold(("plateau_count_trigger",), _patience, "torch reduces after patience + 1 bad epochs"),),
        add={"mode": "max"},
        caveat=_PLATEAU,
    ),
    # Losses: "ai4med.components.losses package" (Clara 3.1 docs).
    _tf(
        "MulticlassClassificationLoss",
        "torch.nn.CrossEntropyLoss",
        "softmax cross-entropy of logits against integer labels",
        fields=False,
    ),
    _tf(
        "BinaryClassificationLoss",
        "torch.nn.BCEWithLogitsLoss",
        "sigmoid cross-entropy of logits against 0/1 labels",
        fields=False,
        caveat="BCEWithLogitsLoss wants float labels: cast them (CastToTyped) if the label is integer",
    ),
    _tf(
        "WeightedMulticlassClassificationLoss",
        _COMPAT + "WeightedCrossEntropyLoss",
        "softmax cross-entropy weighted per class, averaged as TensorFlow did",
        fields=False,
    ),
)

# Clara 3.x components with no evident MONAI counterpart: reported, never guessed.
TF_NO_COUNTERPART: Mapping[str, str] = {
    "CrossEntropy": "3.x segmentation cross-entropy whose skip_background/smooth maths the docs do not give; "
    "use torch's CrossEntropyLoss or MONAI's DiceCELoss by hand",
    "SegAhnet": "Clara's AH-Net variant with 2D-pretrained weights; MONAI's AHNet differs in args and weights",
    "Unet": "Clara's TF U-Net (nf_enc/nf_dec); MONAI's UNet has another architecture",
    "TFSimpleInferer": "TensorFlow inferer; pick a MONAI inferer (SimpleInferer) by hand",
    "TFScanWindowInferer": "TensorFlow inferer; pick MONAI's SlidingWindowInferer by hand",
    "SegmentationImagePipeline": "3.x data pipeline; MONAI uses dataset + dataloader + transforms",
    "ClassificationImagePipeline": "3.x data pipeline; MONAI uses dataset + dataloader + transforms",
    "DiceMaskedOutput": "3.x auxiliary op; no MONAI counterpart",
    "NegLoss": "3.x auxiliary op; no MONAI counterpart",
    "ComputeAverage": "3.x metric over a tensor tag; use a MONAI handler metric instead",
    "ComputeAverageDice": "3.x metric; MONAI's MeanDice handler is the usual replacement",
    "RandomRotate3D": "3.x rotation by multiples of 90 degrees on random axes; MONAI's RandRotate90d differs",
    "RandomZoom": "3.x zoom; MONAI's RandZoomd differs in probability and interpolation",
    "ScaleIntensityOscillation": "3.x intensity oscillation; semantics differ from RandScaleIntensityd",
    "ScaleShiftIntensity": "3.x fixed scale+shift; MONAI splits it into two transforms",
}


TF_BY_NAME: Mapping[str, Rule] = {r.old: r for r in TF_RULES}
