"""Typed nodes of the emitted Hydra tree that YAML has no type for: built by the lowering, printed by
:mod:`clara_hydra.convert.yamlout` (which alone writes their text, escaping included).

Example:
    >>> Text(("data/", Interpolation("DATA_ROOT"), "/x.json")).parts[1]
    Interpolation(key='DATA_ROOT', argument=None)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Interpolation", "Text"]


@dataclass(frozen=True)
class Interpolation:
    """``${key}``: the value of another key of the config (a variable, a searched name), or a resolver's value.

    Args:
        key: the key (``learning_rate``), or a resolver's name (``clara.job_dir``).
        argument: a resolver's argument, in OmegaConf's grammar (``models`` in ``${clara.job_dir:models}``).
    """

    key: str
    argument: str | None = None


@dataclass(frozen=True)
class Text:
    """A string with interpolations inside (Clara's ``"{DATA_ROOT}/imagesTr"``).

    Args:
        parts: literal text (as the user wrote it: the printer escapes a ``${`` in it) and interpolations, in order.
    """

    parts: tuple[str | Interpolation, ...]
