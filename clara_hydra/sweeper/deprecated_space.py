"""Upstream's deprecated ``hydra.sweeper.search_space`` key, read into our ``params`` grammar.

hydra-optuna-sweeper 1.x described a dimension as a mapping ``{type: float|int|categorical, low, high,
step, log, choices}`` and still accepts it, with a warning. We accept it the same way, as a drop-in
replacement: each entry becomes the equivalent sweep text (``interval``, ``int(interval)``, ``range``,
``choice``, ``tag(log, ...)``), so one parser (Hydra's override grammar) reads every search space.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from clara_hydra.errors import SweepError, shorten, with_fix
from clara_hydra.sweeper.grammar import format_element

DEPRECATED = (
    "`hydra.sweeper.search_space` is deprecated and will be removed in the next major release. "
    "Please configure with `hydra.sweeper.params`."
)
BOTH = (
    "Both hydra.sweeper.params and hydra.sweeper.search_space are configured. "
    "Hydra will use hydra.sweeper.params for defining search space."
)
_TYPES = ("float", "int", "categorical")


def resolve_params(
    params: Mapping[str, Any] | None, search_space: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The dimensions to search, with upstream's warnings for ``search_space``.

    Args:
        params: ``hydra.sweeper.params`` (None when not set).
        search_space: ``hydra.sweeper.search_space`` (None when not set).

    Returns:
        ``params`` when set (``search_space`` is then ignored, as upstream does); else ``search_space``
        turned into sweep text; else None.

    Raises:
        SweepError: an entry of ``search_space`` has an unknown ``type`` or lacks its bounds.
    """
    if search_space is None:
        return params
    if params is not None:
        warnings.warn(BOTH, UserWarning, stacklevel=2)
        return params
    warnings.warn(DEPRECATED, UserWarning, stacklevel=2)
    return {str(name): entry_to_text(str(name), entry) for name, entry in search_space.items()}


def entry_to_text(name: str, entry: Any) -> str:
    """One ``search_space`` entry as sweep text, with upstream's *inclusive* ``high``.

    >>> entry_to_text("x", {"type": "float", "low": -5.5, "high": 5.5, "step": 0.5})
    'range(-5.5, 6.0, 0.5)'
    >>> entry_to_text("n", {"type": "int", "low": 1, "high": 100, "log": True})
    'tag(log, int(interval(1, 100)))'
    """
    where = f"hydra.sweeper.search_space.{name}"
    if not isinstance(entry, Mapping) or entry.get("type") not in _TYPES:
        raise SweepError(
            with_fix(
                f"{where}: expected a mapping with type one of {list(_TYPES)}, got {shorten(entry)}",
                f"write it under hydra.sweeper.params instead, e.g. {name}: interval(0.0, 1.0)",
            )
        )
    kind = entry["type"]
    if kind == "categorical":
        choices = entry.get("choices")
        if not choices:
            raise SweepError(with_fix(f"{where}: a categorical entry needs choices", "add choices: [a, b]"))
        return "choice(" + ", ".join(format_element(c) for c in choices) + ")"
    low, high, step, log = entry.get("low"), entry.get("high"), entry.get("step"), bool(entry.get("log"))
    if low is None or high is None:
        raise SweepError(with_fix(f"{where}: a {kind} entry needs low and high", "add low: ... and high: ..."))
    if kind == "int":
        low, high = int(low), int(high)
        if step is not None and int(step) != 1 and not log:
            # Hydra's range() excludes its stop; upstream's high is included.
            return f"range({low}, {high + int(step)}, {int(step)})"
        inner = f"int(interval({low}, {high}))"
    elif step is not None and not log:
        # Decimal keeps 5.5 + 0.5 = 6.0 exact, so the range ends on high as upstream's distribution does.
        stop = Decimal(str(high)) + Decimal(str(step))
        return f"range({format_element(float(low))}, {float(stop)!r}, {format_element(float(step))})"
    else:
        inner = f"interval({format_element(float(low))}, {format_element(float(high))})"
    return f"tag(log, {inner})" if log else inner
