"""Parse Clara JSON (already loaded) into the typed model, checking shapes as it goes.

The parser knows nothing of Hydra. It collects every problem it sees into a list of diagnostics instead of stopping
at the first one, so a user sees all mistakes of a file in one run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from clara_hydra.convert.jsonpath import join, snake
from clara_hydra.convert.model import ClaraConfig, Component, Era, SearchSpec, Slot, SlotKind
from clara_hydra.convert.parse_search import SearchEntryParser, short
from clara_hydra.convert.parse_search import kind as json_kind
from clara_hydra.errors import Level
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


class Parser(SearchEntryParser):
    """Turns one loaded Clara JSON document into a :class:`ClaraConfig` plus diagnostics."""

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
            if _is_comment(key):
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
                    if _is_comment(slot_name):
                        continue
                    slot = self._slot(key, slot_name, slot_value, join(key, slot_name))
                    if slot is not None:
                        slots.append(slot)
                    else:
                        unknown[f"{key}.{slot_name}"] = slot_value
            elif key == Clara.SEARCH:
                searches.extend(self.searches(value, Clara.SEARCH, owner=None))
            elif key == Clara.LEGACY_LR_SEARCH:
                searches.extend(self.lr_search(value))
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
            if val is not None and not (isinstance(val, str) and val.strip()):
                self.problem(
                    "bad-name",
                    f"'{key}' must be a non-empty string, got {short(val)}",
                    join(path, key),
                    'e.g. "name": "UNet" or "path": "my_pkg.nets.MyNet"',
                )
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
        searches = self.searches(item.get(Clara.SEARCH, []), join(path, Clara.SEARCH), owner=path)
        return Component(
            path, section, slot, key, name, class_path, label, args, attributes, tuple(searches), apply, ref
        )


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
