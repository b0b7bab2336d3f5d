"""Parse Clara JSON (already loaded) into the typed model, checking shapes as it goes.

The parser knows nothing of Hydra. It collects every problem it sees into a list of diagnostics instead of stopping
at the first one, so a user sees all mistakes of a file in one run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from clara_hydra.convert.jsonpath import join, snake
from clara_hydra.convert.model import ClaraConfig, Component, Era, SearchSpec, Slot, SlotKind
from clara_hydra.convert.parse_search import SearchEntryParser, short
from clara_hydra.convert.parse_search import kind as json_kind
from clara_hydra.convert.sigils import decode
from clara_hydra.errors import Level, shorten, suggest
from clara_hydra.keywords import Clara

# Keys that make a dict a component written without 'name' (reported, never passed through as a plain value).
_COMPONENT_PARTS = frozenset({Clara.ARGS, Clara.SEARCH, Clara.APPLY})
_KNOWN_SLOTS = frozenset({*Clara.SLOT_KINDS, *Clara.LEGACY_3X_SLOTS})
# Longest class name or path taken to the catalog (real ones are under 100); longer is a mistake, reported here.
_NAME_LIMIT = 300


class Parser(SearchEntryParser):
    """Turns one loaded Clara JSON document into a :class:`ClaraConfig` plus diagnostics."""

    def __init__(self, file: str) -> None:
        super().__init__(file)
        self.nested: dict[str, Component] = {}

    # -- entry point -------------------------------------------------------------------------------------------------
    def parse(self, doc: Any, text: bytes) -> ClaraConfig:
        sha = hashlib.sha256(text).hexdigest()
        if not isinstance(doc, dict):
            self.problem(
                "not-an-object",
                f"a Clara config is a JSON object, got {type(doc).__name__}",
                "$",
                'start from {"epochs": ..., "train": {...}, "validate": {...}}',
            )
            return ClaraConfig(self.file, sha, Era.V41, {}, (), ())
        sections = [s for s in Clara.SECTIONS if s in doc]
        first_level: dict[str, Any] = {}
        slots: list[Slot] = []
        unknown: dict[str, Any] = {}
        searches: list[SearchSpec] = []
        for key, value in doc.items():
            if Clara.is_comment(key):
                continue
            if key in sections:
                if not isinstance(value, dict):
                    self.problem(
                        "bad-section",
                        f"section '{key}' must be an object, got {json_kind(value)}",
                        key,
                        f'write "{key}": {{"model": {{...}}, "pre_transforms": [...], ...}}',
                    )
                    continue
                for slot_name, slot_value in value.items():
                    if Clara.is_comment(slot_name):
                        continue
                    slot = self._slot(key, slot_name, slot_value, join(key, slot_name))
                    if slot is not None:
                        slots.append(slot)
                    else:
                        self._not_a_slot(key, slot_name, slot_value)
                        unknown[f"{key}.{slot_name}"] = slot_value
            elif key == Clara.SEARCH:
                searches.extend(self.searches(value, Clara.SEARCH, owner=None))
            elif key == Clara.LEGACY_LR_SEARCH:
                searches.extend(self.lr_search(value))
            elif not sections and (key in _KNOWN_SLOTS or _holds_components(value)):
                slot = self._slot(None, key, value, key)
                if slot is not None:
                    slots.append(slot)
            else:
                first_level[key] = value
                self.nested_in(value, None, "", key)
        if not slots and not self.diagnostics:
            self.problem(
                "no-components",
                "this config has no components: no 'train'/'validate' section and no first-level slot "
                f"(keys seen: {short(sorted(doc), 120)})",
                "$",
                'a training config holds sections: {"epochs": 10, "train": {"model": {...}, ...}, "validate": {...}}',
            )
        era = detect_era(doc, slots)
        return ClaraConfig(
            self.file,
            sha,
            era,
            {k: decode(v, era) for k, v in first_level.items()},
            tuple(replace(s, components=tuple(_decoded(c, era) for c in s.components)) for s in slots),
            tuple(searches),
            {k: decode(v, era) for k, v in unknown.items()},
            frozenset(self.rejected_names),
            {path: _decoded(c, era) for path, c in self.nested.items()},
        )

    def _not_a_slot(self, section: str, name: str, value: Any) -> None:
        """Report a section value that is neither a slot nor a component (kept verbatim in the tree)."""
        self.problem(
            "not-a-slot",
            f"'{section}.{name}' is not a Clara slot and holds no component; it is kept verbatim "
            f"as {section}.{name} in the tree ({json_kind(value)})",
            join(section, name),
            suggest(name, sorted(Clara.SLOT_KINDS)) or "remove it if Clara ignored it",
            Level.WARNING,
        )
        self.nested_in(value, section, name, join(section, name))

    # -- slots and components ------------------------------------------------------------------------------------
    def _slot(self, section: str | None, name: str, value: Any, path: str) -> Slot | None:
        kind = Clara.SLOT_KINDS.get(name)
        if kind is None:
            if not _holds_components(value) and name not in Clara.LEGACY_3X_SLOTS:
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
                    f"a component is a JSON object with 'name' or 'path', got {json_kind(item)}: {short(item)}",
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
            if val is not None and not (isinstance(val, str) and val.strip() and len(val) <= _NAME_LIMIT):
                self.problem(
                    "bad-name",
                    f"'{key}' must be a non-empty string of at most {_NAME_LIMIT} characters, got {short(val)}",
                    join(path, key),
                    'e.g. "name": "UNet" or "path": "my_pkg.nets.MyNet"',
                )
                return None
        if not self._known_keys(item, path):
            return None
        if isinstance(name, str) and Clara.ALIAS_SEP in name:
            name, label = name.split(Clara.ALIAS_SEP, 1)
        loader = Clara.TS_PATH in item or Clara.CKPT_PATH in item  # 4.1 validation model loaders have no name
        if name is None and class_path is None and ref is None and not loader:
            self.problem(
                "missing-name",
                f"a component needs 'name' or 'path'; keys seen: {shorten(sorted(item))}",
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
                f"'args' must be an object of keyword arguments, got {json_kind(args)}",
                join(path, Clara.ARGS),
                'write the keyword arguments as an object: "args": {"keys": ["image"]}',
            )
            args = {}
        apply = item.get(Clara.APPLY, {}) or {}
        if not isinstance(apply, dict) or not all(isinstance(v, str) for v in apply.values()):
            self.problem(
                "bad-apply",
                f"'apply' maps argument names to searched names (strings), got {short(apply)}",
                join(path, Clara.APPLY),
                'e.g. "apply": {"prob": "myProb", "@disabled": "d1"}',
            )
            apply = {}
        attributes = {k: item[k] for k in Clara.ATTRIBUTES if k in item}
        base = label or name or (class_path.rsplit(".", 1)[-1] if class_path else None) or ref
        if base is None:
            base = "ts_model" if Clara.TS_PATH in item else "ckpt_model"
        if ref is not None and Clara.ALIAS_SEP in ref:
            base = ref.split(Clara.ALIAS_SEP, 1)[1]
        key = snake(base)
        used[key] = used.get(key, 0) + 1
        if used[key] > 1:
            key = f"{key}_{used[key]}"
        searches = self.searches(item.get(Clara.SEARCH, []), join(path, Clara.SEARCH), owner=path)
        comp = Component(
            path, section, slot, key, name, class_path, label, args, attributes, tuple(searches), apply, ref
        )
        for arg, value in args.items():  # the lowering reads each argument's value, never 'args' as a whole
            self.nested_in(value, section, slot, join(join(path, Clara.ARGS), arg))
        return comp

    def _known_keys(self, item: Mapping[str, Any], path: str) -> bool:
        """Report unknown component keys; False when one is a misspelt structural key (``Args``, ``serach``)."""
        ok = True
        for key in item:
            if key in _KNOWN_COMPONENT_KEYS or Clara.is_comment(key):
                continue
            hint = suggest(key, sorted(_KNOWN_COMPONENT_KEYS))
            if any(f"'{k}'" in hint for k in Clara.STRUCTURE_KEYS):
                ok = False
                self.problem(
                    "misspelled-key",
                    f"unknown component key {short(key)} looks like a misspelt Clara key; "
                    "converting without it would silently drop what it holds",
                    join(path, key),
                    hint,
                )
                continue
            self.problem(
                "unknown-key",
                f"unknown component key {short(key)} (kept out of the conversion)",
                join(path, key),
                hint or "move constructor arguments into 'args'; keys starting with '_' are comments",
                Level.WARNING,
            )
        return ok

    # -- components inside values --------------------------------------------------------------------------------
    def nested_in(self, value: Any, section: str | None, slot: str, path: str) -> None:
        """Register every component written inside ``value`` (SPEC §1: a transform in ``RandomOrder``'s args)."""
        if isinstance(value, list):
            for i, v in enumerate(value):
                self.nested_in(v, section, slot, join(path, i))
        elif isinstance(value, dict):
            if not _names_component(value):
                for k, v in value.items():
                    if not Clara.is_comment(k):
                        self.nested_in(v, section, slot, join(path, k))
                return
            name, class_path, args = value.get(Clara.NAME), value.get(Clara.PATH), value.get(Clara.ARGS) or {}
            texts = [v for v in (name, class_path) if v is not None]
            if not all(isinstance(v, str) and v.strip() for v in texts) or not isinstance(args, dict):
                self.problem(
                    "bad-component",
                    "a nested component needs a non-empty 'name' or 'path' string and 'args' as an object",
                    path,
                    'write it as {"name": "ClassName", "args": {...}}',
                )
                return
            comp = self._component(section, slot, value, path, {})
            if comp is not None:
                self.nested[path] = comp


_KNOWN_COMPONENT_KEYS = frozenset({*Clara.COMPONENT_KEYS, *Clara.STRUCTURE_KEYS, *Clara.ATTRIBUTES})


def detect_era(doc: Mapping[str, Any], slots: list[Slot] | tuple[Slot, ...]) -> Era:
    """4.1 when it says so or uses ``@``/``#`` references; 3.x when it has TensorFlow-era slots."""
    version = str(doc.get("CLARA_TRAIN_VERSION", ""))
    if version.startswith("4.1") or version.startswith("4.2"):
        return Era.V41
    if any(s.name in Clara.LEGACY_3X_SLOTS for s in slots) or "lr_search" in doc or "use_amp" in doc:
        return Era.V3X
    # A 3.x component (`fields`) in a 4.x file is read as 3.x's by the catalog, by what it is; the file stays 4.x.
    if any(_uses_refs(c.args) for s in slots for c in s.components):
        return Era.V41
    return Era.V40


#: attributes whose value the tree uses as an argument value (``disabled``, datalist and model-loader paths)
_VALUE_ATTRIBUTES = frozenset(
    {
        Clara.DISABLED,
        Clara.TS_PATH,
        Clara.CKPT_PATH,
        Clara.DATA_LIST_FILE_PATH,
        Clara.DATA_FILE_BASE_DIR,
        Clara.DATA_LIST_KEY,
    }
)


def _decoded(comp: Component, era: Era) -> Component:
    """``comp`` with the markers in its argument values (and value attributes) decoded (:mod:`.sigils`); the era
    decides whether ``@name`` is a reference, so this runs once the whole file is read."""
    attributes = {k: decode(v, era) if k in _VALUE_ATTRIBUTES else v for k, v in comp.attributes.items()}
    return replace(comp, args={k: decode(v, era) for k, v in comp.args.items()}, attributes=attributes)


def _uses_refs(value: Any) -> bool:
    """True when a value holds a 4.1 ``@ref`` or ``#expression`` string."""
    if isinstance(value, str):
        return value.startswith(("@", "#"))
    if isinstance(value, dict):
        return any(_uses_refs(v) for v in value.values())
    if isinstance(value, list):
        return any(_uses_refs(v) for v in value)
    return False


def _names_component(value: Mapping[str, Any]) -> bool:
    """A dict inside a value is a component when it names a class (what the lowering turns into a node)."""
    return isinstance(value.get(Clara.NAME), str) or isinstance(value.get(Clara.PATH), str)


def _holds_components(value: Any) -> bool:
    """A slot value: a component (or a list of them), with or without its 'name' (a missing one is reported)."""

    def one(v: Any) -> bool:
        return isinstance(v, dict) and bool(
            {*Clara.COMPONENT_KEYS, *_COMPONENT_PARTS} & {k for k in v if not Clara.is_comment(k)}
        )

    if isinstance(value, dict):
        return one(value)
    return isinstance(value, list) and bool(value) and all(one(v) for v in value)
