"""Read one input document: bytes -> JSON value, with the checks Python's ``json`` module does not make.

- Nesting is bounded (:data:`MAX_DEPTH`): every later pass may then recurse over values without meeting Python's
  recursion limit, and a file nested thousands of levels deep fails with a located error, not ``RecursionError``.
- Duplicate keys are reported (Python's ``json``, like Clara, silently keeps the last value).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from clara_hydra.convert.jsonpath import join
from clara_hydra.errors import ConfigError, Diagnostic, InputFileError, Level, shorten

#: Deepest nesting of objects and lists accepted. Real Clara configs stay under 10 levels.
MAX_DEPTH = 64


@dataclass(frozen=True)
class Document:
    """One input file: its name (for messages) and its bytes."""

    name: str
    data: bytes

    def load(self) -> tuple[Any, list[Diagnostic]]:
        """The JSON value and the diagnostics of reading it (duplicate keys).

        Raises:
            InputFileError: not UTF-8, or not JSON.
            ConfigError: nested deeper than :data:`MAX_DEPTH`.
        """
        return load_json(self.data, self.name)


def load_json(data: bytes, name: str) -> tuple[Any, list[Diagnostic]]:
    """Parse ``data`` as JSON; see :class:`Document`."""
    seen: dict[int, list[str]] = {}

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) != len(items):
            keys = [k for k, _ in items]
            seen[id(obj)] = sorted({k for k in keys if keys.count(k) > 1})
        return obj

    try:
        doc = json.loads(data, object_pairs_hook=pairs)
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{name}: not UTF-8 text ({exc})") from None
    except json.JSONDecodeError as exc:
        raise InputFileError(
            f"{name}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}; "
            "fix the syntax (Clara files are plain JSON: no comments, no trailing commas)"
        ) from None
    except RecursionError:
        raise ConfigError([_too_deep(name, "$", None)]) from None
    too_deep, duplicates = _walk(doc, seen)
    if too_deep is not None:
        raise ConfigError([_too_deep(name, too_deep, MAX_DEPTH)])
    diagnostics = [
        Diagnostic(
            "duplicate-key",
            f"key {shorten(key)!r} is written more than once in this object; the last value wins (as in Clara)",
            join(path, key),
            "keep one of them",
            Level.WARNING,
            name,
        )
        for path, keys in duplicates
        for key in keys
    ]
    return doc, diagnostics


def _too_deep(name: str, path: str, depth: int | None) -> Diagnostic:
    where = f"more than {depth} levels deep here" if depth else "nested deeper than JSON can be read"
    return Diagnostic(
        "too-deep",
        f"objects and lists are {where}; Clara configs stay under 10 levels",
        path,
        f"flatten the value (at most {MAX_DEPTH} levels of nesting)",
        file=name,
    )


def _walk(doc: Any, duplicates: dict[int, list[str]]) -> tuple[str | None, list[tuple[str, list[str]]]]:
    """(JSON path of the first value past :data:`MAX_DEPTH` or None, duplicate keys by object path).

    Iterative on purpose: this is the check that makes recursion safe everywhere else.
    """
    found: list[tuple[str, list[str]]] = []
    stack: list[tuple[Any, str, int]] = [(doc, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if not isinstance(value, (dict, list)):
            continue
        if depth >= MAX_DEPTH:
            return path or "$", found
        if isinstance(value, dict):
            if id(value) in duplicates:
                found.append((path, duplicates[id(value)]))
            stack.extend((v, join(path, k), depth + 1) for k, v in reversed(value.items()))
        else:
            stack.extend((v, join(path, i), depth + 1) for i, v in reversed(list(enumerate(value))))
    return None, found
