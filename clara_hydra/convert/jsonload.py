"""Read one input document: bytes -> JSON value, with the checks Python's ``json`` module does not make.

- Nesting is bounded (:data:`MAX_DEPTH`): every later pass may then recurse over values without meeting Python's
  recursion limit, and a file nested thousands of levels deep fails with a located error, not ``RecursionError``.
- Duplicate keys are reported (Python's ``json``, like Clara, silently keeps the last value).
- The text is decoded strictly (JSON is UTF-8, or UTF-16/32 with the same detection as ``json``): Python's ``json``
  lets CESU-8 surrogate bytes (``ed a0 80``) through as lone surrogates; here they are a located error (line, column,
  byte offset), as any invalid byte is. A surrogate written as a JSON escape (``"\\ud800"``) is valid JSON and is
  carried over (escaped in the YAML).
- A number Python cannot read (an integer of more than 4300 digits) is a located error, not a traceback.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from clara_hydra.convert.diagnostics import Problems
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

    text = _decode(data, name)
    try:
        doc = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise InputFileError(
            f"{name}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}; "
            "fix the syntax (Clara files are plain JSON: no comments, no trailing commas)"
        ) from None
    except RecursionError:  # deeper than Python's json can read: find where, from the text
        raise ConfigError([_too_deep(name, _deep_path(text), MAX_DEPTH)]) from None
    except ValueError as exc:  # an integer beyond Python's int-string limit (4300 digits)
        raise InputFileError(f"{name}: a number cannot be read ({shorten(str(exc), 200)}); write it shorter") from None
    too_deep, duplicates = _walk(doc, seen)
    if too_deep is not None:
        raise ConfigError([_too_deep(name, too_deep, MAX_DEPTH)])
    problems = Problems(name)
    for path, keys in duplicates:
        for key in keys:
            problems.add(
                "duplicate-key",
                f"key {shorten(key)!r} is written more than once in this object; the last value wins (as in Clara)",
                join(path, key),
                "keep one of them",
                Level.WARNING,
            )
    return doc, problems.found


def _decode(data: bytes, name: str) -> str:
    """``data`` as text, strictly: an invalid byte (CESU-8 surrogates included) is located by line and column."""
    encoding = json.detect_encoding(data)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode(encoding, "replace")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        cesu = data[exc.start : exc.start + 1] == b"\xed"  # ed a0..bf xx: a surrogate, refused by UTF-8
        bad = data[exc.start : exc.start + 3 if cesu else exc.end][:8].hex(" ")
        surrogate = " (a UTF-16 surrogate written as UTF-8, i.e. CESU-8)" if cesu else ""
        raise InputFileError(
            f"{name}: not {encoding.upper()} text at line {line} column {column} (byte {exc.start}: {bad}"
            f"{surrogate}: {exc.reason}); save the file as UTF-8, or write the character as a JSON escape (\\uXXXX)"
        ) from None
    return text[1:] if text.startswith("\ufeff") else text  # a UTF-8 byte-order mark, as json.loads(bytes) allows


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},:]')


def _deep_path(text: str) -> str:
    """The JSON path of the first object or list nested :data:`MAX_DEPTH` levels deep, read from the text (for
    documents too deep for Python's ``json``); ``$`` when the text does not say."""
    stack: list[list[Any]] = []  # [kind, path, key or index, expecting a key]
    for match in _TOKENS.finditer(text):
        tok = match.group()
        if tok in "{[":
            path = _here(stack)
            if len(stack) >= MAX_DEPTH:
                return path or "$"
            stack.append([tok, path, 0 if tok == "[" else "", tok == "{"])
        elif tok in "}]":
            if stack:
                stack.pop()
        elif not stack:
            continue
        elif tok == ",":
            top = stack[-1]
            if top[0] == "[":
                top[2] += 1
            else:
                top[3] = True
        elif tok == ":":
            stack[-1][3] = False
        elif stack[-1][0] == "{" and stack[-1][3]:
            try:
                stack[-1][2] = json.loads(tok)
            except ValueError:
                stack[-1][2] = tok[1:-1]
    return "$"


def _here(stack: list[list[Any]]) -> str:
    if not stack:
        return ""
    _kind, path, at, _expecting = stack[-1]
    return join(path, at)


def _too_deep(name: str, path: str, depth: int | None) -> Diagnostic:
    where = f"more than {depth} levels deep here" if depth else "nested deeper than JSON can be read"
    return Problems(name).add(
        "too-deep",
        f"objects and lists are {where}; Clara configs stay under 10 levels",
        path,
        f"flatten the value (at most {MAX_DEPTH} levels of nesting)",
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
