"""One reader of the emitted tree's grammar, shared by every consumer of a composed config.

The converter writes a Hydra tree whose nodes carry our markers (:class:`clara_hydra.keywords.Emitted`); the
runtime builder, the data-cache planner, the bundle exporter and the Clara exporter all read it back. They read
it through this module, so the grammar lives in one table (:data:`TABLE`): a marker added there reaches all of
them (``tests/test_tree_nodes.py`` proves it). It works on OmegaConf containers and on plain containers alike
(the runtime reads ``DictConfig``, the exporters read ``to_container`` output), and imports nothing heavy.

Example:
    >>> kind_of({"_ref_": "train.model"})
    <Kind.REFERENCE: 'reference'>
    >>> kind_of({"_compose_": True, "load_imaged": {"_target_": "monai.transforms.LoadImaged"}})
    <Kind.COMPOSE: 'compose'>
    >>> arguments({"_target_": "torch.optim.Adam", "_disabled_": False, "lr": 0.1})
    ['lr']
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from clara_hydra.keywords import Emitted

__all__ = [
    "TABLE",
    "Kind",
    "Marker",
    "Role",
    "arguments",
    "enabled",
    "interpolation_link",
    "is_interpolation",
    "is_member_key",
    "is_placement",
    "kind_of",
    "members",
    "one_of_list",
]


class Kind(str, Enum):
    """What a node of the composed tree is (the typed views of the grammar)."""

    REFERENCE = "reference"  # {_ref_: train.model}: the one object built for that path
    CONFIG = "config"  # {_config_: true}: the whole config as plain containers (Clara's @conf)
    ONE_OF = "one_of"  # {_one_of_: true, a: node, b: node}: exactly one enabled alternative
    COMPOSE = "compose"  # {_compose_: true, a: node, ...}: ordered transforms -> monai.transforms.Compose
    LIST = "list"  # {_list_: true, a: node, ...}: ordered members -> a list
    TARGET = "target"  # {_target_: pkg.Class, arg: ...}: one object
    MAPPING = "mapping"  # any other mapping: a dict of values
    SEQUENCE = "sequence"  # a list of values
    NONE = "none"  # null
    MISSING = "missing"  # ??? (OmegaConf's missing value)
    INTERPOLATION = "interpolation"  # a string with ${...} (only in an unresolved tree)
    VALUE = "value"  # any other scalar


# The kinds whose named members are read with :func:`members`.
COLLECTIONS = (Kind.ONE_OF, Kind.COMPOSE, Kind.LIST)


class Role(str, Enum):
    """What a marker key does on its node."""

    KIND = "kind"  # makes the node of a kind (see Marker.kind); never an argument
    PLACEMENT = "placement"  # whether the node is kept in its container (_disabled_, _rank_)
    CALL = "call"  # how a target is called (_partial_, _args_)
    IGNORED = "ignored"  # Hydra's instantiate options: accepted, and meaning nothing to us


def _always(_value: Any) -> bool:
    return True


def _is_true(value: Any) -> bool:
    return value is True


def _set(value: Any) -> bool:
    return value is not None and value is not False


@dataclass(frozen=True)
class Marker:
    """One reserved key of the emitted tree.

    Args:
        role: what the key does.
        kind: for ``Role.KIND``, the kind of a node that has the key.
        when: for ``Role.KIND``, whether the key's value makes the node of that kind (``_compose_: false`` does not).
        keeps: for ``Role.PLACEMENT``, called as ``keeps(value, rank)``: whether the node stays in its container.
    """

    role: Role
    kind: Kind | None = None
    when: Callable[[Any], bool] = _always
    keeps: Callable[[Any, int], bool] | None = None


def _not_disabled(value: Any, _rank: int) -> bool:
    return value is not True


def _on_rank(value: Any, rank: int) -> bool:
    return int(value) == rank


# The grammar. Order matters for the kinds: the first that matches wins (a {_ref_} never builds its _target_).
TABLE: dict[str, Marker] = {
    Emitted.REF: Marker(Role.KIND, Kind.REFERENCE),
    Emitted.CONFIG: Marker(Role.KIND, Kind.CONFIG, _is_true),
    Emitted.ONE_OF: Marker(Role.KIND, Kind.ONE_OF, _set),
    Emitted.COMPOSE: Marker(Role.KIND, Kind.COMPOSE, _is_true),
    Emitted.LIST: Marker(Role.KIND, Kind.LIST, _is_true),
    Emitted.TARGET: Marker(Role.KIND, Kind.TARGET),
    Emitted.DISABLED: Marker(Role.PLACEMENT, keeps=_not_disabled),
    Emitted.RANK: Marker(Role.PLACEMENT, keeps=_on_rank),
    Emitted.PARTIAL: Marker(Role.CALL),
    Emitted.ARGS: Marker(Role.CALL),
    Emitted.CONVERT: Marker(Role.IGNORED),
    Emitted.RECURSIVE: Marker(Role.IGNORED),
}


def _is_mapping(node: Any) -> bool:
    # DictConfig is a MutableMapping; a None DictConfig is a mapping that is null.
    return isinstance(node, Mapping)


def _is_null(node: Any) -> bool:
    if node is None:
        return True
    is_none = getattr(node, "_is_none", None)
    return bool(is_none()) if callable(is_none) else False


def _is_missing(node: Any) -> bool:
    if isinstance(node, str):
        return node == Emitted.UNKNOWN
    is_missing = getattr(node, "_is_missing", None)
    return bool(is_missing()) if callable(is_missing) else False


def kind_of(node: Any) -> Kind:
    """The kind of a config node: a marker's, or mapping, sequence, null, missing, interpolation or value.

    A marker's value is read with ``node.get`` (resolving an interpolation there when ``node`` is a ``DictConfig``).
    """
    if _is_null(node):
        return Kind.NONE
    if _is_missing(node):
        return Kind.MISSING
    if _is_mapping(node):
        for key, marker in TABLE.items():
            if marker.role is Role.KIND and key in node and marker.when(node.get(key)):
                assert marker.kind is not None
                return marker.kind
        return Kind.MAPPING
    if isinstance(node, str):
        return Kind.INTERPOLATION if is_interpolation(node) else Kind.VALUE
    if isinstance(node, bytes):
        return Kind.VALUE
    if isinstance(node, Sequence):  # a list, a tuple or a ListConfig (str is handled above)
        return Kind.SEQUENCE
    return Kind.VALUE


def is_member_key(key: Any) -> bool:
    """Whether ``key`` names a member of a collection: any key but a marker-shaped one (``_x_``)."""
    text = str(key)
    return key not in TABLE and not (len(text) > 2 and text.startswith("_") and text.endswith("_"))


def is_placement(key: Any) -> bool:
    """Whether ``key`` only places its node (``_disabled_``, ``_rank_``): allowed beside any kind's marker."""
    marker = TABLE.get(key)
    return marker is not None and marker.role is Role.PLACEMENT


def arguments(node: Mapping[Any, Any]) -> list[Any]:
    """The keys of a target's (or a plain mapping's) own values: every key that is not in :data:`TABLE`."""
    return [key for key in node if key not in TABLE]


def _getter(node: Mapping[Any, Any]) -> Callable[[Any], Any]:
    return node.__getitem__


def members(
    node: Mapping[Any, Any],
    get: Callable[[Any], Any] | None = None,
    keep: Callable[[str, Any], bool] | None = None,
) -> Iterator[tuple[str, Any]]:
    """The named members of a ``_compose_``/``_list_``/``_one_of_`` mapping, in key order; ``null`` ones dropped.

    Args:
        node: the collection.
        get: how a member's value is read (default ``node[key]``; the builder's adds the config path to errors).
        keep: called as ``keep(key, value)``; a member for which it is false is dropped (disabled members).
    """
    read = get or _getter(node)
    for key in node:
        if not is_member_key(key):
            continue
        value = read(key)
        # A null member is dropped: `train.pre_transforms.rand_gaussian_noised=null` on the command line.
        if value is None or _is_null(value) or (keep is not None and not keep(str(key), value)):
            continue
        yield str(key), value


def one_of_list(node: Mapping[Any, Any]) -> Any | None:
    """The alternatives of the list form ``{_one_of_: [node, ...]}``, or ``None`` for the mapping form."""
    alternatives = node.get(Emitted.ONE_OF)
    return None if isinstance(alternatives, bool) or kind_of(alternatives) is not Kind.SEQUENCE else alternatives


def enabled(node: Any, rank: int = 0, get: Callable[[Any], Any] | None = None) -> bool:
    """Whether a node is kept in its container: not ``_disabled_: true``, and on ``rank`` when it has ``_rank_``.

    Args:
        node: the node (anything that is not a mapping is kept).
        rank: this process's distributed rank (an exported bundle runs as rank 0).
        get: how a marker's value is read (default ``node[key]``).
    """
    if not _is_mapping(node) or _is_null(node):
        return True
    read = get or _getter(node)
    for key, marker in TABLE.items():
        if marker.keeps is not None and key in node and not marker.keeps(read(key), rank):
            return False
    return True


def is_interpolation(text: Any) -> bool:
    """Whether a (raw) value holds an OmegaConf interpolation ``${...}``."""
    return isinstance(text, str) and "${" in text


def interpolation_link(text: Any) -> str | None:
    """The key a whole-value interpolation without a resolver links to (``${learning_rate}`` -> ``learning_rate``)."""
    if not (isinstance(text, str) and text.startswith("${") and text.endswith("}") and text.count("${") == 1):
        return None
    inner = text[2:-1]
    return None if ":" in inner else inner
