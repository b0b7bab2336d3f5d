"""Clara ``#`` expressions and lambda strings mapped to importable callables, never evaluated.

Known patterns (SPEC §3) become typed emitted nodes (:class:`~clara_hydra.convert.nodes.Target`); anything else
is an error that names the JSON path and the text.
``ast`` is used only to *parse* the text; nothing from a config is ever executed.
"""

from __future__ import annotations

import ast
import re

from clara_hydra.convert.nodes import Missing, Target
from clara_hydra.keywords import Emitted

ALLOWED_PREFIXES = ("monai.", "torch.", "ignite.")
_LAMBDA_NONE = re.compile(r"^lambda\s+(\w+)\s*:\s*None$")
_LAMBDA_KEY = re.compile(r"^lambda\s+(\w+)\s*:\s*(\w+)\[\s*['\"](\w+)['\"]\s*\]$")
_LAMBDA_TUPLE = re.compile(r"^lambda\s+(\w+)\s*:\s*\(\s*((?:\w+\[\s*['\"]\w+['\"]\s*\]\s*,?\s*)+)\)$")
_TUPLE_ITEM = re.compile(r"(\w+)\[\s*['\"](\w+)['\"]\s*\]")
_PARAMETERS = re.compile(r"^#\s*@(\w+)\.parameters\(\)$")
# Engine outputs that are one value for the whole batch: the first decollated item holds it.
_BATCH_SCALARS = frozenset({"loss"})
_META_SUFFIX = "_meta_dict"


class UnsupportedExpression(ValueError):
    """Raised (internally) when an expression matches no known pattern; the caller turns it into a diagnostic."""


def from_engine(keys: list[str], first: bool = False) -> Target:
    """``monai.handlers.from_engine(keys, first)``; Clara-era ``<key>_meta_dict`` reads become ``batch_meta``."""
    if len(keys) == 1 and keys[0].endswith(_META_SUFFIX):
        # MONAI 1.x keeps metadata on the tensor (MetaTensor.meta): `image_meta_dict` no longer exists in a batch.
        key = keys[0][: -len(_META_SUFFIX)]
        return Target("clara_hydra.expressions.batch_meta", ((Emitted.PARTIAL, True), ("key", key)))
    first_entry = (("first", True),) if first else ()
    return Target("monai.handlers.from_engine", (("keys", list(keys)), *first_entry))


def lower_expression(text: str) -> tuple[str | None, Target]:
    """Map an expression to an emitted node.

    Returns:
        ``(slot_ref, node)``: ``slot_ref`` is the slot name the node must reference (``model`` for
        ``#@model.parameters()``) or None; ``node`` is the emitted value (the caller sets its ``module``, ``???``
        until then, to the reference).

    Raises:
        UnsupportedExpression: the text matches no known pattern.
    """
    stripped = text.strip()
    match = _PARAMETERS.match(stripped)
    if match:
        return match.group(1), Target("clara_hydra.expressions.parameters_of", (("module", Missing()),))
    if stripped.startswith("#"):
        return None, _lower_call(stripped[1:].strip(), text)
    if _LAMBDA_NONE.match(stripped):
        return None, Target("clara_hydra.expressions.discard_output", ((Emitted.PARTIAL, True),))
    match = _LAMBDA_KEY.match(stripped)
    if match and match.group(1) == match.group(2):
        key = match.group(3)
        return None, from_engine([key], first=key in _BATCH_SCALARS)
    match = _LAMBDA_TUPLE.match(stripped)
    if match:
        items = _TUPLE_ITEM.findall(match.group(2))
        if items and all(var == match.group(1) for var, _ in items):
            return None, from_engine([k for _, k in items])
    raise UnsupportedExpression(text)


def _lower_call(source: str, original: str) -> Target:
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise UnsupportedExpression(original) from exc
    call = tree.body
    if not isinstance(call, ast.Call):
        raise UnsupportedExpression(original)
    target = _dotted(call.func)
    if target is None or not target.startswith(ALLOWED_PREFIXES):
        raise UnsupportedExpression(original)
    try:
        args = [ast.literal_eval(a) for a in call.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
    except ValueError as exc:
        raise UnsupportedExpression(original) from exc
    if len(kwargs) != len(call.keywords):
        raise UnsupportedExpression(original)
    if target == "monai.handlers.from_engine":
        names = ["keys", "first"]
        if len(args) > len(names):
            raise UnsupportedExpression(original)
        kwargs = {**dict(zip(names, args, strict=False)), **kwargs}
        return from_engine(list(kwargs.get("keys", [])), bool(kwargs.get("first", False)))
    if args:  # positional arguments of arbitrary callables cannot be named without importing them
        raise UnsupportedExpression(original)
    return Target(target, tuple((str(k), v) for k, v in kwargs.items()))


def _dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))
