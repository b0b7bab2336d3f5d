"""Clara's references to slots (``@model``, a 4.0 ``save_dict`` name) as Hydra keys (SPEC §3).

Shared by the wiring pass and the lowering pass, so both find a slot the same way and word a dangling reference
the same way.
"""

from __future__ import annotations

from clara_hydra.convert.diagnostics import Problems
from clara_hydra.convert.model import ClaraConfig
from clara_hydra.convert.nodes import Reference
from clara_hydra.errors import suggest
from clara_hydra.keywords import Emitted


def slot_key(config: ClaraConfig, slot_name: str, section: str | None) -> str | None:
    """Hydra key of the slot ``@slot_name`` names: current section first, then the other one (SPEC §3)."""
    for sec in [section, *[s for s in config.sections if s != section]]:
        if config.slot(sec, slot_name) is not None:
            return f"{sec}.{slot_name}" if sec else slot_name
    return None


def slot_reference(
    config: ClaraConfig, slot_name: str, section: str | None, path: str, problems: Problems
) -> Reference:
    """The reference node of ``@slot_name``; one that names no slot is a ``dangling-ref`` error (with a
    did-you-mean) in ``problems``, and the node is then ``{_ref_: ???}``."""
    key = slot_key(config, slot_name, section)
    if key is not None:
        return Reference(key)
    slots = sorted({s.name for s in config.slots})
    hint = suggest(slot_name, slots)
    message = f"reference '@{slot_name}' names no slot in {list(config.sections)}"
    problems.add("dangling-ref", message, path, hint or f"refer to one of {slots}")
    return Reference(Emitted.UNKNOWN)
