"""Typed nodes of the emitted Hydra tree (a target, a reference, the whole config, a slot's members, a missing
value, an interpolation): built by the lowering, printed by :mod:`clara_hydra.convert.yamlout`, which alone
writes their YAML (markers and escaping included). Plain values stay plain Python values.

Example:
    >>> Text(("data/", Interpolation("DATA_ROOT"), "/x.json")).parts[1]
    Interpolation(key='DATA_ROOT', argument=None)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clara_hydra.keywords import Emitted

__all__ = ["Interpolation", "Members", "Missing", "Reference", "Target", "Text", "WholeConfig"]


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


@dataclass(frozen=True)
class Reference:
    """``{_ref_: key}``: the one object built for another slot (Clara's ``@model``); key ``???`` when dangling."""

    key: str


@dataclass(frozen=True)
class WholeConfig:
    """``{_config_: true}``: the whole composed config as plain containers (Clara's ``@conf``)."""


@dataclass(frozen=True)
class Missing:
    """``???``: a value that could not be carried over (OmegaConf's missing value; a run must set it)."""


@dataclass(frozen=True)
class Target:
    """``{_target_: pkg.Class, ...}``: one object.

    Args:
        target: the dotted path of the class or function (``???`` when it could not be carried over).
        entries: its markers (``_disabled_``, ``_rank_``, ``_partial_``) and arguments, in the order they are written.
    """

    target: str
    entries: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, node: Mapping[str, Any]) -> Target:
        """From a mapping whose ``_target_`` key holds the target (the order of the other keys kept)."""
        entries = dict(node)
        return cls(str(entries.pop(Emitted.TARGET)), tuple(entries.items()))

    def without(self, key: str) -> Target:
        """The same node without the entry ``key``."""
        return Target(self.target, tuple((k, v) for k, v in self.entries if k != key))

    def setting(self, key: str, value: Any) -> Target:
        """The same node with the entry ``key`` set to ``value`` (in its place, or last when new)."""
        if all(k != key for k, _ in self.entries):
            return Target(self.target, (*self.entries, (key, value)))
        return Target(self.target, tuple((k, value if k == key else v) for k, v in self.entries))


@dataclass(frozen=True)
class Members:
    """``{_compose_: true, name: node, ...}`` (or ``_list_``, ``_one_of_``): a slot's named members, in order.

    Args:
        marker: ``Emitted.COMPOSE`` (transforms, built into a Compose), ``Emitted.LIST`` or ``Emitted.ONE_OF``.
        members: ``(name, node)`` pairs.
    """

    marker: str
    members: tuple[tuple[str, Any], ...]
