"""The parser's reading of Clara's markers inside string values: ``@ref``, ``@conf``, ``#expr``/``lambda``, ``{VAR}``.

Decoded once, here, into the typed values of :mod:`.model` (:class:`~.model.SlotRef`, :class:`~.model.ConfRef`,
:class:`~.model.Expression`, :class:`~.model.VarText`); every later pass matches on those types and no pass reads
a marker out of a string again. A string without a marker stays a plain ``str`` (literal text).

Example:
    >>> [type(v).__name__ for v in decode(["@model", "#@model.parameters()", "{ROOT}/x", "plain"], Era.V41)]
    ['SlotRef', 'Expression', 'VarText', 'str']
    >>> decode("{ROOT}/x", Era.V40).parts, decode("@model", Era.V40)  # 4.0 had no references
    ((Var(name='ROOT'), '/x'), '@model')
    >>> decode({"net": "@model"}, Era.V41)  # a decoded value shows itself as the config wrote it
    {'net': '@model'}
"""

from __future__ import annotations

import re
from typing import Any

from clara_hydra.convert.model import ConfRef, Era, Expression, Sigil, SlotRef, Var, VarText
from clara_hydra.keywords import Clara

__all__ = ["decode", "decode_text", "is_expression"]

_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def is_expression(text: str) -> bool:
    """A Clara ``#`` expression or a ``lambda`` string (SPEC §3)."""
    return text.startswith("#") or text.lstrip().startswith("lambda")


def decode_text(text: str, era: Era) -> str | Sigil:
    """One string: its typed value, or the string itself when it holds no marker.

    ``@name`` is a reference only in Clara 4.1 (``@disabled`` is a search target, never a reference).
    """
    if era is Era.V41 and text == Clara.CONF_REF:
        return ConfRef()
    if era is Era.V41 and text.startswith(Clara.REF_PREFIX) and text != Clara.DISABLED_ARG:
        return SlotRef(text[len(Clara.REF_PREFIX) :])
    if is_expression(text):
        return Expression(text)
    parts: list[str | Var] = []
    pos = 0
    for match in _VAR.finditer(text):
        parts += [text[pos : match.start()], Var(match.group(1))]
        pos = match.end()
    if not parts:
        return text
    parts.append(text[pos:])
    return VarText(tuple(p for p in parts if p != ""))


def decode(value: Any, era: Era) -> Any:
    """A JSON value with every string decoded (lists and plain mappings walked; comment keys kept as they are).

    A mapping that names a class (a component written inside a value) is left as it is: the parser registered it
    as a component of its own, whose arguments are decoded with it, and the lowering reads that one.
    """
    if isinstance(value, str):
        return decode_text(value, era)
    if isinstance(value, list):
        return [decode(v, era) for v in value]
    if isinstance(value, dict):
        if isinstance(value.get(Clara.NAME), str) or isinstance(value.get(Clara.PATH), str):
            return value
        return {k: v if Clara.is_comment(k) else decode(v, era) for k, v in value.items()}
    return value
