"""Lower Clara components and argument values into emitted Hydra nodes.

Handles the values the parser decoded (:mod:`.sigils`): variables (``{VAR}`` -> ``${VAR}``), references
(``@model`` -> ``{_ref_: train.model}``), ``@conf``, expressions; and nested components, bindings of
searched/applied arguments, attributes (``disabled``, ``rank``), datasets' datalist attributes and validation model
loaders; it places Clara 4.0's implicit arguments, which the wiring pass (:mod:`.wiring`, before this one) found.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clara_hydra.convert import wiring
from clara_hydra.convert.catalog import Resolution
from clara_hydra.convert.diagnostics import Problems
from clara_hydra.convert.expressions import UnsupportedExpression, lower_expression
from clara_hydra.convert.jsonpath import join
from clara_hydra.convert.model import (
    ClaraConfig,
    Component,
    ConfRef,
    Era,
    Expression,
    Slot,
    SlotKind,
    SlotRef,
    Var,
    VarText,
)
from clara_hydra.convert.nodes import Interpolation, Members, Missing, Reference, Target, Text, WholeConfig
from clara_hydra.convert.references import slot_key, slot_reference
from clara_hydra.convert.search import SearchPlan
from clara_hydra.errors import Diagnostic, Level, shorten, suggest
from clara_hydra.keywords import Clara, Emitted
from clara_hydra.quoting import omegaconf_literal

_TO_TENSORD = "monai.transforms.ToTensord"
_ENSURE_TYPED = "monai.transforms.EnsureTyped"


@dataclass
class Lowering:
    """State of the lowering pass for one config: the resolutions and the bound search space are its inputs."""

    config: ClaraConfig
    plan: SearchPlan
    resolutions: Mapping[str, Resolution]
    implicit: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # the wiring pass's, by JSON path
    problems: Problems = field(init=False)
    used_vars: dict[str, str] = field(default_factory=dict)  # variable -> first json path using it
    _inverted: set[str] | None = None
    _found: dict[str, Component | None] = field(default_factory=dict)  # validate ref path -> train component

    def __post_init__(self) -> None:
        self.problems = Problems(self.config.file)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        """What the lowering found, in order."""
        return self.problems.found

    def problem(self, rule: str, message: str, path: str, fix: str = "", level: Level = Level.ERROR) -> None:
        self.problems.add(rule, message, path, fix, level)

    def resolve(self, comp: Component) -> Resolution | None:
        """The resolve pass's result for ``comp`` (every slot and nested component was resolved there)."""
        return self.resolutions.get(comp.json_path)

    # -- components ----------------------------------------------------------------------------------------------
    def component(self, comp: Component, inverted: bool = False) -> Target:
        """The emitted node of one component (refs to train components must be resolved by the caller).

        ``inverted``: the component sits in a transform chain that an ``Invertd`` inverts.
        """
        if comp.name is None and comp.class_path is None:
            if Clara.TS_PATH in comp.attributes or Clara.CKPT_PATH in comp.attributes:
                return self._model_loader(comp)
            return Target(Emitted.UNKNOWN)  # reported by the parser (missing-name)
        res = self.resolve(comp)
        node: dict[str, Any] = {}
        target = res.target if res is not None else None
        if inverted and target == _TO_TENSORD:
            # MONAI 1.x: ToTensord's inverse returns NumPy, which breaks the inverse of the spatial transforms
            # before it; EnsureTyped makes the same tensors and inverts to tensors.
            target = _ENSURE_TYPED
            self.problem(
                "rewrite",
                f"ToTensord -> {_ENSURE_TYPED}: this chain is inverted by Invertd, and ToTensord's "
                "inverse returns NumPy in MONAI 1.x",
                comp.json_path,
                level=Level.INFO,
            )
        node[Emitted.TARGET] = target if target else "???"
        self._attributes(comp, node)
        args = dict(res.args) if res is not None else dict(comp.args)
        arg_map = res.arg_map if res is not None else {k: k for k in comp.args}
        bound: dict[str, str] = {}
        refused = res.refused if res is not None else frozenset()  # the legacy rule's error reports them
        for (path, arg), key in self.plan.bindings.items():
            if path != comp.json_path or arg == Clara.DISABLED_ARG or arg in refused:
                continue
            new = arg_map.get(arg)
            if new is None and arg in comp.args:  # dropped by a legacy rewrite: the searched value has no home
                self.problem(
                    "search-on-dropped-arg",
                    f"'{arg}' of {comp.display} is searched or applied, but it has "
                    f"no counterpart in {res.target if res else '?'} and was dropped; the value of '{key}' "
                    "does not reach this component",
                    join(comp.json_path, Clara.ARGS),
                    level=Level.WARNING,
                )
                continue
            bound[new or arg] = key
        if res is not None:
            for path, arg in self.plan.bindings:
                if path == comp.json_path and arg in res.value_rewritten and arg not in refused:
                    self.problem(
                        "search-on-rewritten-arg",
                        f"'{arg}' of {comp.display} is searched or applied, but "
                        f"its value is rewritten for today's MONAI, so the search cannot be carried over",
                        join(comp.json_path, Clara.ARGS),
                        "search the new argument instead",
                    )
        written = {new: old for old, new in arg_map.items()}  # messages name the argument as the Clara file does
        for name, value in args.items():
            if name in bound:
                node[name] = Interpolation(bound[name])
            else:
                node[name] = self.value(value, comp, join(join(comp.json_path, Clara.ARGS), written.get(name, name)))
        for name, key in bound.items():
            node.setdefault(name, Interpolation(key))
        datalist = self._datalist(comp)
        if datalist is not None:
            node.setdefault("data", datalist)
        if self.config.era is not Era.V41:
            for name, value in self.implicit.get(comp.json_path, {}).items():
                if name in wiring.REPLACED or name not in node:
                    node[name] = copy.deepcopy(value)  # a component may be lowered twice: no shared nodes
        return Target.of(node)

    def _attributes(self, comp: Component, node: dict[str, Any]) -> None:
        disabled_key = self.plan.bindings.get((comp.json_path, Clara.DISABLED_ARG))
        if disabled_key is not None:
            node[Emitted.DISABLED] = Interpolation(disabled_key)
        elif Clara.DISABLED in comp.attributes:
            raw = comp.attributes[Clara.DISABLED]
            path = join(comp.json_path, Clara.DISABLED)
            value = self.value(raw, comp, path)
            if wiring.disabled_string(raw) is not None:  # Clara 4.0 wrote "disabled": "true"
                value = wiring.disabled_string(raw)
                message = f"'disabled': {raw!r} read as {value}"
                # once: a component may be lowered twice (train chain and its copy)
                self.problems.add("disabled-string", message, path, "", Level.WARNING, once=True)
            if not isinstance(value, bool) and not _starts_with_interpolation(value):
                self.problem(
                    "disabled-not-bool",
                    f"'disabled' must be true, false or a \"{{VAR}}\", got {shorten(repr(raw))}",
                    path,
                    'use true, false or a variable: "disabled": "{dont_use_it}"',
                )
            node[Emitted.DISABLED] = value
        if Clara.RANK in comp.attributes:
            node[Emitted.RANK] = comp.attributes[Clara.RANK]

    def _datalist(self, comp: Component) -> Target | None:
        keys = (Clara.DATA_LIST_FILE_PATH, Clara.DATA_FILE_BASE_DIR, Clara.DATA_LIST_KEY)
        if not any(k in comp.attributes for k in keys):
            return None
        node: dict[str, Any] = {Emitted.TARGET: "clara_hydra.data.load_datalist"}
        for k in keys:
            node[k] = self.value(comp.attributes.get(k), comp, join(comp.json_path, k))
        return Target.of(node)

    def _model_loader(self, comp: Component) -> Target:
        node: dict[str, Any] = {}
        if Clara.TS_PATH in comp.attributes:
            node[Emitted.TARGET] = "torch.jit.load"
            self._attributes(comp, node)
            node["f"] = self.value(comp.attributes[Clara.TS_PATH], comp, join(comp.json_path, Clara.TS_PATH))
        else:
            node[Emitted.TARGET] = "clara_hydra.expressions.model_from_checkpoint"
            self._attributes(comp, node)
            node["ckpt_path"] = self.value(
                comp.attributes[Clara.CKPT_PATH], comp, join(comp.json_path, Clara.CKPT_PATH)
            )
        return Target.of(node)

    # -- values --------------------------------------------------------------------------------------------------
    def value(self, value: Any, comp: Component | None, path: str) -> Any:
        """The emitted node of an argument value (its markers decoded by the parser, :mod:`.sigils`)."""
        section = comp.section if comp else None
        match value:
            case str():
                return omegaconf_literal(value)  # literal text for OmegaConf (a "${" in it is escaped)
            case SlotRef(name):
                return self.ref(name, section, path)
            case ConfRef():
                return WholeConfig()
            case Expression():
                return self._expression(value, section, path)
            case VarText(parts):
                found = tuple(self._var(p.name, path) if isinstance(p, Var) else p for p in parts)
                return found[0] if len(found) == 1 else Text(found)
            case list():
                return [self.value(v, comp, join(path, i)) for i, v in enumerate(value)]
            case dict():
                if isinstance(value.get(Clara.NAME), str) or isinstance(value.get(Clara.PATH), str):
                    return self._nested(value, comp, path)
                return {k: self.value(v, comp, join(path, k)) for k, v in value.items() if not Clara.is_comment(k)}
        return value

    def _var(self, name: str, path: str) -> Interpolation:
        """Clara's ``{name}``: an interpolation node (the first JSON path using each variable is kept)."""
        self.used_vars.setdefault(name, path)
        return Interpolation(name)

    def _nested(self, value: Mapping[str, Any], owner: Component | None, path: str) -> Target:
        """A component written inside another one's ``args`` (SPEC §1), as the parser registered it."""
        nested = self.config.nested.get(path)
        if nested is None:
            return Target(Emitted.UNKNOWN)  # its shape was reported by the parser
        return self.component(nested)

    def _expression(self, expression: Expression, section: str | None, path: str) -> Target | Missing:
        try:
            slot_name, node = lower_expression(expression.text)
        except UnsupportedExpression:
            self.problem(
                "unsupported-expression",
                f"expression {shorten(repr(expression.text))} matches no known Clara pattern and is never evaluated",
                path,
                'replace it with an importable function: {"path": "my_pkg.module.function", ...}',
            )
            return Missing()
        if slot_name is not None:
            node = node.setting("module", self.ref(slot_name, section, path))
        return node

    def lookup(self, slot_name: str, section: str | None) -> str | None:
        """Hydra key of the slot ``@slot_name`` names: current section first, then the other one (SPEC §3)."""
        return slot_key(self.config, slot_name, section)

    def ref(self, slot_name: str, section: str | None, path: str) -> Reference:
        """A reference to the object of a slot; a dangling one is reported with a did-you-mean."""
        return slot_reference(self.config, slot_name, section, path, self.problems)

    # -- slots ---------------------------------------------------------------------------------------------------
    def find_ref(self, comp: Component) -> Component | None:
        """The train component a validate ``{"ref": X}`` stands for (by class name, path or 3.x label)."""
        assert comp.ref is not None
        if comp.json_path not in self._found:  # asked for the node and for the metric label: reported once
            self._found[comp.json_path] = self._find_ref(comp)
        return self._found[comp.json_path]

    def _find_ref(self, comp: Component) -> Component | None:
        assert comp.ref is not None
        target = comp.ref.split(Clara.ALIAS_SEP, 1)[-1]
        pool = [c for c in self.config.components() if c.section == Clara.TRAIN and c.ref is None]
        found = [c for c in pool if target in (c.name, c.label, c.class_path) or comp.ref == f"{c.name}#{c.label}"]
        if len(found) == 1:
            return found[0]
        if not found:
            hint = suggest(target, sorted({x for c in pool for x in (c.name, c.label) if x}))
            self.problem(
                "dangling-ref",
                f"ref '{comp.ref}' matches no train component",
                join(comp.json_path, "ref"),
                hint or "name a component of the train section",
            )
        else:
            where = ", ".join(c.json_path for c in found)
            self.problem(
                "ambiguous-ref",
                f"ref '{comp.ref}' matches {len(found)} train components: {where}",
                join(comp.json_path, "ref"),
                "give the train components distinct labels (Name#label)",
            )
        return None

    def member(self, comp: Component, inverted: bool = False) -> tuple[str, Target]:
        """(key, node) of a slot member, following validate refs."""
        if comp.ref is not None:
            target = self.find_ref(comp)
            if target is None:
                return comp.key, Target(Emitted.UNKNOWN)
            return target.key, self.component(target, inverted)
        return comp.key, self.component(comp, inverted)

    def inverted_slots(self) -> set[str]:
        """Hydra keys of the transform slots some ``Invertd`` inverts (``"transform": "@pre_transforms"``)."""
        if self._inverted is None:
            self._inverted = set()
            for comp in self.config.components():
                value = comp.args.get("transform")
                if comp.name == "Invertd" and isinstance(value, SlotRef):
                    key = self.lookup(value.name, comp.section)
                    if key is not None:
                        self._inverted.add(key)
        return self._inverted

    def slot(self, slot: Slot) -> Any:
        inverted = slot.kind is SlotKind.TRANSFORMS and slot.hydra_key in self.inverted_slots()
        members = [self.member(c, inverted) for c in slot.components]
        if slot.kind is SlotKind.METRICS:
            return {self._metric_label(c, key): node for c, (key, node) in zip(slot.components, members, strict=False)}
        if slot.kind is SlotKind.TRANSFORMS:
            return Members(Emitted.COMPOSE, tuple(dict(members).items()))
        if slot.kind is SlotKind.LIST or (slot.is_list and slot.kind is not SlotKind.SINGLE):
            return Members(Emitted.LIST, tuple(dict(members).items()))
        if slot.is_list:
            return Members(Emitted.ONE_OF, tuple(dict(members).items()))
        return members[0][1] if members else None

    def _metric_label(self, comp: Component, key: str) -> str:
        label = comp.attributes.get(Clara.LOG_LABEL)
        if comp.ref is not None:
            target = self.find_ref(comp)
            label = label or (target.attributes.get(Clara.LOG_LABEL) if target else None)
        return str(label) if label else key


def _starts_with_interpolation(value: Any) -> bool:
    """A lowered value that starts with an interpolation (``"disabled": "{VAR}"``, ``"{A}_{B}"``)."""
    return isinstance(value, Interpolation) or (isinstance(value, Text) and isinstance(value.parts[0], Interpolation))
