"""Applying a legacy :class:`~clara_hydra.convert.legacy.rules.Rule` to one component's args, and reporting it.

A fold may move an opaque value (a placeholder, a component, a typed value, or :class:`Searched`) whole into one new
argument; one that would compute with it, or place it inside a value it builds, is a located error
(``unfoldable-legacy-value``). Nothing is dropped silently: drops are warnings, refusals are errors.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from clara_hydra.convert.diagnostics import Problems
from clara_hydra.convert.legacy.rules import Rule, Searched, Unfoldable, is_concrete, quote_value, short
from clara_hydra.errors import Diagnostic, Level, shorten


@dataclass(frozen=True)
class Rewrite:
    """A rule applied to one component's args."""

    args: dict[str, Any]
    arg_map: dict[str, str]  # original arg -> new arg, for every original arg kept
    value_rewritten: frozenset[str]  # original args whose value was transformed (or consumed by a fold)
    diagnostics: tuple[Diagnostic, ...]
    # original args whose fold refused them (an ``unfoldable-legacy-value`` error says so: nothing else need)
    refused: frozenset[str] = frozenset()


def _show(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={quote_value(v)}" for k, v in values.items())


def _holds(value: Any, item: Any) -> bool:
    """``item`` (the very object) sits somewhere inside ``value``."""
    if value is item:
        return True
    if isinstance(value, list | tuple):
        return any(_holds(v, item) for v in value)
    if isinstance(value, dict):
        return any(_holds(v, item) for v in value.values())
    return False


def _moves(present: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, str]:
    """Original arg -> new arg, for each opaque value a fold moved whole into a new argument.

    Raises:
        Unfoldable: an opaque value sits inside a value the fold built (its kind -- a number or a list -- would
            decide what it means there, and it is unknown until the config is composed).
    """
    moved: dict[str, str] = {}
    for arg, value in present.items():
        if is_concrete(value):
            continue
        for dest, built in new.items():
            if built is value:
                moved[arg] = dest
            elif _holds(built, value):
                raise Unfoldable(
                    f"'{arg}' is {quote_value(value)}, "
                    f"which would have to sit inside the new '{dest}', and its kind (a number or a list) is "
                    "unknown until the config is composed"
                )
    return moved


def apply_rule(rule: Rule, args: Mapping[str, Any], json_path: str, bound: Collection[str] = ()) -> Rewrite:
    """Rewrite ``args`` by ``rule``: folds first, then drops and renames, then added defaults.

    ``bound`` names the args that are searched or ``apply``-ed (given in ``args`` or not): a fold sees them as
    :class:`Searched`. An opaque value (a placeholder or a bound arg) a fold moves whole into a new argument is
    mapped there (:attr:`Rewrite.arg_map`), so the new argument reads the same variable or searched key.

    Reports one INFO (rule ``rewrite``) summarising the changes, a WARNING per dropped argument
    (``dropped-argument``), an ERROR per value that cannot be carried over (``unfoldable-legacy-value``: a
    fold would have to compute with a placeholder or searched value, or the literal is of the wrong kind),
    and the rule's caveat.

    Example:
        >>> r = apply_rule(MONAI_BY_NAME["AddChanneld"], {"keys": "image"}, "train.pre_transforms[1]")
        >>> r.args
        {'keys': 'image', 'channel_dim': 'no_channel'}
    """
    out: dict[str, Any] = {}
    arg_map: dict[str, str] = {}
    rewritten: set[str] = set()
    refused: set[str] = set()
    consumed: set[str] = set()
    changes: list[str] = []
    diags: list[Diagnostic] = []
    target = rule.new or "?"
    for fold in rule.folds:
        present = {a: Searched(a) if a in bound else args[a] for a in fold.reads if a in args or a in bound}
        if not present:
            continue
        try:
            new = fold.func(present)
            moved = _moves(present, new)
        # Unfoldable, or a literal of the wrong kind ("abc" for a number, 1e400 for an int)
        except (ValueError, TypeError, ArithmeticError) as exc:
            consumed.update(present)
            rewritten.update(present)
            refused.update(present)
            diags.append(
                Problems().add(
                    rule="unfoldable-legacy-value",
                    message=f"{rule.old}: {_show(present)} cannot be carried over to {target} "
                    f"({shorten(str(exc), 300)})",
                    json_path=f"{json_path}.args.{next(iter(present))}",
                    fix=f"write the literal value, or the arguments of {target} by hand ({fold.why})",
                )
            )
            continue
        if new == present:  # already today's spelling (`to_onehot: 2`): nothing to rewrite
            continue
        shown = _show(new) or "removed"
        consumed.update(present)
        # A searched value the fold does not use (n_classes while one-hot is off) is no rewritten value: the
        # lowering reports that its search has no effect here.
        rewritten.update(a for a in present if a not in moved and not isinstance(present[a], Searched))
        new = dict(new)
        for dest, value in list(new.items()):
            if isinstance(value, Searched):  # the binding writes this argument; keep the written default, if any
                if value.arg in args:
                    new[dest] = args[value.arg]
                else:
                    del new[dest]
        out.update(new)
        arg_map.update({a: rule.renames.get(a, a) for a in present if rule.renames.get(a, a) in new})
        arg_map.update(moved)
        changes.append(f"{_show(present)} -> {shown} ({fold.why})")
    for arg, value in args.items():
        if arg in consumed:
            continue
        if arg in rule.drop:
            diags.append(_dropped(rule, arg, value, rule.drop[arg], json_path))
            continue
        dest = rule.renames.get(arg, arg)
        if dest in out:  # both spellings given (`fields` and `keys`): keep the one already placed
            diags.append(_dropped(rule, arg, value, f"'{dest}' is already set", json_path))
            continue
        out[dest] = value
        arg_map[arg] = dest
        if dest != arg:
            changes.append(f"'{arg}' -> '{dest}'")
    for arg, value in rule.add.items():
        if arg not in out:
            out[arg] = value
            changes.append(f"added {arg}={quote_value(value)}")
    # Our own implementation of a Clara/MONAI class keeps its short name but changes its home: report it too.
    renamed_class = rule.new is not None and (short(rule.new) != rule.old or rule.new.startswith("clara_hydra."))
    if renamed_class or changes:
        head = f"{rule.old} -> {rule.new}" if renamed_class else f"{rule.old} ({rule.new})"
        detail = "; ".join(changes)
        diags.insert(
            0,
            Problems().add(
                rule="rewrite",
                message=f"{head}: {rule.why}" + (f"; {detail}" if detail else ""),
                json_path=json_path,
                level=Level.INFO,
            ),
        )
        if rule.caveat:
            diags.append(
                Problems().add(rule="legacy-caveat", message=rule.caveat, json_path=json_path, level=Level.WARNING)
            )
    return Rewrite(out, arg_map, frozenset(rewritten), tuple(diags), frozenset(refused))


def _dropped(rule: Rule, arg: str, value: Any, why: str, json_path: str) -> Diagnostic:
    return Problems().add(
        rule="dropped-argument",
        message=f"{rule.old} argument '{arg}' ({shorten(repr(value))}) has no counterpart in {rule.new}: "
        f"dropped ({why})",
        json_path=f"{json_path}.args.{arg}",
        fix=f"check that {rule.new} without '{arg}' does what you need",
        level=Level.WARNING,
    )
