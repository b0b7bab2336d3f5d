"""Parse Clara JSON (already loaded) into the typed model, checking shapes as it goes.

The parser knows nothing of Hydra. It collects every problem it sees into a list of diagnostics instead of stopping
at the first one, so a user sees all mistakes of a file in one run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from clara_hydra.convert.jsonpath import join, snake
from clara_hydra.convert.model import ClaraConfig, Component, Era, SearchArg, SearchSpec, Slot, SlotKind
from clara_hydra.errors import Diagnostic, Level
from clara_hydra.keywords import Clara

_SLOT_KINDS: dict[str, SlotKind] = {
    **{s: SlotKind.SINGLE for s in Clara.SINGLE_SLOTS},
    **{s: SlotKind.TRANSFORMS for s in Clara.TRANSFORM_SLOTS},
    "handlers": SlotKind.LIST,
    "key_metric": SlotKind.METRICS,
    "additional_metrics": SlotKind.METRICS,
    "metrics": SlotKind.METRICS,
}
_COMPONENT_KEYS = frozenset({Clara.NAME, Clara.PATH, Clara.REF, Clara.TS_PATH, Clara.CKPT_PATH})
_3X_SLOTS = frozenset({"lr_policy", "image_pipeline", "aux_ops"})


class Parser:
    """Turns one loaded Clara JSON document into a :class:`ClaraConfig` plus diagnostics."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.diagnostics: list[Diagnostic] = []
        self.rejected_names: set[str] = set()  # names declared by search entries that were rejected

    # -- reporting -------------------------------------------------------------------------------------------------
    def problem(self, rule: str, message: str, path: str, fix: str = "", level: Level = Level.ERROR) -> None:
        self.diagnostics.append(Diagnostic(rule, message, path, fix, level, self.file))

    # -- entry point -------------------------------------------------------------------------------------------------
    def parse(self, doc: Any, text: bytes) -> ClaraConfig:
        sha = hashlib.sha256(text).hexdigest()
        if not isinstance(doc, dict):
            self.problem("not-an-object", f"a Clara config is a JSON object, got {type(doc).__name__}", "$")
            return ClaraConfig(self.file, sha, Era.V41, {}, (), ())
        sections = [s for s in Clara.SECTIONS if s in doc]
        first_level: dict[str, Any] = {}
        slots: list[Slot] = []
        unknown: dict[str, Any] = {}
        searches: list[SearchSpec] = []
        for key, value in doc.items():
            if _is_comment(key):
                continue
            if key in sections:
                if not isinstance(value, dict):
                    self.problem("bad-section", f"section '{key}' must be an object, got {_kind(value)}", key)
                    continue
                for slot_name, slot_value in value.items():
                    if _is_comment(slot_name):
                        continue
                    slot = self._slot(key, slot_name, slot_value, join(key, slot_name))
                    if slot is not None:
                        slots.append(slot)
                    else:
                        unknown[f"{key}.{slot_name}"] = slot_value
            elif key == Clara.SEARCH:
                searches.extend(self._searches(value, Clara.SEARCH, owner=None))
            elif key == Clara.LEGACY_LR_SEARCH:
                searches.extend(self._lr_search(value))
            elif not sections and _holds_components(value):
                slot = self._slot(None, key, value, key)
                if slot is not None:
                    slots.append(slot)
            else:
                first_level[key] = value
        era = detect_era(doc, slots)
        return ClaraConfig(
            self.file, sha, era, first_level, tuple(slots), tuple(searches), unknown, frozenset(self.rejected_names)
        )

    # -- slots and components ------------------------------------------------------------------------------------
    def _slot(self, section: str | None, name: str, value: Any, path: str) -> Slot | None:
        kind = _SLOT_KINDS.get(name)
        if kind is None:
            if not _holds_components(value):
                return None
            kind = SlotKind.LIST if isinstance(value, list) else SlotKind.SINGLE
        items = value if isinstance(value, list) else [value]
        comps: list[Component] = []
        used: dict[str, int] = {}
        for i, item in enumerate(items):
            item_path = join(path, i) if isinstance(value, list) else path
            if not isinstance(item, dict):
                self.problem(
                    "bad-component",
                    f"a component is a JSON object with 'name' or 'path', got {_kind(item)}: {_short(item)}",
                    item_path,
                    'write it as {"name": "ClassName", "args": {...}}',
                )
                continue
            comp = self._component(section, name, item, item_path, used)
            if comp is not None:
                comps.append(comp)
        return Slot(section, name, kind, tuple(comps), isinstance(value, list), path)

    def _component(
        self, section: str | None, slot: str, item: Mapping[str, Any], path: str, used: dict[str, int]
    ) -> Component | None:
        name = item.get(Clara.NAME)
        class_path = item.get(Clara.PATH)
        ref = item.get(Clara.REF)
        label = None
        for key, val in ((Clara.NAME, name), (Clara.PATH, class_path), (Clara.REF, ref)):
            if val is not None and not (isinstance(val, str) and val.strip()):
                self.problem("bad-name", f"'{key}' must be a non-empty string, got {_short(val)}", join(path, key))
                return None
        if isinstance(name, str) and Clara.ALIAS_SEP in name:
            name, label = name.split(Clara.ALIAS_SEP, 1)
        loader = Clara.TS_PATH in item or Clara.CKPT_PATH in item  # 4.1 validation model loaders have no name
        if name is None and class_path is None and ref is None and not loader:
            self.problem(
                "missing-name",
                f"a component needs 'name' or 'path'; keys seen: {sorted(item)}",
                path,
                'add "name": "ClassName" (MONAI/torch short name) or "path": "pkg.module.Class"',
            )
            return None
        args = item.get(Clara.ARGS, {})
        if args is None:
            args = {}
        if not isinstance(args, dict):
            self.problem(
                "bad-args",
                f"'args' must be an object of keyword arguments, got {_kind(args)}",
                join(path, Clara.ARGS),
                'write the keyword arguments as an object: "args": {"keys": ["image"]}',
            )
            args = {}
        apply = item.get(Clara.APPLY, {}) or {}
        if not isinstance(apply, dict) or not all(isinstance(v, str) for v in apply.values()):
            self.problem(
                "bad-apply",
                f"'apply' maps argument names to searched names (strings), got {_short(apply)}",
                join(path, Clara.APPLY),
                'e.g. "apply": {"prob": "myProb", "@disabled": "d1"}',
            )
            apply = {}
        attributes = {k: item[k] for k in Clara.ATTRIBUTES if k in item}
        for key in item:
            if key not in _KNOWN_COMPONENT_KEYS and not _is_comment(key):
                self.problem(
                    "unknown-key",
                    f"unknown component key '{key}' (kept out of the conversion)",
                    join(path, key),
                    "move constructor arguments into 'args'; keys starting with '_' are comments",
                    Level.WARNING,
                )
        base = label or name or (class_path.rsplit(".", 1)[-1] if class_path else None) or ref
        if base is None:
            base = "ts_model" if Clara.TS_PATH in item else "ckpt_model"
        if ref is not None and Clara.ALIAS_SEP in ref:
            base = ref.split(Clara.ALIAS_SEP, 1)[1]
        key = snake(base)
        used[key] = used.get(key, 0) + 1
        if used[key] > 1:
            key = f"{key}_{used[key]}"
        searches = self._searches(item.get(Clara.SEARCH, []), join(path, Clara.SEARCH), owner=path)
        return Component(
            path, section, slot, key, name, class_path, label, args, attributes, tuple(searches), apply, ref
        )

    # -- search entries ------------------------------------------------------------------------------------------
    def _lr_search(self, value: Any) -> list[SearchSpec]:
        path = Clara.LEGACY_LR_SEARCH
        if not (isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)):
            self.problem("bad-lr-search", f"'lr_search' must be [min, max], got {_short(value)}", path)
            return []
        self.problem(
            "legacy-form",
            "'lr_search' is the 3.x form of a float search on learning_rate",
            path,
            'write {"domain": "lr", "type": "float", "args": ["learning_rate"], '
            "\"targets\": [min, max]} in the first-level 'search' list",
            Level.WARNING,
        )
        return self._check_float(SearchArg("learning_rate"), value, path, "lr", None, legacy=True)

    def _check_float(
        self, arg: SearchArg, targets: Any, path: str, domain: str, owner: str | None, legacy: bool = False
    ) -> list[SearchSpec]:
        lo, hi = targets
        if lo > hi:
            self.problem(
                "float-bounds",
                f"float search needs min <= max, got min={lo} max={hi}",
                path if legacy else join(path, Clara.TARGETS),
                "swap the bounds",
            )
            return []
        return [SearchSpec(path, domain, "float", (arg,), (lo, hi), owner, legacy)]

    def _searches(self, value: Any, path: str, owner: str | None) -> list[SearchSpec]:
        if not isinstance(value, list):
            self.problem(
                "bad-search",
                f"'search' must be a list of search entries, got {_kind(value)}",
                path,
                'wrap the entry in a list: "search": [{...}]',
            )
            return []
        out: list[SearchSpec] = []
        for i, entry in enumerate(value):
            spec = self._search(entry, join(path, i), owner)
            if spec is not None:
                out.append(spec)
            elif isinstance(entry, dict):
                # The entry was reported; remember its aliases so their uses are not reported as unknown too.
                raw = entry.get(Clara.ARGS)
                for text in [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []:
                    if isinstance(text, str) and Clara.ALIAS_SEP in text:
                        self.rejected_names.add(text.split(Clara.ALIAS_SEP, 1)[1])
                    elif isinstance(text, str) and owner is None:
                        self.rejected_names.add(text.lstrip(Clara.REF_PREFIX))
        return out

    def _search(self, entry: Any, path: str, owner: str | None) -> SearchSpec | None:
        if not isinstance(entry, dict):
            self.problem(
                "bad-search",
                f"a search entry is an object, got {_kind(entry)}",
                path,
                'e.g. {"domain": "net", "type": "enum", "args": ["num_res_units"], "targets": [[2], [1]]}',
            )
            return None
        domain = entry.get(Clara.DOMAIN)
        if domain not in Clara.DOMAINS:
            self.problem(
                "unknown-domain",
                f"search domain {domain!r} is not one of {list(Clara.DOMAINS)}",
                join(path, Clara.DOMAIN),
                "use lr, net or transform (the domain is only a label)",
                Level.WARNING,
            )
        raw_args = entry.get(Clara.ARGS)
        if raw_args == Clara.LEGACY_DISABLED and Clara.TYPE not in entry:
            if owner is None:
                self.problem(
                    "bad-search-args", "the legacy 'DISABLED' search only exists on a component", join(path, Clara.ARGS)
                )
                return None
            self.problem(
                "legacy-form",
                '\'"args": "DISABLED"\' is the 3.x form of an enum search on @disabled',
                join(path, Clara.ARGS),
                'write {"type": "enum", "args": ["@disabled"], "targets": [[true], [false]]}',
                Level.WARNING,
            )
            return SearchSpec(path, str(domain), "enum", (SearchArg("@disabled"),), ((True,), (False,)), owner, True)
        if isinstance(raw_args, str):
            raw_args = [raw_args]
        if not (isinstance(raw_args, list) and raw_args and all(isinstance(a, str) and a for a in raw_args)):
            self.problem(
                "bad-search-args",
                f"'args' must be a non-empty list of argument names, got {_short(raw_args)}",
                join(path, Clara.ARGS),
                'e.g. "args": ["prob#myProb"]',
            )
            return None
        args: list[SearchArg] = []
        for j, text in enumerate(raw_args):
            name, sep, alias = text.partition(Clara.ALIAS_SEP)
            if owner is None:
                name = name[1:] if name.startswith(Clara.REF_PREFIX) else name  # virtual variable spelling (§4.6)
            if not name or (sep and (not alias or Clara.ALIAS_SEP in alias)):
                self.problem(
                    "bad-alias",
                    f"search arg {text!r} is not 'arg' or 'arg#alias'",
                    join(join(path, "args"), j),
                    "write the argument, then '#', then the alias: \"prob#myProb\"",
                )
                return None
            args.append(SearchArg(name, alias or None))
        names = [a.name for a in args]
        if len(set(names)) != len(names):
            self.problem(
                "duplicate-search-arg",
                f"search args repeat a name: {raw_args}",
                join(path, Clara.ARGS),
                "list each argument once",
            )
            return None
        typ = entry.get(Clara.TYPE)
        targets = entry.get(Clara.TARGETS)
        tpath = join(path, Clara.TARGETS)
        if typ not in Clara.TYPES:
            fix = 'integers are searched with "enum"' if typ == "int" else 'use "float" or "enum"'
            self.problem(
                "bad-search-type", f"search type must be 'float' or 'enum', got {typ!r}", join(path, Clara.TYPE), fix
            )
            return None
        if typ == "float":
            if len(args) != 1 and not (isinstance(targets, list) and len(targets) == 2):
                pass
            if not (isinstance(targets, list) and len(targets) == 2 and all(_is_number(t) for t in targets)):
                self.problem(
                    "float-targets",
                    f"float search targets must be exactly [min, max] numbers, got {_short(targets)}",
                    tpath,
                    'e.g. "targets": [0.0, 1.0]',
                )
                return None
            if any(a.is_disabled for a in args):
                self.problem(
                    "float-disabled",
                    "@disabled can only be searched with an enum of booleans",
                    tpath,
                    'use "type": "enum", "targets": [[true], [false]]',
                )
                return None
            lo, hi = targets
            if lo > hi:
                self.problem(
                    "float-bounds", f"float search needs min <= max, got min={lo} max={hi}", tpath, "swap the bounds"
                )
                return None
            return SearchSpec(path, str(domain), "float", tuple(args), (lo, hi), owner)
        if not (isinstance(targets, list) and targets):
            self.problem(
                "enum-targets",
                f"enum search targets must be a non-empty list of choices, got {_short(targets)}",
                tpath,
                'e.g. "targets": [[1], [2]]',
            )
            return None
        choices: list[tuple[Any, ...]] = []
        shorthand = False
        for k, choice in enumerate(targets):
            if len(args) == 1 and not isinstance(choice, list):
                shorthand = True
                choice = [choice]
            if not isinstance(choice, list) or len(choice) != len(args):
                n = len(choice) if isinstance(choice, list) else 1
                fix = (
                    "a list-valued arg needs one more bracket: [[[16, 32]], [[8, 16]]]"
                    if len(args) == 1
                    else f"give one value per arg {names} in every choice"
                )
                self.problem(
                    "enum-arity",
                    f"enum choice {k} has {n} value(s) for {len(args)} arg(s) {names}: {_short(choice)}",
                    join(tpath, k),
                    fix,
                )
                return None
            if any(a.is_disabled for a in args):
                flag = choice[names.index("@disabled")]
                if not isinstance(flag, bool):
                    self.problem(
                        "disabled-not-bool",
                        f"@disabled choices must be true or false, got {_short(flag)}",
                        join(tpath, k),
                        "use true or false (JSON booleans, not strings)",
                    )
                    return None
            choices.append(tuple(choice))
        if shorthand:
            self.problem(
                "legacy-form",
                "enum targets for one arg should be lists of one value each",
                tpath,
                f"write {json.dumps([[c[0]] for c in choices])}",
                Level.WARNING,
            )
        if len(set(map(_freeze, choices))) != len(choices):
            self.problem(
                "duplicate-choice",
                f"enum search lists the same choice twice: {_short(targets)}",
                tpath,
                "remove the repeated choice",
                Level.WARNING,
            )
            seen: set[Any] = set()
            choices = [c for c in choices if not (_freeze(c) in seen or seen.add(_freeze(c)))]  # type: ignore[func-returns-value]
        return SearchSpec(path, str(domain), "enum", tuple(args), tuple(choices), owner)


_KNOWN_COMPONENT_KEYS = frozenset({*_COMPONENT_KEYS, Clara.ARGS, Clara.SEARCH, Clara.APPLY, *Clara.ATTRIBUTES})


def detect_era(doc: Mapping[str, Any], slots: list[Slot] | tuple[Slot, ...]) -> Era:
    """4.1 when it says so or uses ``@``/``#`` references; 3.x when it has TensorFlow-era slots or ``fields``."""
    version = str(doc.get("CLARA_TRAIN_VERSION", ""))
    if version.startswith("4.1") or version.startswith("4.2"):
        return Era.V41
    if any(s.name in _3X_SLOTS for s in slots) or "lr_search" in doc or "use_amp" in doc:
        return Era.V3X
    if any("fields" in c.args for s in slots for c in s.components):
        return Era.V3X
    if any(_uses_refs(c.args) for s in slots for c in s.components):
        return Era.V41
    return Era.V40


def _uses_refs(value: Any) -> bool:
    """True when a value holds a 4.1 ``@ref`` or ``#expression`` string."""
    if isinstance(value, str):
        return value.startswith(("@", "#"))
    if isinstance(value, dict):
        return any(_uses_refs(v) for v in value.values())
    if isinstance(value, list):
        return any(_uses_refs(v) for v in value)
    return False


def _holds_components(value: Any) -> bool:
    if isinstance(value, dict):
        return bool(_COMPONENT_KEYS & value.keys())
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and _COMPONENT_KEYS & v.keys() for v in value)
    )


def _is_comment(key: str) -> bool:
    return key.startswith(("_", "/"))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _kind(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(v), "a number"
    )


def _short(v: Any, limit: int = 80) -> str:
    text = json.dumps(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _freeze(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    return (type(v).__name__, v)
