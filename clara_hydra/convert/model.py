"""The typed intermediate model of a Clara config: what the parser produces and the passes read.

Argument values are JSON values in which the parser has decoded Clara's markers inside strings into typed values
(:mod:`.sigils`): ``"@model"`` is :class:`SlotRef`, ``"@conf"`` :class:`ConfRef`, ``"#..."``/``lambda`` strings
:class:`Expression`, ``"{DATA_ROOT}/x"`` :class:`VarText`; every other string is plain text. Nested component
dicts stay dicts (the parser registers them in :attr:`ClaraConfig.nested`). Everything is frozen: passes return
new facts, never edit these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from clara_hydra.keywords import Clara, SlotKind

__all__ = [
    "AutomlSettings",
    "ClaraConfig",
    "Component",
    "ConfRef",
    "Era",
    "Expression",
    "SearchArg",
    "SearchSpec",
    "Sigil",
    "Slot",
    "SlotKind",
    "SlotRef",
    "Var",
    "VarText",
]


class Era(str, Enum):
    """Which Clara generation a config follows (SPEC §2-3)."""

    V41 = "4.1"
    V40 = "4.0"
    V3X = "3.x"


# -- values the parser decoded from strings (each shows itself, in messages, as the text the config wrote) ---------


@dataclass(frozen=True, repr=False)
class SlotRef:
    """Clara 4.1's ``"@model"``: the object of the slot ``name`` (the current section first, SPEC §3)."""

    name: str

    @property
    def text(self) -> str:
        return Clara.REF_PREFIX + self.name

    def __repr__(self) -> str:
        return repr(self.text)


@dataclass(frozen=True, repr=False)
class ConfRef:
    """Clara 4.1's ``"@conf"``: the whole training config."""

    @property
    def text(self) -> str:
        return Clara.CONF_REF

    def __repr__(self) -> str:
        return repr(self.text)


@dataclass(frozen=True, repr=False)
class Expression:
    """A ``"#..."`` expression or a ``"lambda ..."`` string, as written; never evaluated (see :mod:`.expressions`)."""

    text: str

    def __repr__(self) -> str:
        return repr(self.text)


@dataclass(frozen=True)
class Var:
    """``{name}`` inside a string: the value of the variable ``name`` (environment.json, a first-level key, --set)."""

    name: str


@dataclass(frozen=True, repr=False)
class VarText:
    """A string with variables inside (``"{DATA_ROOT}/imagesTr"``): literal text and :class:`Var` parts, in order."""

    parts: tuple[str | Var, ...]

    @property
    def text(self) -> str:
        return "".join(p if isinstance(p, str) else "{" + p.name + "}" for p in self.parts)

    @property
    def only_var(self) -> str | None:
        """The variable's name when the string is one variable and nothing else (``"{out_classes}"``)."""
        return self.parts[0].name if len(self.parts) == 1 and isinstance(self.parts[0], Var) else None

    def __repr__(self) -> str:
        return repr(self.text)


#: a value decoded from a string by the parser
Sigil = SlotRef | ConfRef | Expression | VarText


@dataclass(frozen=True)
class SearchArg:
    """One searched argument: ``prob#myProb`` is ``SearchArg("prob", "myProb")``; ``@disabled`` is the attribute."""

    name: str
    alias: str | None = None

    @property
    def is_disabled(self) -> bool:
        return self.name == Clara.DISABLED_ARG


@dataclass(frozen=True)
class SearchSpec:
    """One entry of a ``search`` list (already shape-checked by the parser)."""

    json_path: str
    domain: str
    type: str  # "float" | "enum"
    args: tuple[SearchArg, ...]
    targets: tuple[Any, ...]  # float: (lo, hi); enum: one tuple of values per choice
    owner: str | None  # json path of the owning component; None at first level
    legacy: bool = False


@dataclass(frozen=True)
class Component:
    """One Clara component (or a ``{"ref": ...}`` placeholder in ``validate``)."""

    json_path: str
    section: str | None
    slot: str
    key: str  # unique snake_case key inside its slot (``dice_loss``, ``load_imaged_2``)
    name: str | None
    class_path: str | None
    label: str | None = None  # 3.x ``Name#label`` identifier
    args: Mapping[str, Any] = field(default_factory=dict)
    attributes: Mapping[str, Any] = field(default_factory=dict)
    searches: tuple[SearchSpec, ...] = ()
    apply: Mapping[str, str] = field(default_factory=dict)
    ref: str | None = None

    @property
    def display(self) -> str:
        return self.class_path or self.name or self.ref or "<component>"


@dataclass(frozen=True)
class Slot:
    """A slot of a section (``train.loss``) and the components it holds."""

    section: str | None
    name: str
    kind: SlotKind
    components: tuple[Component, ...]
    is_list: bool  # written as a JSON list (alternatives for a SINGLE slot)
    json_path: str

    @property
    def hydra_key(self) -> str:
        return f"{self.section}.{self.name}" if self.section else self.name


@dataclass(frozen=True)
class ClaraConfig:
    """A parsed Clara training (or validation) config."""

    file: str
    sha256: str
    era: Era
    first_level: Mapping[str, Any]  # primitives and plain values (epochs, learning_rate, determinism, ...)
    slots: tuple[Slot, ...]
    searches: tuple[SearchSpec, ...]  # first-level searches
    unknown_sections: Mapping[str, Any] = field(default_factory=dict)  # non-component top-level objects kept verbatim
    rejected_names: frozenset[str] = frozenset()  # aliases/names of search entries already reported as invalid
    # Components written inside other values (a transform in RandomOrder's args), by JSON path.
    nested: Mapping[str, Component] = field(default_factory=dict)

    def slot(self, section: str | None, name: str) -> Slot | None:
        for s in self.slots:
            if s.section == section and s.name == name:
                return s
        return None

    def components(self) -> list[Component]:
        """The components of the slots, in file order (nested ones excluded)."""
        return [c for s in self.slots for c in s.components]

    def all_components(self) -> list[Component]:
        """Slot components, then the nested ones (each owner before what it holds)."""
        return [*self.components(), *self.nested.values()]

    @property
    def sections(self) -> tuple[str | None, ...]:
        return tuple(dict.fromkeys(s.section for s in self.slots))


@dataclass(frozen=True)
class AutomlSettings:
    """What carries over from ``config_automl.json`` (SPEC §6)."""

    max_rounds: int | None = None
    stop_threshold: float | None = None
    num_mmars_to_keep: int | None = None
    remove_search_augs: bool | None = None
    controller: str | None = None
