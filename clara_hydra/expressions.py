"""Importable callables that stand for the Clara ``#`` expressions and lambda strings the converter maps.

Clara evaluated Python text from the config (``"#@model.parameters()"``, ``"lambda x: None"``); we never
``eval`` config text. The converter replaces each known pattern by a ``_target_`` node naming one of
these functions (or ``monai.handlers.from_engine``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def parameters_of(module: Any) -> Iterator[Any]:
    """Replaces Clara's ``"#@model.parameters()"``: the parameters of a ``torch.nn.Module``.

    Emitted as ``{_target_: clara_hydra.expressions.parameters_of, module: {_ref_: train.model}}``.

    Args:
        module: the module whose parameters an optimizer should own (the *same* object as ``train.model``).

    Returns:
        ``module.parameters()``.
    """
    return module.parameters()


def discard_output(x: Any) -> None:
    """Replaces Clara's ``"lambda x: None"`` (a handler output transform that logs nothing).

    Emitted with ``_partial_: true`` so the handler receives this function, not its result.

    Args:
        x: the engine output, ignored.
    """
    del x
    return None
