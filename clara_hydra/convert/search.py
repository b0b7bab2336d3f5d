"""Bind the Clara search space: aliases, ``apply``, virtual variables and searched arguments become named values.

Every searched or applied value gets one top-level Hydra key (``learning_rate``, ``myProb``, ``channels``); each search
entry becomes one :class:`Dimension` over some of those keys. Components read the keys through
:attr:`SearchPlan.bindings`.
Policies (SPEC §4): aliases are global and may be defined twice only identically; an alias may not reuse a first-level
parameter's name; apply names an alias, a first-level parameter or a first-level search arg; apply targets are real
arguments or ``@disabled``; searched names without a value take the first choice (float: the lower bound).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from clara_hydra.convert.diagnostics import Problems
from clara_hydra.convert.jsonpath import join
from clara_hydra.convert.model import ClaraConfig, Component, SearchSpec
from clara_hydra.convert.parse_search import freeze
from clara_hydra.errors import Diagnostic, Level, shorten, suggest
from clara_hydra.keywords import Clara, Emitted

RESERVED_KEYS = frozenset(Emitted.RESERVED_TOP)


@dataclass(frozen=True)
class Dimension:
    """One independent dimension of the search space (one Clara search entry)."""

    json_path: str
    type: str  # "float" | "enum"
    keys: tuple[str, ...]  # top-level keys it sets, one per searched arg
    targets: tuple[Any, ...]  # float: (lo, hi); enum: tuple of value tuples
    integer: bool = False  # float search over an integer argument (sampled as int)

    @property
    def joint(self) -> bool:
        return self.type == "enum" and len(self.keys) > 1


@dataclass(frozen=True)
class Variable:
    """A top-level key that holds a searched or applied value."""

    key: str
    default: Any
    json_path: str
    chosen_default: bool = False  # default picked by policy (no value of its own)


@dataclass
class SearchPlan:
    """The bound search space of one config."""

    dimensions: list[Dimension] = field(default_factory=list)
    variables: dict[str, Variable] = field(default_factory=dict)  # searched keys not among first-level params
    bindings: dict[tuple[str, str], str] = field(default_factory=dict)  # (component path, arg or @disabled) -> key
    aliases: dict[str, SearchSpec] = field(default_factory=dict)


class SearchBinder:
    """Runs the binding pass, collecting diagnostics.

    Args:
        config: the parsed config.
        params: keyword parameters of each resolved component's target, by JSON path (None: unknown/``**kwargs``).
        env_names: names the environment and ``--set`` define (a searched name may not take them).
    """

    def __init__(
        self,
        config: ClaraConfig,
        params: Mapping[str, frozenset[str] | None],
        env_names: frozenset[str],
        renamed: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.config = config
        self.params = params
        self.renamed = renamed or {}  # JSON path -> {argument MONAI renamed: today's name} (catalog)
        self.env_names = env_names
        self.plan = SearchPlan()
        self.problems = Problems(config.file)
        self._taken: set[str] = set(config.first_level) | set(env_names) | set(RESERVED_KEYS)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        """What the binding found, in order."""
        return self.problems.found

    def problem(self, rule: str, message: str, path: str, fix: str = "", level: Level = Level.ERROR) -> None:
        self.problems.add(rule, message, path, fix, level)

    def run(self) -> SearchPlan:
        first_level_names = self._first_level()
        comps = [c for c in self.config.all_components() if c.ref is None]
        self._declare_aliases(comps)
        for comp in comps:
            later: dict[str, str] = {}  # arg -> json path of the last entry searching it
            overridden: dict[int, set[str]] = {}
            for i in range(len(comp.searches) - 1, -1, -1):
                spec = comp.searches[i]
                for arg in spec.args:
                    if arg.name in later:
                        overridden.setdefault(i, set()).add(arg.name)
                        self.problem(
                            "searched-twice",
                            f"'{arg.name}' of {comp.display} is also searched by the later "
                            f"entry {later[arg.name]}; Clara applied entries in order, so the later one "
                            "wins and this entry's value for it is not used",
                            spec.json_path,
                            "search each argument in one entry (a joint enum if they change together)",
                            Level.WARNING,
                        )
                    else:
                        later[arg.name] = spec.json_path
            for i, spec in enumerate(comp.searches):
                self._component_search(comp, _without(spec, overridden.get(i, set())))
        for comp in comps:
            self._apply(comp, first_level_names)
        return self.plan

    def params_of(self, comp: Component) -> frozenset[str] | None:
        return self.params.get(comp.json_path)

    def _follows_rename(self, comp: Component, arg: str, where: str) -> bool:
        """A searched or applied argument MONAI renamed: bound to today's name (the lowering maps it), warned."""
        new = self.renamed.get(comp.json_path, {}).get(arg)
        if new is not None:
            message = f"'{arg}' of {comp.display} is '{new}' in today's MONAI: bound to '{new}'"
            self.problem("renamed-arg", message, where, f"write '{new}'", Level.WARNING)
        return new is not None

    # -- first level ---------------------------------------------------------------------------------------------
    def _first_level(self) -> set[str]:
        names: set[str] = set(self.config.first_level)
        seen: dict[str, str] = {}
        for spec in self.config.searches:
            keys = []
            for i, arg in enumerate(spec.args):
                where = join(join(spec.json_path, "args"), i) if not spec.legacy else spec.json_path
                if arg.alias:
                    self.problem(
                        "first-level-alias",
                        f"a first-level search arg cannot carry an alias: '{arg.name}#{arg.alias}'",
                        where,
                        f"search '{arg.name}' directly",
                    )
                if arg.name in seen:
                    self.problem(
                        "searched-twice",
                        f"'{arg.name}' is searched by two first-level entries ({seen[arg.name]} and {spec.json_path})",
                        where,
                        "merge them into one entry (a joint enum if they must change together)",
                    )
                    continue
                seen[arg.name] = spec.json_path
                keys.append(arg.name)
                names.add(arg.name)
                if arg.name not in self.config.first_level:
                    default = spec.targets[0][i] if spec.type == "enum" else spec.targets[0]
                    self.plan.variables[arg.name] = Variable(arg.name, default, spec.json_path, chosen_default=True)
                    self._taken.add(arg.name)
                    self.problem(
                        "default-chosen",
                        f"searched name '{arg.name}' has no value of its own; its default "
                        f"is the first choice: {shorten(repr(default))}",
                        where,
                        level=Level.INFO,
                    )
            if len(keys) == len(spec.args):
                self.plan.dimensions.append(self._dimension(spec, tuple(keys)))
        return names

    # -- aliases and component searches ---------------------------------------------------------------------------
    def _declare_aliases(self, comps: list[Component]) -> None:
        for comp in comps:
            for spec in comp.searches:
                for i, arg in enumerate(spec.args):
                    if not arg.alias:
                        continue
                    where = join(join(spec.json_path, "args"), i)
                    if arg.alias in self.config.first_level:
                        self.problem(
                            "alias-shadows-parameter",
                            f"alias '{arg.alias}' reuses the name of the first-level parameter '{arg.alias}'",
                            where,
                            "rename the alias",
                        )
                        continue
                    first = self.plan.aliases.get(arg.alias)
                    if first is None:
                        self.plan.aliases[arg.alias] = spec
                        self._taken.add(arg.alias)
                    elif not _same_definition(first, spec, arg.alias):
                        self.problem(
                            "alias-redefined",
                            f"alias '{arg.alias}' is defined twice with different "
                            f"searches: {_describe(first)} at {first.json_path} and {_describe(spec)}",
                            where,
                            "use one definition and 'apply' the alias at the other site",
                        )

    def _component_search(self, comp: Component, spec: SearchSpec | None) -> None:
        if spec is None:
            return
        params = self.params_of(comp)
        keys: list[str] = []
        shared = False
        for i, arg in enumerate(spec.args):
            where = join(join(spec.json_path, "args"), i)
            if (
                not arg.is_disabled
                and arg.name not in comp.args
                and params is not None
                and arg.name not in params
                and not self._follows_rename(comp, arg.name, where)
            ):
                hint = suggest(arg.name, sorted(params | set(comp.args)))
                self.problem(
                    "unknown-search-arg",
                    f"searched arg '{arg.name}' is not an argument of "
                    f"{comp.display} (arguments: {sorted(params)[:12]})",
                    where,
                    hint or "search an argument the class accepts, or '@disabled'",
                )
                return
            binding = (comp.json_path, arg.name)
            if binding in self.plan.bindings:
                self.problem(
                    "searched-twice",
                    f"'{arg.name}' of {comp.display} is searched by two entries",
                    where,
                    "merge them into one joint enum entry",
                )
                return
            if arg.alias:
                definer = self.plan.aliases.get(arg.alias)
                if definer is None:  # alias rejected earlier
                    return
                shared = shared or definer is not spec
                key = arg.alias
                if definer is spec:
                    self._variable(key, comp, arg.name, spec, i)
            else:
                key = self._fresh_key(comp, arg.name)
                self._variable(key, comp, arg.name, spec, i)
            self.plan.bindings[binding] = key
            keys.append(key)
        if not shared:
            self.plan.dimensions.append(self._dimension(spec, tuple(keys), comp))

    def _variable(self, key: str, comp: Component, arg: str, spec: SearchSpec, index: int) -> None:
        if arg == Clara.DISABLED_ARG:
            current = comp.attributes.get(Clara.DISABLED, False)
            self.plan.variables[key] = Variable(key, current, spec.json_path)
            return
        if arg in comp.args:
            self.plan.variables[key] = Variable(key, comp.args[arg], spec.json_path)
            return
        default = spec.targets[0][index] if spec.type == "enum" else spec.targets[0]
        self.plan.variables[key] = Variable(key, default, spec.json_path, chosen_default=True)
        self.problem(
            "default-chosen",
            f"searched arg '{arg}' of {comp.display} is not set in 'args'; its default "
            f"is the first choice: {shorten(repr(default))}",
            spec.json_path,
            level=Level.INFO,
        )

    def _fresh_key(self, comp: Component, arg: str) -> str:
        base = arg.lstrip("@")
        candidates = [base, f"{comp.key}_{base}", f"{comp.section}_{comp.key}_{base}"]
        if arg == Clara.DISABLED_ARG:
            candidates = [f"{comp.key}_disabled", f"{comp.section}_{comp.key}_disabled"]
        for cand in candidates:
            if cand not in self._taken:
                self._taken.add(cand)
                return cand
        n = 2
        while f"{candidates[-1]}_{n}" in self._taken:
            n += 1
        self._taken.add(f"{candidates[-1]}_{n}")
        return f"{candidates[-1]}_{n}"

    def _dimension(self, spec: SearchSpec, keys: tuple[str, ...], comp: Component | None = None) -> Dimension:
        integer = False
        if spec.type == "float":
            lo, hi = spec.targets
            current = comp.args.get(spec.args[0].name) if comp else self.config.first_level.get(keys[0])
            integer = all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi, current))
            if integer:
                self.problem(
                    "float-over-int",
                    f"float search [{lo}, {hi}] on the integer argument '{spec.args[0].name}': sampled as an integer",
                    join(spec.json_path, "targets"),
                    "use an enum of the integers you want, or float bounds",
                    Level.WARNING,
                )
        return Dimension(spec.json_path, spec.type, keys, spec.targets, integer)

    # -- apply ---------------------------------------------------------------------------------------------------
    def _apply(self, comp: Component, first_level_names: set[str]) -> None:
        known = first_level_names | set(self.plan.aliases)
        params = self.params_of(comp)
        for target, raw_name in comp.apply.items():
            where = join(join(comp.json_path, Clara.APPLY), target)
            name = raw_name[1:] if raw_name.startswith(Clara.REF_PREFIX) else raw_name
            if name not in known and name in self.config.rejected_names:
                continue  # its search entry was already reported
            if name not in known:
                hint = suggest(name, sorted(known))
                self.problem(
                    "unknown-apply-name",
                    f"apply uses '{raw_name}', which is not an alias, a first-level "
                    f"parameter or a first-level search arg",
                    where,
                    hint or "define it with 'arg#alias' in a search, or search it at first level",
                )
                continue
            unknown = target != Clara.DISABLED_ARG and target not in comp.args
            if (
                unknown
                and params is not None
                and target not in params
                and not self._follows_rename(comp, target, where)
            ):
                hint = suggest(target, sorted(params | set(comp.args)))
                self.problem(
                    "unknown-apply-target",
                    f"apply target '{target}' is not an argument of {comp.display} nor '@disabled'",
                    where,
                    hint or "apply to an existing argument",
                )
                continue
            if (comp.json_path, target) in self.plan.bindings:
                self.problem(
                    "apply-conflict",
                    f"'{target}' of {comp.display} is both searched and applied",
                    where,
                    "keep one of the two",
                )
                continue
            self.plan.bindings[(comp.json_path, target)] = name


def _without(spec: SearchSpec, names: set[str]) -> SearchSpec | None:
    """The entry without the args a later entry overrides (None when nothing is left)."""
    if not names:
        return spec
    keep = [i for i, a in enumerate(spec.args) if a.name not in names]
    if not keep:
        return None
    if spec.type == "float":
        return spec
    picked = [tuple(c[i] for i in keep) for c in spec.targets]
    choices = tuple({freeze(c): c for c in picked}.values())  # values may be lists: dedupe on a hashable form
    return replace(spec, args=tuple(spec.args[i] for i in keep), targets=choices)


def _same_definition(a: SearchSpec, b: SearchSpec, alias: str) -> bool:
    ia = next(i for i, x in enumerate(a.args) if x.alias == alias)
    ib = next(i for i, x in enumerate(b.args) if x.alias == alias)
    if a.type != b.type or len(a.args) != len(b.args) or ia != ib:
        return False
    return a.targets == b.targets and [x.alias for x in a.args] == [x.alias for x in b.args]


def _describe(spec: SearchSpec) -> str:
    return f"{spec.type} {list(spec.targets)}"


def points(dims: list[Dimension], keys: set[str]) -> list[dict[str, Any]]:
    """Every combination of the discrete dimensions that set any of ``keys`` (float dimensions are skipped)."""
    combos: list[dict[str, Any]] = [{}]
    for dim in dims:
        if dim.type != "enum" or not keys & set(dim.keys):
            continue
        combos = [{**c, **dict(zip(dim.keys, choice, strict=False))} for c in combos for choice in dim.targets]
    return combos


def discrete_size(dims: list[Dimension]) -> int:
    size = 1
    for dim in dims:
        if dim.type == "enum":
            size *= len(dim.targets)
    return size


def values_of(plan: SearchPlan, first_level: Mapping[str, Any]) -> dict[str, Any]:
    """Default value of every searched/applied key."""
    return {**dict(first_level), **{k: v.default for k, v in plan.variables.items()}}
