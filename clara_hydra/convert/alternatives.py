"""Alternatives (exactly one enabled, SPEC §4.5) and the lowering of joint enums to Hydra config groups.

Every single-object slot written as a list is checked at the defaults and at every point of the discrete search
dimensions that touch it. A one-hot first-level enum that chooses one member of one slot becomes a config group named
for the slot (``loss: choice(dice_loss, focal_loss)``); any other joint enum becomes a group whose options set its keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clara_hydra.convert.diagnostics import Problems
from clara_hydra.convert.model import ClaraConfig, Component, Slot, SlotKind, VarText
from clara_hydra.convert.search import Dimension, SearchPlan, points
from clara_hydra.errors import Diagnostic
from clara_hydra.keywords import Clara


@dataclass(frozen=True)
class Group:
    """A config group lowered from one joint enum dimension."""

    name: str
    dim: Dimension
    options: tuple[tuple[str, Mapping[str, Any]], ...]  # (option name, values of dim.keys)
    default: str | None  # None: Clara's own values stay (``group: null`` in the defaults list)
    slot: Slot | None = None  # one-hot group: the slot whose chosen member each option supplies
    members: Mapping[str, Component] | None = None  # option name -> the enabled member


def disabled_key(comp: Component, plan: SearchPlan) -> tuple[str | None, bool]:
    """(key controlling ``disabled``, literal value when no key)."""
    key = plan.bindings.get((comp.json_path, Clara.DISABLED_ARG))
    if key is not None:
        return key, False
    raw = comp.attributes.get(Clara.DISABLED, False)
    if isinstance(raw, VarText):
        return raw.only_var, False
    return None, raw is True


def is_disabled(comp: Component, plan: SearchPlan, values: Mapping[str, Any]) -> bool:
    key, literal = disabled_key(comp, plan)
    if key is None:
        return literal
    return values.get(key) is True  # SPEC §1: only a resolved boolean true disables


def check_alternatives(config: ClaraConfig, plan: SearchPlan, defaults: Mapping[str, Any]) -> list[Diagnostic]:
    """Exactly one enabled member in every alternatives slot, at the defaults and at every searched point."""
    problems = Problems(config.file)
    for slot in config.slots:
        if slot.kind is not SlotKind.SINGLE or not slot.is_list:
            continue
        keys = {k for c in slot.components if (k := disabled_key(c, plan)[0])}
        seen: set[str] = set()
        for point in [{}, *points(plan.dimensions, keys)]:
            values = {**defaults, **point}
            enabled = [c for c in slot.components if not is_disabled(c, plan, values)]
            if len(enabled) == 1:
                continue
            where = "the default values" if not point else ", ".join(f"{k}={_show(v)}" for k, v in point.items())
            msg = (
                f"slot '{slot.hydra_key}' must have exactly one enabled alternative, got {len(enabled)}"
                f" ({', '.join(c.display for c in enabled) or 'none'}) at {where}"
            )
            if msg in seen:
                continue
            seen.add(msg)
            problems.add(
                "exactly-one-enabled",
                msg,
                slot.json_path,
                "make every choice of the one-hot search enable exactly one member",
            )
    return problems.found


def lower_groups(config: ClaraConfig, plan: SearchPlan, defaults: Mapping[str, Any], taken: set[str]) -> list[Group]:
    """Config groups for every joint enum (one-hot ones named for their slot), and for enums with a ``null`` choice.

    Hydra's ``choice(...)`` refuses a bare ``null`` element, so an enum that offers ``null`` is a group whose
    options set the key (``roi_size_choice: choice(none, v96x96x96)``).
    """
    groups: list[Group] = []
    for dim in plan.dimensions:
        if not (dim.joint or (dim.type == "enum" and any(v is None for choice in dim.targets for v in choice))):
            continue
        group = _one_hot(config, plan, dim, defaults, taken) or _generic(dim, taken)
        taken.add(group.name)
        groups.append(group)
    return groups


def _one_hot(
    config: ClaraConfig, plan: SearchPlan, dim: Dimension, defaults: Mapping[str, Any], taken: set[str]
) -> Group | None:
    if any(k not in plan.variables and k not in config.first_level for k in dim.keys):
        return None
    slots = [
        s
        for s in config.slots
        if s.kind is SlotKind.SINGLE
        and s.is_list
        and s.components
        and all(disabled_key(c, plan)[0] in dim.keys for c in s.components)
    ]
    if len(slots) != 1:
        return None
    slot = slots[0]
    options: list[tuple[str, Mapping[str, Any]]] = []
    members: dict[str, Component] = {}
    for choice in dim.targets:
        values = {**defaults, **dict(zip(dim.keys, choice, strict=False))}
        enabled = [c for c in slot.components if not is_disabled(c, plan, values)]
        if len(enabled) != 1:
            return None  # reported by check_alternatives
        name = enabled[0].key
        if name in members:
            name = f"{name}_{len(options)}"
        members[name] = enabled[0]
        options.append((name, dict(zip(dim.keys, choice, strict=False))))
    enabled_now = [c for c in slot.components if not is_disabled(c, plan, defaults)]
    default = next((n for n, c in members.items() if enabled_now and c is enabled_now[0]), options[0][0])
    name = slot.name if slot.section in (None, Clara.TRAIN) else f"{slot.section}_{slot.name}"
    if name in taken:
        name = f"{name}_choice"
    return Group(name, dim, tuple(options), default, slot, members)


def _generic(dim: Dimension, taken: set[str]) -> Group:
    name = "_".join(dim.keys)
    if name in taken:
        name = f"{name}_choice"
    options: list[tuple[str, Mapping[str, Any]]] = []
    used: set[str] = set()
    for choice in dim.targets:
        opt = option_name(choice)
        if opt in used:
            opt = f"{opt}_{len(options)}"
        used.add(opt)
        options.append((opt, dict(zip(dim.keys, choice, strict=False))))
    return Group(name, dim, tuple(options), None)


def option_name(values: tuple[Any, ...]) -> str:
    """A readable, override-safe option name for a joint choice: ``(-50, 100)`` -> ``m50_100``."""
    parts = [_token(v) for v in values]
    name = re.sub(r"_+", "_", "_".join(parts)).strip("_") or "choice"
    if not name[0].isalpha() or name.lower() in {"true", "false", "null", "nan", "inf"}:
        name = "v" + name
    return name


def _token(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        text = repr(v).replace("-", "m").replace(".", "p").replace("+", "")
        return text
    if isinstance(v, (list, tuple)):
        return "x".join(_token(x) for x in v)
    if v is None:
        return "none"
    return re.sub(r"[^0-9A-Za-z]+", "_", str(v))


def _show(v: Any) -> str:
    return "true" if v is True else "false" if v is False else repr(v)
