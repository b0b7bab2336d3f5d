"""The one quoting module: strings written as YAML scalars, and as quoted values of Hydra's override grammar.

Both the converter's YAML emitter and the sweeper's override text use it, so a string reaches a job in another
process exactly as it was written. Light on purpose (PyYAML only, imported lazily): the sweeper imports it early.

- :func:`yaml_quoted`: a YAML double-quoted scalar that PyYAML (and so OmegaConf) reads back to the same string:
  printable text stays as it is (``é`` stays ``é``), and what YAML would fold, normalise or refuse is escaped
  (line breaks, U+2028/U+2029/U+0085, controls, lone surrogates, BOM, non-characters).
- :func:`yaml_plain_ok`: whether a string may stand unquoted, decided by OmegaConf's own YAML loader (which reads
  ``1e-5`` as a float where plain PyYAML keeps the string).
- :func:`override_quoted`: a single-quoted override value. Hydra's grammar escapes a backslash only where it precedes
  a quote (or ends the string), so other backslashes stay single; doubling them all turned ``\\u00e9`` in a JSON
  payload into ``\\\\u00e9`` on the job's side.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

# Longest key YAML accepts in the simple ``key: value`` form (YAML 1.1 §9.1.1); longer ones need ``? key``.
SIMPLE_KEY_LIMIT = 1024
# Longer strings are always double-quoted: reading a long plain scalar back with PyYAML (pure Python) to check it
# costs seconds per megabyte, and the quoted form reads back by construction.
PLAIN_LIMIT = 1000

_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}


def _needs_escape(ch: str) -> bool:
    """Characters PyYAML's reader refuses, or that YAML reads as something else (line breaks, BOM)."""
    return _ESCAPED.match(ch) is not None


# What _needs_escape says, as one character class (a 20 MB value is scanned in C, not character by character):
# everything outside PyYAML's printable ranges, plus NEL, U+2028/U+2029 and the BOM inside them.
_ESCAPED = re.compile("[^\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
_QUOTED = re.compile('["\\\\\n\t\r\b\f]|' + _ESCAPED.pattern)


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[ch]
    code = ord(ch)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def yaml_quoted(text: str) -> str:
    """``text`` as a YAML double-quoted scalar.

    >>> yaml_quoted('a "b"\\u2028é')
    '"a \\\\"b\\\\"\\\\u2028é"'
    """
    return '"' + _QUOTED.sub(_escape, text) + '"'


@cache
def _omegaconf_loader() -> Any:
    try:  # OmegaConf's loader: YAML 1.1 plus the float forms OmegaConf adds (1e-5, 1_000.0)
        from omegaconf._utils import get_yaml_loader

        return get_yaml_loader()
    except ImportError:  # pragma: no cover - omegaconf is a dependency; plain PyYAML is the fallback
        import yaml

        return yaml.SafeLoader


def reads_back(document: str, expected: Any) -> bool:
    """True when the YAML ``document`` loads (with OmegaConf's loader) to ``expected``, types included."""
    import yaml

    try:
        value = yaml.load(document, Loader=_omegaconf_loader())
    except yaml.YAMLError:
        return False
    return _same(value, expected)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


_PLAIN_START = re.compile(r"[!&*'\"%@`|>#\-?\[\]{},]")


def yaml_plain_ok(text: str, flow: bool = False) -> bool:
    """Whether ``text`` may be written unquoted (in a flow collection when ``flow``) and still read back as itself."""
    if not text or len(text) > PLAIN_LIMIT or text != text.strip() or _ESCAPED.search(text):
        return False
    if _PLAIN_START.match(text) and text != "???":
        return False
    if ": " in text or " #" in text or text.endswith(":") or ("\\" in text and not text.startswith("\\$")):
        return False
    if flow:  # read it back where it will stand: inside a flow sequence and a flow mapping
        if any(c in text for c in ",[]{}"):
            return False
        return reads_back(f"[{text}]", [text]) and reads_back(f"{{k: {text}}}", {"k": text})
    return reads_back(f"k: {text}", {"k": text})


def yaml_string(text: str, flow: bool = False) -> str:
    """``text`` plain where that reads back, else double-quoted."""
    return text if yaml_plain_ok(text, flow) else yaml_quoted(text)


def omegaconf_literal(text: str, before_interpolation: bool = False) -> str:
    """``text`` as an OmegaConf string value that reads back as exactly ``text`` (no interpolation).

    OmegaConf reads ``\\${`` as a literal ``${`` and ``\\\\${`` as a backslash before an interpolation, so
    every ``${`` gets one backslash and the backslashes already before it are doubled. ``before_interpolation``:
    an interpolation follows this text, so its trailing backslashes are doubled too.

    >>> omegaconf_literal("cost: ${5}")
    'cost: \\\\${5}'
    """
    text = re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", text)
    if before_interpolation:
        text = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, text)
    return text


def override_quoted(text: str) -> str:
    """``text`` as a single-quoted value of Hydra's override grammar.

    Inside quotes Hydra reads ``\\'`` as a quote and ``\\\\`` as one backslash only before a quote or at the end;
    any other backslash is itself. So only backslashes that precede a quote (or the closing quote) are doubled.

    >>> override_quoted("it's")
    "'it\\\\'s'"
    >>> override_quoted('{"a": "\\\\u00e9"}')
    '\\'{"a": "\\\\u00e9"}\\''
    """
    body = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), text)
    return "'" + body + "'"
