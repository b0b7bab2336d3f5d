"""Parse and shape-check Clara ``search`` entries (SPEC §4.1, the 3.x legacy forms of §4.1 included).

:class:`SearchEntryParser` is the base of :class:`clara_hydra.convert.parse.Parser`: it owns the diagnostics list and
the rules for one entry (args and aliases, float bounds, enum arity, ``@disabled`` booleans).
"""

from __future__ import annotations

import json
import math
from typing import Any

from clara_hydra.convert.diagnostics import Problems
from clara_hydra.convert.jsonpath import join
from clara_hydra.convert.model import SearchArg, SearchSpec
from clara_hydra.errors import Diagnostic, Level, shorten
from clara_hydra.keywords import Clara


class SearchEntryParser:
    """Collects diagnostics while turning raw search entries into :class:`SearchSpec` values."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems = Problems(file)
        self.rejected_names: set[str] = set()  # names declared by search entries that were rejected

    @property
    def diagnostics(self) -> list[Diagnostic]:
        """What the parser found, in order."""
        return self.problems.found

    def problem(self, rule: str, message: str, path: str, fix: str = "", level: Level = Level.ERROR) -> None:
        self.problems.add(rule, message, path, fix, level)

    # -- lists of entries --------------------------------------------------------------------------------------------
    def searches(self, value: Any, path: str, owner: str | None) -> list[SearchSpec]:
        """The entries of a ``search`` list (``owner``: json path of the component, None at first level)."""
        if not isinstance(value, list):
            self.problem(
                "bad-search",
                f"'search' must be a list of search entries, got {kind(value)}",
                path,
                'wrap the entry in a list: "search": [{...}]',
            )
            return []
        out: list[SearchSpec] = []
        for i, entry in enumerate(value):
            spec = self._entry(entry, join(path, i), owner)
            if spec is not None:
                out.append(spec)
            elif isinstance(entry, dict):
                self._remember_rejected(entry, owner)
        return out

    def lr_search(self, value: Any) -> list[SearchSpec]:
        """The 3.x first-level ``"lr_search": [min, max]``: a float search on ``learning_rate``."""
        path = Clara.LEGACY_LR_SEARCH
        if not (isinstance(value, list) and len(value) == 2 and all(is_number(v) for v in value)):
            self.problem(
                "bad-lr-search",
                f"'lr_search' must be [min, max], got {short(value)}",
                path,
                'e.g. "lr_search": [0.0001, 0.001]',
            )
            return []
        self.problem(
            "legacy-form",
            "'lr_search' is the 3.x form of a float search on learning_rate",
            path,
            'write {"domain": "lr", "type": "float", "args": ["learning_rate"], "targets": [min, max]} in '
            "the first-level 'search' list",
            Level.WARNING,
        )
        lo, hi = value
        if not (finite(lo) and finite(hi)) or lo > hi:
            self.problem(
                "float-bounds",
                f"float search needs finite min <= max, got min={number(lo)} max={number(hi)}",
                path,
                "give finite bounds, smaller first",
            )
            return []
        return [SearchSpec(path, "lr", "float", (SearchArg("learning_rate"),), (lo, hi), None, True)]

    def _remember_rejected(self, entry: dict[str, Any], owner: str | None) -> None:
        # The entry was reported; remember its names so their uses are not reported as unknown too.
        raw = entry.get(Clara.ARGS)
        for text in [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []:
            if isinstance(text, str) and Clara.ALIAS_SEP in text:
                self.rejected_names.add(text.split(Clara.ALIAS_SEP, 1)[1])
            elif isinstance(text, str) and owner is None:
                self.rejected_names.add(text.lstrip(Clara.REF_PREFIX))

    # -- one entry ---------------------------------------------------------------------------------------------------
    def _entry(self, entry: Any, path: str, owner: str | None) -> SearchSpec | None:
        if not isinstance(entry, dict):
            self.problem(
                "bad-search",
                f"a search entry is an object, got {kind(entry)}",
                path,
                'e.g. {"domain": "net", "type": "enum", "args": ["num_res_units"], "targets": [[2], [1]]}',
            )
            return None
        domain = str(entry.get(Clara.DOMAIN))
        if domain not in Clara.DOMAINS:
            self.problem(
                "unknown-domain",
                f"search domain {shorten(repr(entry.get(Clara.DOMAIN)))} is not one of {list(Clara.DOMAINS)}",
                join(path, Clara.DOMAIN),
                "use lr, net or transform (the domain is only a label)",
                Level.WARNING,
            )
        raw_args = entry.get(Clara.ARGS)
        if raw_args == Clara.LEGACY_DISABLED and Clara.TYPE not in entry:
            return self._legacy_disabled(path, domain, owner)
        args = self._args(raw_args, path, owner)
        if args is None:
            return None
        typ = entry.get(Clara.TYPE)
        if typ not in Clara.TYPES:
            fix = 'integers are searched with "enum"' if typ == "int" else 'use "float" or "enum"'
            self.problem(
                "bad-search-type",
                f"search type must be 'float' or 'enum', got {shorten(repr(typ))}",
                join(path, Clara.TYPE),
                fix,
            )
            return None
        targets = entry.get(Clara.TARGETS)
        if typ == "float":
            bounds = self._float_targets(args, targets, join(path, Clara.TARGETS))
            return None if bounds is None else SearchSpec(path, domain, "float", args, bounds, owner)
        choices = self._enum_targets(args, targets, join(path, Clara.TARGETS))
        return None if choices is None else SearchSpec(path, domain, "enum", args, choices, owner)

    def _legacy_disabled(self, path: str, domain: str, owner: str | None) -> SearchSpec | None:
        if owner is None:
            self.problem(
                "bad-search-args",
                "the legacy 'DISABLED' search only exists on a component",
                join(path, Clara.ARGS),
                "search a first-level boolean and apply it to '@disabled'",
            )
            return None
        self.problem(
            "legacy-form",
            '\'"args": "DISABLED"\' is the 3.x form of an enum search on @disabled',
            join(path, Clara.ARGS),
            'write {"type": "enum", "args": ["@disabled"], "targets": [[true], [false]]}',
            Level.WARNING,
        )
        return SearchSpec(path, domain, "enum", (SearchArg(Clara.DISABLED_ARG),), ((True,), (False,)), owner, True)

    def _args(self, raw_args: Any, path: str, owner: str | None) -> tuple[SearchArg, ...] | None:
        if isinstance(raw_args, str):
            raw_args = [raw_args]
        if not (isinstance(raw_args, list) and raw_args and all(isinstance(a, str) and a for a in raw_args)):
            self.problem(
                "bad-search-args",
                f"'args' must be a non-empty list of argument names, got {short(raw_args)}",
                join(path, Clara.ARGS),
                'e.g. "args": ["prob#myProb"]',
            )
            return None
        args: list[SearchArg] = []
        for j, text in enumerate(raw_args):
            name, sep, alias = text.partition(Clara.ALIAS_SEP)
            if owner is None and name.startswith(Clara.REF_PREFIX):
                name = name[1:]  # a first-level virtual variable may be spelled with '@' (SPEC §4.6)
            if not name or (sep and (not alias or Clara.ALIAS_SEP in alias)):
                self.problem(
                    "bad-alias",
                    f"search arg {shorten(repr(text))} is not 'arg' or 'arg#alias'",
                    join(join(path, Clara.ARGS), j),
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
        return tuple(args)

    def _float_targets(self, args: tuple[SearchArg, ...], targets: Any, tpath: str) -> tuple[Any, ...] | None:
        if not (isinstance(targets, list) and len(targets) == 2 and all(is_number(t) for t in targets)):
            self.problem(
                "float-targets",
                f"float search targets must be exactly [min, max] numbers, got {short(targets)}",
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
        if not (finite(lo) and finite(hi)):
            self.problem(
                "float-bounds",
                f"float search bounds must be finite numbers, got min={number(lo)} max={number(hi)}",
                tpath,
                "give real bounds (NaN, Infinity and integers beyond the float range, about 1.8e308, cannot be "
                "sampled)",
            )
            return None
        if lo > hi:
            self.problem(
                "float-bounds",
                f"float search needs min <= max, got min={number(lo)} max={number(hi)}",
                tpath,
                "swap the bounds",
            )
            return None
        return (lo, hi)

    def _enum_targets(self, args: tuple[SearchArg, ...], targets: Any, tpath: str) -> tuple[Any, ...] | None:
        names = [a.name for a in args]
        if not (isinstance(targets, list) and targets):
            self.problem(
                "enum-targets",
                f"enum search targets must be a non-empty list of choices, got {short(targets)}",
                tpath,
                'e.g. "targets": [[1], [2]]',
            )
            return None
        choices: list[tuple[Any, ...]] = []
        shorthand = False
        for k, choice in enumerate(targets):
            if len(args) == 1 and not isinstance(choice, list):
                shorthand = True  # the seed page's own example 1 writes single-arg choices bare
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
                    f"enum choice {k} has {n} value(s) for {len(args)} arg(s) {names}: {short(choice)}",
                    join(tpath, k),
                    fix,
                )
                return None
            if Clara.DISABLED_ARG in names and not isinstance(choice[names.index(Clara.DISABLED_ARG)], bool):
                self.problem(
                    "disabled-not-bool",
                    f"@disabled choices must be true or false, got {short(choice[names.index(Clara.DISABLED_ARG)])}",
                    join(tpath, k),
                    "use true or false (JSON booleans, not strings)",
                )
                return None
            if not _finite(choice):
                self.problem(
                    "enum-targets",
                    f"enum choice {k} holds NaN or Infinity, which no sampler can offer: {short(choice)}",
                    join(tpath, k),
                    "use finite numbers (NaN and Infinity are not JSON)",
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
        unique = list({freeze(c): c for c in choices}.values())
        if len(unique) != len(choices):
            self.problem(
                "duplicate-choice",
                f"enum search lists the same choice twice: {short(targets)}",
                tpath,
                "remove the repeated choice",
                Level.WARNING,
            )
        return tuple(unique)


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def number(v: int | float) -> str:
    """A bound as messages show it (``nan``, ``0.001``), cut when it has hundreds of digits."""
    return shorten(str(v), 40)


def finite(v: int | float) -> bool:
    """A number a float search can sample: finite as a float (an integer beyond the float range is not)."""
    try:
        return math.isfinite(v)
    except OverflowError:  # int too large to convert to float
        return False


def _finite(v: Any) -> bool:
    """No NaN or Infinity anywhere in a JSON value (Python's json reads them; JSON has none)."""
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, list | tuple):
        return all(_finite(x) for x in v)
    if isinstance(v, dict):
        return all(_finite(x) for x in v.values())
    return True


def kind(v: Any) -> str:
    """``an object``, ``a list``, ... for messages."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(v), "a number")


def short(v: Any, limit: int = 80) -> str:
    """Compact JSON of a value for messages, cut in the middle when long (:func:`clara_hydra.errors.shorten`)."""
    return shorten(json.dumps(v, ensure_ascii=False, default=repr), limit)


def freeze(v: Any) -> Any:
    """A hashable, type-aware form of a JSON value (``1`` and ``true`` stay different)."""
    if isinstance(v, list | tuple):
        return tuple(freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, freeze(x)) for k, x in v.items()))
    return (type(v).__name__, v)
