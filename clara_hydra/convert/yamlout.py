"""Deterministic YAML text for the emitted tree, and values in Hydra's override grammar.

Written by hand on top of PyYAML's scalar rules because PyYAML cannot write comments (we need a header and honesty
markers) and its flow/block choice is not stable enough for golden files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from clara_hydra.convert.nodes import Interpolation, Members, Missing, Reference, Target, Text, WholeConfig
from clara_hydra.keywords import Emitted
from clara_hydra.quoting import SIMPLE_KEY_LIMIT, omegaconf_literal, override_quoted, yaml_string

_FLOW_LIMIT = 100
_OVERRIDE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def interpolation(node: Interpolation | Text) -> str:
    """OmegaConf's text of an interpolation node: ``${key}``, ``${resolver:arg}``, ``${A}/x`` (``${`` in the
    literal parts escaped so that OmegaConf reads them as text)."""
    if isinstance(node, Interpolation):
        return "${" + (node.key if node.argument is None else f"{node.key}:{node.argument}") + "}"
    out: list[str] = []
    for i, part in enumerate(node.parts):
        if isinstance(part, Interpolation):
            out.append(interpolation(part))
        else:
            before = i + 1 < len(node.parts) and isinstance(node.parts[i + 1], Interpolation)
            out.append(omegaconf_literal(part, before_interpolation=before))
    return "".join(out)


def scalar(value: Any, flow: bool = False) -> str:
    """One scalar as YAML that OmegaConf reads back to the same value."""
    if isinstance(value, Interpolation | Text):
        return yaml_string(interpolation(value), flow)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:
            mant, exp = text.split("e")
            text = f"{mant}.0e{exp}"  # YAML 1.1 needs the dot to read it as a float
        return text
    return yaml_string(str(value), flow)


def _is_scalar(v: Any) -> bool:
    return not isinstance(v, (dict, list, tuple))


def _flow(value: Any) -> str | None:
    """Inline form for short lists of scalars and one-key reference mappings, else None."""
    if isinstance(value, (list, tuple)) and all(
        _is_scalar(v) or (isinstance(v, (list, tuple)) and all(_is_scalar(x) for x in v)) for v in value
    ):
        text = "[" + ", ".join(_flow(v) or scalar(v, flow=True) for v in value) + "]"
        return text if len(text) <= _FLOW_LIMIT else None
    if isinstance(value, Mapping) and len(value) == 1 and all(_is_scalar(v) for v in value.values()):
        ((k, v),) = value.items()
        if str(k).startswith("_") and str(k).endswith("_"):
            return "{" + f"{k}: {scalar(v, flow=True)}" + "}"
    return None


def plain(node: Any) -> Any:
    """The YAML shape of a tree of typed nodes (:mod:`.nodes`): mappings with our markers, lists and scalars."""
    if isinstance(node, Target):
        return {Emitted.TARGET: node.target, **{k: plain(v) for k, v in node.entries}}
    if isinstance(node, Reference):
        return {Emitted.REF: node.key}
    if isinstance(node, WholeConfig):
        return {Emitted.CONFIG: True}
    if isinstance(node, Members):
        return {node.marker: True, **{k: plain(v) for k, v in node.members}}
    if isinstance(node, Missing):
        return Emitted.UNKNOWN
    if isinstance(node, Mapping):
        return {k: plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [plain(v) for v in node]
    return node  # a scalar, an Interpolation or a Text


def dump(data: Mapping[str, Any], header: list[str] | None = None, comments: Mapping[str, str] | None = None) -> str:
    """Block-style YAML of a tree of values and typed nodes; ``comments`` maps a dotted key to a comment line
    written above it."""
    lines = [f"# {h}" if h else "#" for h in header or []]
    _mapping(plain(data), 0, "", lines, comments or {})
    return "\n".join(lines) + "\n"


def _mapping(data: Mapping[str, Any], indent: int, prefix: str, lines: list[str], comments: Mapping[str, str]) -> None:
    pad = " " * indent
    if not data:
        lines[-1] += " {}"
        return
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if dotted in comments:
            lines.append(f"{pad}# {comments[dotted]}")
        k = scalar(key)
        if len(k) > SIMPLE_KEY_LIMIT - 24:  # YAML's simple keys stop at 1024 characters: an explicit `? key`
            lines.append(f"{pad}? {k}")
            k = ""
        inline = _flow(value)
        if inline is not None:
            lines.append(f"{pad}{k}: {inline}")
        elif isinstance(value, Mapping):
            lines.append(f"{pad}{k}:")
            _mapping(value, indent + 2, dotted, lines, comments)
            if not value:
                continue
        elif isinstance(value, (list, tuple)):
            lines.append(f"{pad}{k}:")
            _sequence(value, indent + 2, dotted, lines, comments)
        else:
            lines.append(f"{pad}{k}: {scalar(value)}")


def _sequence(items: Any, indent: int, prefix: str, lines: list[str], comments: Mapping[str, str]) -> None:
    pad = " " * indent
    if not items:
        lines[-1] += " []"
        return
    for i, item in enumerate(items):
        inline = _flow(item)
        if isinstance(item, Mapping) and len(item) == 1 and _is_scalar(next(iter(item.values()))):
            ((k, v),) = item.items()
            lines.append(f"{pad}- {scalar(k)}: {scalar(v)}")  # defaults-list entries read best inline
        elif inline is not None or _is_scalar(item):
            lines.append(f"{pad}- {inline if inline is not None else scalar(item)}")
        elif isinstance(item, Mapping):
            lines.append(f"{pad}-")
            _mapping(item, indent + 2, f"{prefix}.{i}", lines, comments)
        else:
            lines.append(f"{pad}-")
            _sequence(item, indent + 2, f"{prefix}.{i}", lines, comments)


def override_value(value: Any) -> str:
    """A value in Hydra's override grammar (``choice(...)`` arguments): ``[16, 32]``, ``true``, ``'a b'``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(override_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {override_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if _OVERRIDE_WORD.fullmatch(text) and text.lower() not in {"true", "false", "null", "nan", "inf"}:
        return text
    return override_quoted(text)
