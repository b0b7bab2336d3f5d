"""The resolve pass: every component's class name and arguments, resolved once and checked against the real signature.

Later passes read the result by JSON path (the binder for the parameters a search may name, the lowering for the
target and the rewritten arguments); none of them resolves anything itself.
"""

from __future__ import annotations

from dataclasses import replace

from clara_hydra.convert.catalog import Resolution, resolve_component
from clara_hydra.convert.model import ClaraConfig, Component
from clara_hydra.convert.stages import Parsed, Resolved
from clara_hydra.errors import Diagnostic, Level, shorten
from clara_hydra.keywords import Clara

_MESSAGE_LIMIT = 1000


def resolve_one(comp: Component, config: ClaraConfig) -> Resolution | None:
    """The resolution of one component; None for a ``ref`` placeholder or a nameless model loader."""
    if comp.ref is not None or (comp.name is None and comp.class_path is None):
        return None
    # Searched and applied args: a legacy rewrite carries their value over only by moving it whole.
    bound = {a.name for spec in comp.searches for a in spec.args if not a.is_disabled}
    bound |= {target for target in comp.apply if target != Clara.DISABLED_ARG}
    res = resolve_component(
        comp.name,
        comp.class_path,
        comp.args,
        json_path=comp.json_path,
        slot=comp.slot,
        era=config.era.value,
        bound=frozenset(bound),
    )
    return replace(res, diagnostics=tuple(_with_file(res.diagnostics, config.file)))


def resolve(parsed: Parsed) -> Resolved:
    """Resolve every component of the slots and every nested one."""
    config = parsed.config
    resolutions: dict[str, Resolution] = {}
    diagnostics: list[Diagnostic] = []
    requirements: set[str] = set()
    unconverted: list[str] = []
    for comp in config.all_components():
        res = resolve_one(comp, config)
        if res is None:
            continue
        resolutions[comp.json_path] = res
        diagnostics.extend(res.diagnostics)
        if res.requirement:
            requirements.add(res.requirement)
        if res.target is None and not any(d.level is Level.ERROR for d in res.diagnostics):
            unconverted.append(f"{comp.json_path}: {comp.display}")
    return Resolved(
        parsed, resolutions, frozenset(requirements), tuple(unconverted), (*parsed.diagnostics, *diagnostics)
    )


def _with_file(diags: tuple[Diagnostic, ...], file: str) -> list[Diagnostic]:
    # The catalog's messages quote names and arguments; a safety net keeps any of them short.
    return [replace(d, file=d.file or file, message=shorten(d.message, _MESSAGE_LIMIT)) for d in diags]
