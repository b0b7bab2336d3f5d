"""Clara 3.x losses torch has no exact counterpart for."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class WeightedCrossEntropyLoss(nn.Module):
    """Clara 3.x's ``WeightedMulticlassClassificationLoss(class_weights)``: softmax cross-entropy weighted per class.

    Source: NVIDIA Clara Train 3.1 docs, page "ai4med.components.losses package": it uses TensorFlow's
    ``tf.losses.sparse_softmax_cross_entropy`` with per-class weights, and without weights it is the plain
    multiclass loss. TensorFlow 1's default reduction divides the weighted sum by the number of samples whose
    weight is not zero (``SUM_BY_NONZERO_WEIGHTS``), where torch's ``CrossEntropyLoss(weight=...)`` divides by the
    sum of the weights: the two differ whenever the weights are not all one, hence this class.

    Args:
        class_weights: one weight per class; None: all ones (then it equals ``torch.nn.CrossEntropyLoss``).

    Shapes: ``input`` (N, C) logits, ``target`` (N,) class indices (or (N, 1), squeezed).
    """

    def __init__(self, class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        weights = None if class_weights is None else torch.as_tensor(list(class_weights), dtype=torch.float32)
        self.class_weights: torch.Tensor | None
        self.register_buffer("class_weights", weights)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The weighted mean cross-entropy over the samples with a non-zero weight."""
        if target.ndim == input.ndim:  # (N, 1) labels as Clara's pipelines produced them
            target = target.squeeze(1)
        target = target.long()
        losses = nn.functional.cross_entropy(input, target, reduction="none")
        if self.class_weights is None:
            return losses.mean()
        w = self.class_weights.to(losses.dtype)[target]
        nonzero = torch.count_nonzero(w).clamp(min=1)
        return (losses * w).sum() / nonzero
