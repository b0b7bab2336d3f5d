"""Class resolution: a Clara component's ``name``/``path`` and ``args`` -> a fully qualified target, checked.

Pure functions over the signature index (:mod:`clara_hydra.convert.signatures`), which is loaded once per
process and never imports torch, MONAI or ignite. Legacy names and arguments are rewritten by the tables of
:mod:`clara_hydra.convert.legacy`; every rewrite, ambiguity and problem comes back as a
:class:`~clara_hydra.errors.Diagnostic` with its JSON path.

Preference order for a short name found in several modules (SPEC §1 policy): first the modules of the
slot the component sits in (:data:`SLOT_MODULES`), then the global order
:data:`~clara_hydra.convert.signatures.SEARCH_MODULES`. When the candidates are really different objects
(not aliases of one class), an INFO diagnostic (rule ``ambiguous-name``) names the choice and the rest.

Example:
    >>> r = resolve_component("UNet", None, {"dimensions": 3}, json_path="train.model", slot="model", era="4.1")
    >>> r.target, r.args, r.arg_map
    ('monai.networks.nets.UNet', {'spatial_dims': 3}, {'dimensions': 'spatial_dims'})
"""

from __future__ import annotations

import importlib.util
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from clara_hydra.convert import legacy
from clara_hydra.convert.arguments import check_args, renamed_args
from clara_hydra.convert.diagnostics import Problems
from clara_hydra.convert.legacy import pick
from clara_hydra.convert.signatures import SEARCH_MODULES, Index, Signature, load_index
from clara_hydra.errors import Diagnostic, Level, suggest

ERAS = ("4.1", "4.0", "3.x")
LIBRARIES = ("monai", "torch", "ignite")  # a `path` into these is ours to know, not a user requirement

_METRICS = ("monai.handlers", "ignite.metrics")
_TRANSFORMS = ("monai.transforms",)
# Slot -> the modules searched first, in order. Why each: a metric slot holds ignite-style metric handlers
# (MONAI's wrap MONAI metrics for engine output, ignite's are the fallback); an lr_scheduler is torch's
# (monai.optimizers' ExponentialLR/LinearLR are LR-finder helpers with other args); a model is a MONAI
# network before a torch layer; a loss is MONAI's before torch's.
SLOT_MODULES: Mapping[str, tuple[str, ...]] = {
    "loss": ("monai.losses", "torch.nn"),
    "optimizer": ("monai.optimizers", "torch.optim"),
    "lr_scheduler": ("torch.optim.lr_scheduler", "monai.optimizers"),
    "model": ("monai.networks.nets", "torch.nn"),
    "pre_transforms": _TRANSFORMS,
    "post_transforms": _TRANSFORMS,
    "dataset": ("monai.data",),
    "dataloader": ("monai.data",),
    "inferer": ("monai.inferers",),
    "handlers": ("monai.handlers",),
    "key_metric": _METRICS,
    "additional_metrics": _METRICS,
    "metrics": _METRICS,
    "trainer": ("monai.engines",),
    "evaluator": ("monai.engines",),
}


@dataclass(frozen=True)
class Resolution:
    """What a component resolved to.

    Attributes:
        target: fully qualified class or function; None when it cannot be resolved.
        args: args after legacy rewrites (renamed keys, folded values); other values untouched.
        arg_map: original arg name -> new arg name, for every original arg kept (identity included).
        value_rewritten: original arg names whose value was transformed; a search on them cannot be carried over.
        params: keyword parameter names of the target; None when unknown or when it takes ``**kwargs``.
        checked: the args were checked against a real signature.
        diagnostics: INFO per rewrite or ambiguity, WARNING for unchecked paths and legacy losses,
            ERROR for an unknown class or argument.
        requirement: module a user ``path`` needs at run time (for the report), else None.
        missing_required: parameters without default that the args do not give (runtime wiring may supply them).
        renamed_args: arguments of the target that MONAI renamed (or a legacy rule moved) -> today's names, given or
            not (a search or an
            ``apply`` naming the old one follows the rename; :attr:`arg_map` maps them too).
        refused: original args a legacy fold could not carry over; its ``unfoldable-legacy-value`` error is the one
            report of them (a search or apply on them says nothing more).
    """

    target: str | None
    args: dict[str, Any]
    arg_map: dict[str, str]
    value_rewritten: frozenset[str]
    params: frozenset[str] | None
    checked: bool
    diagnostics: tuple[Diagnostic, ...]
    requirement: str | None = None
    missing_required: frozenset[str] = field(default_factory=frozenset)
    renamed_args: Mapping[str, str] = field(default_factory=dict)
    refused: frozenset[str] = frozenset()


def preference(slot: str | None) -> tuple[str, ...]:
    """The module order used to resolve a short name in ``slot``: the slot's modules, then the global order."""
    first = SLOT_MODULES.get(slot or "", ())
    return first + tuple(m for m in SEARCH_MODULES if m not in first)


@cache
def known_short_names() -> frozenset[str]:
    """Every short name a component may use: the indexed ones plus legacy MONAI names we rewrite."""
    return frozenset(load_index().names) | frozenset(legacy.MONAI_BY_NAME)


def accepts_arg(target: str, arg: str) -> bool | None:
    """Whether ``target`` takes a keyword argument ``arg``; None when its signature is unknown.

    ``arg`` is a name *after* rewrites: map an original Clara arg through :attr:`Resolution.arg_map` first.
    """
    sig = load_index().lookup(target)
    if sig is None or sig.params is None:
        return None
    return sig.accepts_var_kwargs or arg in sig.names


def _module_of(target: str) -> str:
    return target.rsplit(".", 1)[0]


def _choose(name: str, slot: str | None, json_path: str) -> tuple[str | None, list[Diagnostic]]:
    """Pick the target of a short name by the slot-aware preference order."""
    index = load_index()
    candidates = index.names.get(name, ())
    if not candidates:
        return None, []
    order = {m: i for i, m in enumerate(preference(slot))}
    ranked = sorted(candidates, key=lambda t: order.get(_module_of(t), len(order)))
    chosen = ranked[0]
    origin = index.objects[chosen].origin
    others = [t for t in ranked[1:] if index.objects[t].origin != origin]  # aliases of one class are no ambiguity
    if not others:
        return chosen, []
    where = f"slot '{slot}'" if slot else "no slot"
    diag = Problems().add(
        rule="ambiguous-name",
        message=f"'{name}' exists as {', '.join([chosen, *others])}; chose {chosen} (preference order for {where})",
        json_path=json_path,
        fix=f'give `path` instead of `name` to pick another, e.g. "path": "{others[0]}"',
        level=Level.INFO,
    )
    return chosen, [diag]


def _unknown(name: str, json_path: str, era: str, args: Mapping[str, Any] | None = None) -> Diagnostic:
    hint = suggest(name, known_short_names())
    # A 3.x TensorFlow component we have no table entry for is reported, not an error: one with 3.x arguments
    # (`fields`, ...) in any file, or any unknown name in a 3.x file.
    if era == "3.x" or any(a in pick.TF_ARGS for a in args or ()):
        return Problems().add(
            rule="no-monai-counterpart",
            message=f"3.x component '{name}' has no known MONAI counterpart" + (f"; {hint}" if hint else ""),
            json_path=json_path,
            fix="replace it with a MONAI component by hand",
            level=Level.WARNING,
        )
    return Problems().add(
        rule="unknown-class",
        message=f"unknown class '{name}': not in {_searched()}" + (f"; {hint}" if hint else ""),
        json_path=json_path,
        fix="correct the name, or give a `path` to your own class",
    )


def _searched() -> str:
    """The searched modules, short: ``monai.transforms, ..., monai.apps (deepgrow, ...)``."""
    core = [m for m in SEARCH_MODULES if not m.startswith("monai.apps.")]
    apps = sorted({m.split(".")[2] for m in SEARCH_MODULES if m.startswith("monai.apps.")})
    return ", ".join(core) + (f", monai.apps ({', '.join(apps)})" if apps else "")


def _strip_comments(args: Mapping[str, Any]) -> dict[str, Any]:
    # Keys starting with `_` or `/` are comments in real Clara configs (SPEC §1), never constructor args.
    return {k: v for k, v in args.items() if not str(k).startswith(("_", "/"))}


def _unresolved(args: dict[str, Any], diags: list[Diagnostic], requirement: str | None = None) -> Resolution:
    return Resolution(None, args, {a: a for a in args}, frozenset(), None, False, tuple(diags), requirement)


def _resolve_path(path: str, args: dict[str, Any], json_path: str, era: str, bound: Collection[str]) -> Resolution:
    clara = legacy.clara_path_rule(path)
    if clara is not None and clara.new is not None and load_index().lookup(path) is None:
        rewrite = legacy.apply_rule(clara, args, json_path, bound)
        sig = load_index().lookup(clara.new)
        if sig is not None:
            note = Problems().add(
                rule="rewrite",
                message=f"{path} -> {clara.new}: {clara.why}",
                json_path=f"{json_path}.path",
                level=Level.INFO,
            )
            diags = [note, *rewrite.diagnostics[1:]]  # the path replaces apply_rule's own summary
            return replace(
                _finish(
                    clara.new,
                    sig,
                    rewrite.args,
                    rewrite.arg_map,
                    rewrite.value_rewritten,
                    diags,
                    json_path,
                    False,
                    path,
                    era,
                ),
                refused=rewrite.refused,
            )
    sig = load_index().lookup(path)
    if sig is not None:
        return _finish(path, sig, args, {a: a for a in args}, frozenset(), [], json_path, False, path, era)
    module = path.rpartition(".")[0]
    top = path.split(".", 1)[0]
    if not module:
        diag = Problems().add(
            rule="invalid-path",
            message=f"path '{path}' is not a dotted import path (module.Class)",
            json_path=f"{json_path}.path",
            fix="write the full import path, e.g. my_pkg.losses.MyLoss",
        )
        return _unresolved(args, [diag])
    if top in LIBRARIES:
        why, requirement = "it is outside the indexed modules", None
    else:
        requirement = module
        try:  # find_spec of a top-level name locates the package without importing (running) user code
            found = importlib.util.find_spec(top) is not None
        except (ImportError, ValueError):
            found = False
        why = "user code is not imported at conversion" if found else f"module '{top}' is not importable here"
    diag = Problems().add(
        rule="unchecked-path",
        message=f"'{path}' is emitted as given; its arguments were not checked ({why})",
        json_path=f"{json_path}.path",
        fix=f"make sure '{module}' is importable where the run happens",
        level=Level.WARNING,
    )
    return Resolution(path, args, {a: a for a in args}, frozenset(), None, False, (diag,), requirement)


def _finish(
    target: str,
    sig: Signature,
    args: dict[str, Any],
    arg_map: dict[str, str],
    value_rewritten: frozenset[str],
    diags: list[Diagnostic],
    json_path: str,
    drop_unknown: bool,
    old: str,
    era: str = "4.1",
) -> Resolution:
    if sig.params is None:  # no readable signature: emit unchecked
        return Resolution(target, args, arg_map, value_rewritten, None, False, tuple(diags))
    args, arg_map, more = check_args(sig, args, arg_map, json_path, drop_unknown, old)
    if not drop_unknown:  # a 3.x rule sets what it needs; Clara-era MONAI defaults concern MONAI components
        more += pick.default_notes(sig.target, args, era, json_path)
    params = None if sig.accepts_var_kwargs else sig.names
    missing = sig.required - set(args)
    renames = renamed_args(sig)
    # A legacy rewrite that moved a searched/applied value (n_classes -> to_onehot): a search or apply naming the old
    # argument follows it even when the old argument is not written in `args`.
    moved = {was: now for was, now in arg_map.items() if was not in value_rewritten and was not in sig.names}
    renames.update({was: now for was, now in moved.items() if now in sig.names})
    # Old names not given map too (a search or apply may name them); the given ones come last and win.
    arg_map = {**{old: new for old, new in renames.items() if old not in arg_map}, **arg_map}
    return Resolution(target, args, arg_map, value_rewritten, params, True, tuple(diags + more), None, missing, renames)


def resolve_component(
    name: str | None,
    path: str | None,
    args: Mapping[str, Any],
    *,
    json_path: str,
    slot: str | None,
    era: str,
    bound: Collection[str] = (),
) -> Resolution:
    """Resolve one Clara component and check its arguments.

    Args:
        name: the short class name, without a 3.x ``#alias`` suffix; only an identifier when ``path`` is given.
        path: a dotted import path; when given it decides the class.
        args: the component's ``args`` (``{}`` when absent); values are never interpreted.
        json_path: where the component is (``train.model``); argument diagnostics add ``.args.<arg>``.
        slot: the slot it sits in (``loss``, ``pre_transforms``, ``key_metric``, ...) or None.
        era: ``"4.1"``, ``"4.0"`` or ``"3.x"``, the generation the file is guessed to be. Names are read by what
            they are (:mod:`clara_hydra.convert.legacy.pick`); the era only decides a name both Clara 3.x and MONAI
            have when the args say nothing, which MONAI release's defaults Clara ran with, and whether an unknown
            name is an error or a 3.x component without counterpart.
        bound: the args that are searched or ``apply``-ed; a legacy fold carries such a value over only by moving
            it whole (:func:`~clara_hydra.convert.legacy.apply_rule`), else reports it.

    Returns:
        A :class:`Resolution`; problems are diagnostics, never exceptions.

    Raises:
        ValueError: ``era`` is not one of :data:`ERAS` (a caller bug).
    """
    if era not in ERAS:
        raise ValueError(f"era must be one of {ERAS}, got {era!r}")
    clean = _strip_comments(args)
    if path:
        return _resolve_path(path, clean, json_path, era, bound)
    if name and legacy.clara_path_rule(name) is not None:  # Clara's dotted class in `name` (not `path`)
        return _resolve_path(name, clean, json_path, era, bound)
    if not name:
        diag = Problems().add(
            rule="missing-name",
            message="component has neither `name` nor `path`",
            json_path=json_path,
            fix='add "name": "<Class>" or "path": "<module.Class>"',
        )
        return _unresolved(clean, [diag])
    index = load_index()
    notes: list[Diagnostic] = []
    rule: legacy.Rule | None = None
    if pick.is_tf_component(name, clean, era, index):  # by what the name is (and its args), not the file's era
        notes = pick.tf_reading_note(name, era, json_path)
        if name in legacy.TF_NO_COUNTERPART:
            diag = Problems().add(
                rule="no-monai-counterpart",
                message=f"3.x component '{name}' is not converted: {legacy.TF_NO_COUNTERPART[name]}",
                json_path=json_path,
                fix="replace it with a MONAI component by hand",
                level=Level.WARNING,
            )
            return _unresolved(clean, [*notes, diag])
        rule = legacy.TF_BY_NAME[name]
    else:
        found = pick.monai_rule(name, slot, index)
        if isinstance(found, legacy.RemovedName):
            return _unresolved(clean, [pick.removed_diagnostic(found, json_path)])
        rule = found
    if rule is not None and rule.new is not None:
        rewrite = legacy.apply_rule(rule, clean, json_path, bound)
        target, slip = _dictionary(rule.new, name, rewrite.args, json_path, index)
        sig = index.lookup(target)
        if sig is None:  # a table entry the installed MONAI lacks: say so rather than crash
            diag = _unknown(name, json_path, era)
            return _unresolved(clean, [*notes, *rewrite.diagnostics, diag])
        return replace(
            _finish(
                target,
                sig,
                rewrite.args,
                rewrite.arg_map,
                rewrite.value_rewritten,
                [*notes, *rewrite.diagnostics, *slip],
                json_path,
                rule.drop_unknown,
                rule.old,
                era,
            ),
            refused=rewrite.refused,
        )
    chosen, diags = _choose(name, slot, json_path)
    if chosen is None:
        return _unresolved(clean, [_unknown(name, json_path, era, clean)])
    target, slip = _dictionary(chosen, name, clean, json_path, index)
    return _finish(
        target,
        index.objects[target],
        clean,
        {a: a for a in clean},
        frozenset(),
        diags + slip,
        json_path,
        False,
        name,
        era,
    )


def _dictionary(
    target: str, name: str, args: Mapping[str, Any], json_path: str, index: Index
) -> tuple[str, list[Diagnostic]]:
    """An array transform given ``keys`` becomes its dictionary form, with a warning (an evident slip)."""
    dict_target = pick.dictionary_form(target, args, index)
    if dict_target is None:
        return target, []
    return dict_target, [pick.dictionary_diagnostic(name, dict_target, json_path)]
