"""Rewrite tables: Clara-era MONAI (0.5-0.8) and Clara 3.x (TensorFlow) components to the MONAI 1.6 API.

Everything here is data: each :class:`Rule` says which legacy component becomes which current class, how
its arguments are renamed or folded, what is added, what is dropped, and *why*. :func:`apply_rule` runs a
rule over a component's args and reports every change, so the catalog can list each rewrite in the
conversion report. The tables are verified against the shipped signature index by the tests (every
target exists; every renamed or added argument is a parameter of the target).

Values may be placeholders (``"{VAR}"``, ``"@model"``, ``"#expr"``) or nested components; a rename keeps
them untouched, and a fold that needs a concrete value drops the argument with a warning instead of
guessing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from clara_hydra.errors import Diagnostic, Level

# Slots that hold metrics (4.1 key_metric/additional_metrics, 4.0 metrics).
METRIC_SLOTS = frozenset({"key_metric", "additional_metrics", "metrics"})


class Unfoldable(ValueError):
    """A fold needs a concrete value but got a placeholder, an expression or a component."""


def is_concrete(value: Any) -> bool:
    """Whether a value is plain data a fold may compute with (not ``{VAR}``, ``@ref``, ``#expr`` or a component)."""
    if isinstance(value, str):
        return not (value.startswith(("@", "#")) or "{" in value)
    if isinstance(value, list | tuple):
        return all(is_concrete(v) for v in value)
    return not isinstance(value, dict)


def _concrete(value: Any, arg: str) -> Any:
    if not is_concrete(value):
        raise Unfoldable(f"'{arg}' is {value!r}, not a literal value")
    return value


def _each(value: Any, func: Callable[[Any], Any]) -> Any:
    """Apply ``func`` to a value or to each item of a per-key list (MONAI's dictionary transforms take both)."""
    return [func(v) for v in value] if isinstance(value, list) else func(value)


# ---------------------------------------------------------------------------------------------- folds


@dataclass(frozen=True)
class Fold:
    """A value rewrite: consumes the original args ``reads`` (those present) and returns the new args."""

    reads: tuple[str, ...]
    func: Callable[[Mapping[str, Any]], dict[str, Any]]
    why: str


def _onehot(v: Mapping[str, Any]) -> dict[str, Any]:
    # MONAI 0.8 made `to_onehot` the number of classes; `to_onehot: true` + `n_classes: N` is `to_onehot: N`.
    n = v.get("n_classes", v.get("num_classes"))
    if "to_onehot" not in v:
        return {}
    if n is None and not is_concrete(v["to_onehot"]):
        return {"to_onehot": v["to_onehot"]}  # a placeholder alone is today's spelling already: leave it
    onehot = _concrete(v["to_onehot"], "to_onehot")

    def one(flag: Any) -> Any:
        if flag is True:
            if n is None:
                raise Unfoldable("'to_onehot: true' needs the number of classes (n_classes)")
            return _concrete(n, "n_classes")
        return None if flag is False else flag

    return {"to_onehot": _each(onehot, one)}


def _threshold(v: Mapping[str, Any]) -> dict[str, Any]:
    # MONAI 0.8 merged `threshold_values: true` + `logit_thresh: t` into `threshold: t`.
    flags = _concrete(v.get("threshold_values", False), "threshold_values")
    thresh = _concrete(v.get("logit_thresh", 0.5), "logit_thresh")
    if isinstance(flags, list):
        threshs = thresh if isinstance(thresh, list) else [thresh] * len(flags)
        return {"threshold": [t if f else None for f, t in zip(flags, threshs, strict=False)]}
    return {"threshold": thresh if flags else None}


def _negate(old: str, new: str) -> Fold:
    def func(v: Mapping[str, Any]) -> dict[str, Any]:
        return {new: not _concrete(v[old], old)}

    return Fold((old,), func, f"'{old}: x' means '{new}: not x'")


def _spacing_mode(v: Mapping[str, Any]) -> dict[str, Any]:
    # Clara resampled labels with nearest neighbour; MONAI's Spacingd chooses by `mode`.
    return {"mode": "nearest" if _concrete(v["is_label"], "is_label") else "bilinear"}


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
        raw = _concrete(v[arg], arg)
        return {arg: [int(x) for x in raw.split(",")] if isinstance(raw, str) else raw}

    return Fold((arg,), func, f"Clara wrote '{arg}' as a comma-separated string; MONAI takes a sequence")


def _group_norm(v: Mapping[str, Any]) -> dict[str, Any]:
    if not _concrete(v.get("use_group_norm", True), "use_group_norm"):
        return {"norm": "BATCH"}
    return {"norm": ["GROUP", {"num_groups": _concrete(v.get("use_group_normG", 8), "use_group_normG")}]}


# ---------------------------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    """How one legacy component becomes a current one.

    Args:
        old: the legacy short name.
        new: the fully qualified current target, or None when there is no MONAI counterpart.
        why: one line, shown in the report.
        renames: original arg -> new arg, value untouched.
        folds: value rewrites (applied first; they consume their ``reads``).
        add: args added when absent (they make the new class behave as the old one did).
        drop: args with no counterpart -> why; dropped with a warning.
        slots: the rule applies only in these slots (None: everywhere).
        drop_unknown: drop (with a warning) any other arg the target does not accept, instead of an error.
            Used for 3.x components, whose args were never MONAI's.
        caveat: a warning shown whenever the rule applies (a behaviour that differs).
    """

    old: str
    new: str | None
    why: str
    renames: Mapping[str, str] = field(default_factory=dict)
    folds: tuple[Fold, ...] = ()
    add: Mapping[str, Any] = field(default_factory=dict)
    drop: Mapping[str, str] = field(default_factory=dict)
    slots: frozenset[str] | None = None
    drop_unknown: bool = False
    caveat: str = ""


_T = "monai.transforms."
_ONEHOT = Fold(("to_onehot", "n_classes", "num_classes"), _onehot, "MONAI 0.8: 'to_onehot' is the number of classes")
_THRESH = Fold(("threshold_values", "logit_thresh"), _threshold, "MONAI 0.8: 'threshold' replaces both args")

# Clara 4.0/4.1 shipped MONAI 0.5-0.8. Applied in every era, when the old name is not a current name
# (or, for folds on current classes, when one of the fold's args is present).
MONAI_RULES: tuple[Rule, ...] = (
    Rule("AddChanneld", _T + "EnsureChannelFirstd", "removed in MONAI 1.3", add={"channel_dim": "no_channel"}),
    Rule("AddChannel", _T + "EnsureChannelFirst", "removed in MONAI 1.3", add={"channel_dim": "no_channel"}),
    Rule("AsChannelFirstd", _T + "EnsureChannelFirstd", "removed in MONAI 1.3", add={"channel_dim": -1}),
    Rule("AsChannelFirst", _T + "EnsureChannelFirst", "removed in MONAI 1.3", add={"channel_dim": -1}),
    Rule("SplitChanneld", _T + "SplitDimd", "removed in MONAI 1.3", renames={"channel_dim": "dim"}),
    Rule("SplitChannel", _T + "SplitDim", "removed in MONAI 1.3", renames={"channel_dim": "dim"}),
    Rule("LoadNiftid", _T + "LoadImaged", "merged into LoadImaged in MONAI 0.6; reader kwargs pass through"),
    Rule("LoadNifti", _T + "LoadImage", "merged into LoadImage in MONAI 0.6; reader kwargs pass through"),
    Rule("LoadPNGd", _T + "LoadImaged", "merged into LoadImaged in MONAI 0.6"),
    Rule("LoadPNG", _T + "LoadImage", "merged into LoadImage in MONAI 0.6"),
    Rule("NiftiDataset", "monai.data.ImageDataset", "renamed in MONAI 0.5"),
    Rule("NovoGrad", "monai.optimizers.Novograd", "MONAI spells it Novograd"),
    Rule("AsDiscreted", _T + "AsDiscreted", "args changed in MONAI 0.8", folds=(_ONEHOT, _THRESH)),
    Rule("AsDiscrete", _T + "AsDiscrete", "args changed in MONAI 0.8", folds=(_ONEHOT, _THRESH)),
    # Clara's Accuracy read MONAI's post-processed output; ignite's Accuracy cannot read the decollated list
    # MONAI engines produce, MONAI's ConfusionMatrix handler computes the same number.
    Rule(
        "Accuracy",
        "monai.handlers.ConfusionMatrix",
        "Clara's Accuracy metric is MONAI's ConfusionMatrix(metric_name='accuracy')",
        add={"metric_name": "accuracy"},
        drop={"is_multilabel": "ConfusionMatrix handles multi-label one-hot input itself", "device": "not needed"},
        slots=METRIC_SLOTS,
    ),
)

# Argument renames on any current class whose signature has the new name but not the old one.
ARG_RENAMES: Mapping[str, tuple[str, str]] = {
    "dimensions": ("spatial_dims", "networks renamed 'dimensions' to 'spatial_dims' in MONAI 0.6-1.3"),
    "post_transform": ("postprocessing", "engines renamed 'post_transform' to 'postprocessing' in MONAI 0.6"),
    "do_sigmoid": ("sigmoid", "losses renamed 'do_sigmoid' to 'sigmoid' in MONAI 0.3"),
    "do_softmax": ("softmax", "losses renamed 'do_softmax' to 'softmax' in MONAI 0.3"),
}

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
    _tf("AddGaussianNoise", _T + "RandGaussianNoised", "adds Gaussian noise with a probability", prob=True),
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
        add={"total_iters": "{epochs}"},
        caveat="total_iters is set to {epochs}: the decay reaches zero at the last epoch, as Clara's did",
    ),
)

# Clara 3.x components with no evident MONAI counterpart: reported, never guessed.
TF_NO_COUNTERPART: Mapping[str, str] = {
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

MONAI_BY_NAME: Mapping[str, Rule] = {r.old: r for r in MONAI_RULES}
TF_BY_NAME: Mapping[str, Rule] = {r.old: r for r in TF_RULES}


# ---------------------------------------------------------------------------------------------- applying


@dataclass(frozen=True)
class Rewrite:
    """A rule applied to one component's args."""

    args: dict[str, Any]
    arg_map: dict[str, str]  # original arg -> new arg, for every original arg kept
    value_rewritten: frozenset[str]  # original args whose value was transformed (or consumed by a fold)
    diagnostics: tuple[Diagnostic, ...]


def short(target: str) -> str:
    """``monai.transforms.LoadImaged`` -> ``LoadImaged``."""
    return target.rsplit(".", 1)[-1]


def _show(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in values.items())


def apply_rule(rule: Rule, args: Mapping[str, Any], json_path: str) -> Rewrite:
    """Rewrite ``args`` by ``rule``: folds first, then drops and renames, then added defaults.

    Reports one INFO (rule ``rewrite``) summarising the changes, a WARNING per dropped argument
    (``dropped-argument``) or unfoldable value (``unfoldable-legacy-value``), and the rule's caveat.

    Example:
        >>> r = apply_rule(MONAI_BY_NAME["AddChanneld"], {"keys": "image"}, "train.pre_transforms[1]")
        >>> r.args
        {'keys': 'image', 'channel_dim': 'no_channel'}
    """
    out: dict[str, Any] = {}
    arg_map: dict[str, str] = {}
    rewritten: set[str] = set()
    consumed: set[str] = set()
    changes: list[str] = []
    diags: list[Diagnostic] = []
    target = rule.new or "?"
    for fold in rule.folds:
        present = {a: args[a] for a in fold.reads if a in args}
        if not present:
            continue
        try:
            new = fold.func(present)
        except Unfoldable as exc:
            consumed.update(present)
            rewritten.update(present)
            diags.append(
                Diagnostic(
                    rule="unfoldable-legacy-value",
                    message=f"{rule.old}: cannot rewrite {_show(present)} for {target} automatically ({exc}); dropped",
                    json_path=json_path,
                    fix=f"set the matching argument of {target} by hand ({fold.why})",
                    level=Level.WARNING,
                )
            )
            continue
        if new == present:  # already today's spelling (`to_onehot: 2`): nothing to rewrite
            continue
        consumed.update(present)
        rewritten.update(present)
        out.update(new)
        arg_map.update({a: rule.renames.get(a, a) for a in present if rule.renames.get(a, a) in new})
        changes.append(f"{_show(present)} -> {_show(new) or 'removed'} ({fold.why})")
    for arg, value in args.items():
        if arg in consumed:
            continue
        if arg in rule.drop:
            diags.append(_dropped(rule, arg, value, rule.drop[arg], json_path))
            continue
        dest = rule.renames.get(arg, arg)
        if dest in out:  # both spellings given (`fields` and `keys`): keep the one already placed
            diags.append(_dropped(rule, arg, value, f"'{dest}' is already set", json_path))
            continue
        out[dest] = value
        arg_map[arg] = dest
        if dest != arg:
            changes.append(f"'{arg}' -> '{dest}'")
    for arg, value in rule.add.items():
        if arg not in out:
            out[arg] = value
            changes.append(f"added {arg}={value!r}")
    renamed_class = rule.new is not None and short(rule.new) != rule.old
    if renamed_class or changes:
        head = f"{rule.old} -> {rule.new}" if renamed_class else f"{rule.old} ({rule.new})"
        detail = "; ".join(changes)
        diags.insert(
            0,
            Diagnostic(
                rule="rewrite",
                message=f"{head}: {rule.why}" + (f"; {detail}" if detail else ""),
                json_path=json_path,
                level=Level.INFO,
            ),
        )
        if rule.caveat:
            diags.append(
                Diagnostic(rule="legacy-caveat", message=rule.caveat, json_path=json_path, level=Level.WARNING)
            )
    return Rewrite(out, arg_map, frozenset(rewritten), tuple(diags))


def _dropped(rule: Rule, arg: str, value: Any, why: str, json_path: str) -> Diagnostic:
    return Diagnostic(
        rule="dropped-argument",
        message=f"{rule.old} argument '{arg}' ({value!r}) has no counterpart in {rule.new}: dropped ({why})",
        json_path=f"{json_path}.args.{arg}",
        fix=f"check that {rule.new} without '{arg}' does what you need",
        level=Level.WARNING,
    )
