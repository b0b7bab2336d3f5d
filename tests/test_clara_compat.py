"""Clara 3.x's own components and what the converter maps them to: the same numbers.

For each Clara-only class the converter maps to a torch/MONAI equivalent or to our implementation
(:mod:`clara_hydra.components`), the target is built exactly as the converter emits it (the rule's renames, folds
and added arguments applied to Clara's args) and its numbers are compared with the formula NVIDIA's Clara Train 3.1
documentation gives ("ai4med.components.lr_policies package", "ai4med.libs.lr_policies package",
"ai4med.components.losses package").
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import pytest
import torch

from clara_hydra.components import ReduceCosineLR, WeightedCrossEntropyLoss
from clara_hydra.convert import legacy
from clara_hydra.convert.model import Var, VarText

EPOCHS = 12


def _build(clara_name: str, clara_args: dict[str, Any], **runtime: Any) -> Any:
    """The object the converted config builds: the rule applied, ``{epochs}`` filled in, the target called."""
    rule = legacy.TF_BY_NAME[clara_name]
    args = legacy.apply_rule(rule, clara_args, "train.x").args
    epochs = VarText((Var("epochs"),))  # the first-level variable, as the parser decodes "{epochs}"
    args = {k: EPOCHS if v == epochs else v for k, v in args.items()}
    assert rule.new is not None
    module, _, name = rule.new.rpartition(".")
    return getattr(importlib.import_module(module), name)(**args, **runtime)


def _lrs(scheduler: Any, optimizer: torch.optim.Optimizer, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def _optimizer(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)


# ---------------------------------------------------------------------------------------------- LR policies


def test_decay_on_step_is_step_lr() -> None:
    # DecayOnStep: "the LR is adjusted to current_lr * ratio every decay_freq number of steps".
    opt = _optimizer()
    sched = _build("DecayOnStep", {"decay_ratio": 0.5, "decay_freq": 3}, optimizer=opt)
    expected, lr = [], 0.1
    for step in range(10):
        if step and step % 3 == 0:
            lr *= 0.5
        expected.append(lr)
    assert _lrs(sched, opt, 10) == pytest.approx(expected)


def test_reduce_poly_is_polynomial_lr() -> None:
    # PolyReducer: lr = lr_init * (1 - e / total_epoch) ** poly_power.
    opt = _optimizer()
    sched = _build("ReducePoly", {"poly_power": 0.9}, optimizer=opt)
    expected = [0.1 * (1 - e / EPOCHS) ** 0.9 for e in range(EPOCHS)]
    assert _lrs(sched, opt, EPOCHS) == pytest.approx(expected)


@pytest.mark.parametrize("rate", [0.5, 0.3])
def test_reduce_cosine(rate: float) -> None:
    opt = _optimizer()
    sched = _build("ReduceCosine", {"rate": rate}, optimizer=opt)
    assert isinstance(sched, ReduceCosineLR)
    expected = [0.1 * rate * (1 + math.cos(math.pi * e / EPOCHS)) for e in range(EPOCHS)]
    assert _lrs(sched, opt, EPOCHS) == pytest.approx(expected)


def test_reduce_cosine_with_the_default_rate_is_torch_cosine_annealing() -> None:
    ours, theirs = _optimizer(), _optimizer()
    a = _build("ReduceCosine", {}, optimizer=ours)
    b = torch.optim.lr_scheduler.CosineAnnealingLR(theirs, T_max=EPOCHS)
    assert _lrs(a, ours, EPOCHS) == pytest.approx(_lrs(b, theirs, EPOCHS), abs=1e-12)


def test_reduce_cosine_holds_after_the_last_epoch_and_refuses_zero_epochs() -> None:
    opt = _optimizer()
    sched = ReduceCosineLR(opt, total_iters=2)
    assert _lrs(sched, opt, 5)[2:] == pytest.approx([0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="total_iters"):
        ReduceCosineLR(_optimizer(), total_iters=0)


@pytest.mark.parametrize("trigger", [1, 3])
def test_reduce_on_plateau_reduces_after_trigger_non_improving_validations(trigger: int) -> None:
    # OnPlateauReducer: reduce once the validation metric stopped improving `plateau_count_trigger` times.
    opt = _optimizer()
    sched = _build("ReduceOnPlateau", {"plateau_count_trigger": trigger, "reduction_rate": 0.1}, optimizer=opt)
    metrics = [0.5, 0.6] + [0.6] * (trigger + 1)  # improves twice, then plateaus
    lrs = []
    for m in metrics:
        sched.step(m)
        lrs.append(opt.param_groups[0]["lr"])
    first_reduced = next(i for i, lr in enumerate(lrs) if lr < 0.1)
    assert first_reduced == 1 + trigger  # the trigger-th evaluation without improvement
    assert lrs[first_reduced] == pytest.approx(0.01)


# ---------------------------------------------------------------------------------------------- losses


@pytest.fixture
def logits_labels() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(6, 3, generator=gen), torch.tensor([0, 1, 2, 2, 1, 0])


def _nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """-log softmax(logits)[label], by hand."""
    exp = logits.exp()
    return -(exp[torch.arange(len(labels)), labels] / exp.sum(1)).log()


def test_multiclass_classification_loss_is_cross_entropy(logits_labels: tuple[torch.Tensor, torch.Tensor]) -> None:
    logits, labels = logits_labels
    loss = _build("MulticlassClassificationLoss", {})
    assert loss(logits, labels).item() == pytest.approx(_nll(logits, labels).mean().item(), rel=1e-6)


def test_binary_classification_loss_is_sigmoid_cross_entropy() -> None:
    logits = torch.tensor([2.0, -1.0, 0.5, -3.0])
    labels = torch.tensor([1.0, 0.0, 0.0, 1.0])
    p = 1 / (1 + (-logits).exp())
    expected = -(labels * p.log() + (1 - labels) * (1 - p).log()).mean()
    assert _build("BinaryClassificationLoss", {})(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)


def test_weighted_multiclass_loss_averages_over_non_zero_weights(
    logits_labels: tuple[torch.Tensor, torch.Tensor],
) -> None:
    # tf.losses.sparse_softmax_cross_entropy(weights=w[label]): sum(w * nll) / count(w != 0).
    logits, labels = logits_labels
    weights = [0.0, 2.0, 0.5]
    loss = _build("WeightedMulticlassClassificationLoss", {"class_weights": weights})
    assert isinstance(loss, WeightedCrossEntropyLoss)
    w = torch.tensor(weights)[labels]
    expected = (w * _nll(logits, labels)).sum() / torch.count_nonzero(w)
    assert loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    # torch's weighted CrossEntropyLoss divides by the sum of weights instead: not the same number.
    torch_weighted = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights))(logits, labels)
    assert torch_weighted.item() != pytest.approx(expected.item(), rel=1e-3)


def test_weighted_multiclass_loss_without_weights_is_the_plain_loss(
    logits_labels: tuple[torch.Tensor, torch.Tensor],
) -> None:
    logits, labels = logits_labels
    plain = torch.nn.CrossEntropyLoss()(logits, labels)
    assert WeightedCrossEntropyLoss()(logits, labels[:, None]).item() == pytest.approx(plain.item(), rel=1e-6)


# ---------------------------------------------------------------------------------------------- handlers


def test_segmentation_saver_writes_each_prediction(tmp_path: Any) -> None:
    import logging
    from types import SimpleNamespace

    import nibabel as nib
    from monai.data import MetaTensor

    from clara_hydra.components import SegmentationSaver

    affine = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0]))
    preds = []
    for case in ("case1", "case2"):
        meta = {"filename_or_obj": f"/data/{case}.nii.gz", "affine": affine, "original_affine": affine}
        preds.append({"pred": MetaTensor(torch.ones(1, 4, 5, 6) * len(case), meta=meta)})
    saver = _build_handler(str(tmp_path))
    engine = SimpleNamespace(state=SimpleNamespace(output=preds, batch=None), logger=logging.getLogger("t"))
    saver(engine)
    for case in ("case1", "case2"):
        img = nib.load(tmp_path / case / f"{case}_seg.nii.gz")
        assert img.shape == (4, 5, 6)
        assert (img.affine == affine.numpy()).all()
    assert isinstance(saver, SegmentationSaver)


def _build_handler(out: str) -> Any:
    rule = legacy.MONAI_BY_NAME["SegmentationSaver"]
    args = legacy.apply_rule(rule, {"output_dir": out, "output_postfix": "seg"}, "validate.handlers[0]").args
    assert rule.new is not None
    module, _, name = rule.new.rpartition(".")
    return getattr(importlib.import_module(module), name)(**args)


# ---------------------------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("clara_args", [{"fields": "image", "probability": 1.0, "variance": 0.25}, {"fields": "image"}])
def test_add_gaussian_noise_has_claras_variance_and_probability(clara_args: dict[str, Any]) -> None:
    # AddGaussianNoise(fields, probability=0.5, variance=0.1): MONAI's RandGaussianNoised takes the std, and its own
    # defaults (prob 0.1, std 0.1) differ from Clara's.
    noise = _build("AddGaussianNoise", clara_args)
    variance, prob = clara_args.get("variance", 0.1), clara_args.get("probability", 0.5)
    assert noise.prob == pytest.approx(prob)
    noise.set_random_state(seed=0)
    applied = []
    for _ in range(200 if prob < 1 else 1):
        out = noise({"image": torch.zeros(1, 32, 32, 32)})["image"]
        applied.append(bool(out.abs().sum() > 0))
        if applied[-1]:
            sample = out
    assert float(sample.var()) == pytest.approx(variance, rel=0.03)
    assert sum(applied) / len(applied) == pytest.approx(prob, abs=0.1)


def test_dice_skip_background_and_label_format_fold_into_dice_loss() -> None:
    # Clara 3.x Dice(skip_background, is_onehot_targets): the docs give no formula beyond "soft Dice", so this checks
    # the textbook per-sample, per-class soft Dice with background skipped and integer labels made one-hot, which is
    # what the folds (include_background = not skip_background, to_onehot_y = not is_onehot_targets) must produce.
    gen = torch.Generator().manual_seed(1)
    probs = torch.softmax(torch.randn(2, 3, 4, 4, 4, generator=gen), dim=1)
    labels = torch.randint(0, 3, (2, 1, 4, 4, 4), generator=gen)
    loss = _build("Dice", {"skip_background": True, "is_onehot_targets": False})
    onehot = torch.nn.functional.one_hot(labels[:, 0], 3).permute(0, 4, 1, 2, 3).float()
    p, g = probs[:, 1:], onehot[:, 1:]
    dims = (2, 3, 4)
    smooth = 1e-5  # MONAI's smooth_nr = smooth_dr
    dice = (2 * (p * g).sum(dims) + smooth) / (p.sum(dims) + g.sum(dims) + smooth)
    assert loss(probs, labels).item() == pytest.approx((1 - dice).mean().item(), rel=1e-5)


def test_focal_skip_background_folds_into_focal_loss() -> None:
    # Clara 3.x Focal(skip_background): the docs name "focal loss" and no formula, so this checks the textbook
    # binary focal loss of Lin et al. (2017), FL = -(1-p_t)^gamma log(p_t) per voxel and class (gamma 2, no alpha,
    # sigmoid of the logits), averaged, with the background channel skipped: what the fold must produce.
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 4, 4, 4, generator=gen)
    labels = torch.randint(0, 3, (2, 4, 4, 4), generator=gen)
    onehot = torch.nn.functional.one_hot(labels, 3).permute(0, 4, 1, 2, 3).float()
    loss = _build("Focal", {"skip_background": True})
    p = torch.sigmoid(logits[:, 1:])
    g = onehot[:, 1:]
    p_t = torch.where(g == 1, p, 1 - p)
    expected = (-((1 - p_t) ** 2) * torch.log(p_t)).mean()
    assert loss(logits, onehot).item() == pytest.approx(expected.item(), rel=1e-5)
    assert _build("Focal", {"skip_background": False})(logits, onehot).item() != pytest.approx(expected.item())


def test_transform_inverter_inverts_the_prediction_in_place() -> None:
    from types import SimpleNamespace

    from monai.data import MetaTensor
    from monai.transforms import Compose, Spacingd

    from clara_hydra.components import TransformInverter

    pre = Compose([Spacingd(keys="image", pixdim=(2.0, 2.0, 2.0), mode="nearest")])
    image = MetaTensor(torch.arange(8 * 6 * 4, dtype=torch.float32).reshape(1, 8, 6, 4), affine=torch.eye(4))
    item = pre({"image": image})
    assert item["image"].shape != image.shape  # resampled to 2 mm
    engine = SimpleNamespace(state=SimpleNamespace(batch=[item], output=[{"pred": item["image"].clone()}]))
    rule = legacy.MONAI_BY_NAME["TransformInverter"]
    args = legacy.apply_rule(rule, {"output_keys": "pred", "batch_keys": "image"}, "validate.handlers[0]").args
    inverter = TransformInverter(transform=pre, **args)
    inverter(engine)
    assert engine.state.output[0]["pred"].shape == image.shape  # back on the input's grid
