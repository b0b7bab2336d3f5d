"""Arguments of a resolved component checked against its real signature, with MONAI's renames followed.

Used by the catalog once a component's target is known: each Clara argument is kept, renamed (MONAI's
``deprecated_arg`` for this class first, then the renames MONAI made across many classes), dropped with a warning
(an argument MONAI removed, or a 3.x argument without counterpart), or reported with a did-you-mean.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from clara_hydra.convert import legacy
from clara_hydra.convert.diagnostics import Problems
from clara_hydra.convert.signatures import Signature
from clara_hydra.errors import Diagnostic, Level, shorten


def check_args(
    sig: Signature, args: Mapping[str, Any], arg_map: dict[str, str], json_path: str, drop_unknown: bool, old: str
) -> tuple[dict[str, Any], dict[str, str], list[Diagnostic]]:
    """Check (and rename) ``args`` against ``sig``.

    Args:
        sig: the target's signature.
        args: the arguments after any legacy rule.
        arg_map: original Clara argument -> argument in ``args``.
        json_path: the component's path; diagnostics add ``.args.<arg>``.
        drop_unknown: drop an argument the target does not take, with a warning (3.x components).
        old: the name the config used, for messages.

    Returns:
        The new arguments, ``arg_map`` composed with the renames and drops, and the diagnostics.
    """
    names = sig.names
    out: dict[str, Any] = {}
    renamed: dict[str, str] = {}
    problems = Problems()
    for arg, value in args.items():
        where = f"{json_path}.args.{arg}"
        if arg in names:
            out[arg] = value
            continue
        new, why, level = _renamed_arg(sig.target, arg)
        removed = legacy.load_history().removed_arg(sig.target, arg)
        if new and new in names and new not in args:
            out[new] = value
            renamed[arg] = new
            problems.add(
                rule="rewrite",
                message=f"'{arg}' -> '{new}' for {sig.target}: {why}",
                json_path=where,
                fix=""
                if level is Level.INFO
                else f"check that '{new}: {shorten(repr(value))}' means what '{arg}' meant",
                level=level,
            )
        elif removed is not None and not sig.accepts_var_kwargs:
            renamed[arg] = ""
            gone = f"in MONAI {removed.removed}" if removed.removed else "after MONAI " + removed.last
            problems.add(
                rule="removed-argument",
                message=f"argument '{arg}' ({shorten(repr(value))}) of {sig.target} was removed {gone} "
                f"(last in {removed.last}): dropped"
                + (f"; it was documented as: {shorten(removed.doc, 300)}" if removed.doc else ""),
                json_path=where,
                fix=f"check that {sig.target} without '{arg}' does what you need",
                level=Level.WARNING,
            )
        elif sig.accepts_var_kwargs:
            out[arg] = value  # the target takes **kwargs: nothing to check
        elif drop_unknown:
            renamed[arg] = ""
            problems.add(
                rule="dropped-argument",
                message=f"{old} argument '{arg}' ({shorten(repr(value))}) has no counterpart in {sig.target}: dropped",
                json_path=where,
                fix=f"check that {sig.target} without '{arg}' does what you need",
                level=Level.WARNING,
            )
        else:
            out[arg] = value
            close = _close_args(arg, names)
            hint = "; did you mean " + " or ".join(repr(c) for c in close) + "?" if close else ""
            if close:
                fix = f"rename '{arg}' to '{close[0]}'"
            elif names:
                fix = f"remove it; {sig.target} takes: {', '.join(sorted(names))}"
            else:
                fix = f"remove it; {sig.target} takes no keyword arguments"
            problems.add(
                rule="unknown-argument",
                message=f"unknown argument '{arg}' for {sig.target}{hint}",
                json_path=where,
                fix=fix,
            )
    composed = {orig: renamed.get(mid, mid) for orig, mid in arg_map.items() if renamed.get(mid, mid)}
    return out, composed, problems.found


def _renamed_arg(target: str, arg: str) -> tuple[str, str, Level]:
    """The current name of a renamed argument of ``target``: MONAI's own ``deprecated_arg`` first, then the
    renames MONAI made across many classes at once (:data:`legacy.ARG_RENAMES`)."""
    found = legacy.load_history().arg_rename(target, arg)
    if found is not None:
        since = f"MONAI {found.since} deprecated '{arg}'" if found.since else f"MONAI deprecated '{arg}'"
        if found.verbatim:
            return found.new, f"{since} for '{found.new}' (same value)", Level.INFO
        # Only the deprecation message names the new argument: its values may mean something else.
        return found.new, f"{since}; its message says to use '{found.new}'", Level.WARNING
    new, why = legacy.ARG_RENAMES.get(arg, ("", ""))
    return new, why, Level.INFO


def renamed_args(sig: Signature) -> dict[str, str]:
    """Every old argument name of ``sig``'s target that MONAI renamed to one of its current parameters."""
    names = sig.names
    out = {old: r.new for old, r in legacy.load_history().args.get(sig.target, {}).items() if old not in names}
    for old, (new, _why) in legacy.ARG_RENAMES.items():
        if new in names and old not in names:
            out.setdefault(old, new)
    return {old: new for old, new in out.items() if new in names}


def _close_args(arg: str, names: frozenset[str]) -> list[str]:
    """Close spellings of ``arg``; else names one is a prefix of the other (``probability``/``prob``)."""
    # No name 7/3 times shorter can reach difflib's 0.6 (and indexing a 20 MB argument name takes seconds).
    hopeless = len(arg) * 3 > 7 * max((len(n) for n in names), default=0)
    close = [] if hopeless else difflib.get_close_matches(arg, sorted(names), n=3, cutoff=0.6)
    return close or sorted(n for n in names if min(len(n), len(arg)) >= 3 and (n.startswith(arg) or arg.startswith(n)))
