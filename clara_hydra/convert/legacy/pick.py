"""Which legacy reading applies to one component, decided by what its name (and its arguments) is.

A Clara file mixes generations: early 4.0 configs use 3.x names next to MONAI ones, and a 4.1 config may use
a MONAI name removed since. So nothing here depends on the generation the whole file is guessed to be, except
where a name means two things (``Dice`` is Clara 3.x's loss and MONAI's alias of ``DiceLoss``): then the
component's own arguments decide, and only when they say nothing does the file's generation.

The catalog (:mod:`clara_hydra.convert.catalog`) calls these in order: :func:`is_tf_component`,
:func:`monai_rule`, then :func:`dictionary_form` on whatever target it chose, and :func:`default_notes`
once the arguments are final.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from clara_hydra.convert.diagnostics import Problems
from clara_hydra.convert.legacy.history import CLARA_MONAI, RemovedName, load_history
from clara_hydra.convert.legacy.rules import MONAI_BY_NAME, Rule, short
from clara_hydra.convert.legacy.tf import TF_BY_NAME, TF_NO_COUNTERPART
from clara_hydra.convert.signatures import Index
from clara_hydra.errors import Diagnostic, Level

# Argument names only Clara 3.x components used (TensorFlow ``ai4med``): one of them on a component whose
# MONAI class does not take it says the component is the 3.x one.
TF_ARGS = frozenset(
    {
        "fields",
        "field",
        "image_field",
        "label_field",
        "probability",
        "skip_background",
        "is_onehot_targets",
        "data_format",
        "nf_enc",
        "nf_dec",
        "use_group_norm",
        "use_group_normG",
        "final_activation",
        "use_vae",
        "poly_power",
        "target_resolution",
        "is_label",
    }
)


def is_tf_name(name: str) -> bool:
    """``name`` is in the Clara 3.x tables (mapped or without counterpart)."""
    return name in TF_BY_NAME or name in TF_NO_COUNTERPART


def is_monai_name(name: str, index: Index) -> bool:
    """``name`` is a current or a former MONAI/torch name."""
    return name in index.names or name in MONAI_BY_NAME or load_history().removed_name(name) is not None


def is_tf_component(name: str, args: Mapping[str, Any], era: str, index: Index) -> bool:
    """Whether the component is Clara 3.x's own class of that name.

    A name only Clara 3.x had is always read as 3.x's. A name MONAI also has is read as 3.x's when the
    component passes a 3.x argument the MONAI class does not take, or, when its arguments say nothing,
    when the file is a 3.x one.
    """
    if not is_tf_name(name):
        return False
    if not is_monai_name(name, index):
        return True
    targets = index.names.get(name, ())
    monai_params: set[str] = set()
    for target in targets:
        monai_params |= index.objects[target].names
    tf_evidence = any(a in TF_ARGS and a not in monai_params for a in args)
    monai_evidence = any(a in monai_params and a not in TF_ARGS for a in args)
    if tf_evidence:
        return True
    return era == "3.x" and not monai_evidence


def tf_reading_note(name: str, era: str, json_path: str) -> list[Diagnostic]:
    """An INFO when a 3.x name is read as 3.x's in a file guessed to be of another generation."""
    if era == "3.x":
        return []
    return [
        Problems().add(
            rule="clara-3x-component",
            message=f"'{name}' is read as Clara 3.x's component (by its name and arguments) in a Clara {era} file",
            json_path=json_path,
            level=Level.INFO,
        )
    ]


def _canonical(name: str) -> str:
    """``AddChannelD``/``AddChannelDict`` -> ``AddChanneld``: MONAI's aliases of its dictionary transforms."""
    for suffix in ("Dict", "D"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)] + "d"
    return name


def monai_rule(name: str, slot: str | None, index: Index) -> Rule | RemovedName | None:
    """The rewrite of a Clara-era MONAI name.

    Returns the curated :class:`Rule` when one applies (a removed name, a slot-bound rule, a fold on the
    class itself), a generated rule for a name MONAI removed and replaced by a class of the same package,
    the :class:`RemovedName` when MONAI removed it without such a replacement (the caller reports it), or
    None when the name is current.
    """
    current = name in index.names
    for key in dict.fromkeys((name, _canonical(name))):
        candidate = MONAI_BY_NAME.get(key)
        if candidate is None:
            continue
        slot_ok = candidate.slots is None or slot in candidate.slots
        same = candidate.new is not None and short(candidate.new) == key
        if slot_ok and (not current or candidate.slots is not None or same):
            return candidate if key == name else _renamed(candidate, name)
    if current:
        return None
    removed = load_history().removed_name(name)
    if removed is None:
        return None
    target = removed.replacement
    if target is None or index.lookup(target) is None or not target.startswith(removed.module + "."):
        return removed
    why = f"removed in MONAI {removed.removed} (last in {removed.last}); {removed.evidence}"
    caveat = "" if removed.same_class else f"{target} is another class than {name}: check that its arguments agree"
    return Rule(name, target, why, caveat=caveat)


def _renamed(rule: Rule, old: str) -> Rule:
    return dataclasses.replace(rule, old=old)


def removed_diagnostic(removed: RemovedName, json_path: str) -> Diagnostic:
    """The error for a name MONAI removed without a replacement of the same kind."""
    when = f"removed from {removed.module} in MONAI {removed.removed} (last in {removed.last})"
    if removed.replacement:
        fix = f"replace it by hand; MONAI's sources point at {removed.replacement} ({removed.evidence})"
    else:
        fix = "replace it with a current MONAI component by hand"
    return Problems().add(rule="removed-class", message=f"'{removed.name}' was {when}", json_path=json_path, fix=fix)


def dictionary_form(target: str, args: Mapping[str, Any], index: Index) -> str | None:
    """The dictionary transform to use when an array transform is given ``keys`` (an evident slip), else None."""
    if not target.startswith("monai.transforms.") or "keys" not in args:
        return None
    sig = index.lookup(target)
    if sig is None or sig.params is None or sig.accepts_var_kwargs or "keys" in sig.names:
        return None
    candidate = target + "d"
    dict_sig = index.lookup(candidate)
    return candidate if dict_sig is not None and "keys" in dict_sig.names else None


def dictionary_diagnostic(name: str, target: str, json_path: str) -> Diagnostic:
    return Problems().add(
        rule="array-transform-given-keys",
        message=f"'{name}' is an array transform and takes no 'keys'; converted as its dictionary form {target}",
        json_path=json_path,
        fix=f'write "name": "{short(target)}"',
        level=Level.WARNING,
    )


def default_notes(target: str, given: Mapping[str, Any], era: str, json_path: str) -> list[Diagnostic]:
    """INFO per default of ``target`` that MONAI changed after the release Clara ``era`` shipped, when not given."""
    baseline = CLARA_MONAI.get(era)
    if baseline is None:
        return []
    notes = []
    for change in load_history().changed_defaults(target, baseline):
        if change.arg in given:
            continue
        notes.append(
            Problems().add(
                rule="changed-default",
                message=(
                    f"MONAI {change.version} changed the default of '{change.arg}' of {target} from "
                    f"{change.old} to {change.new}; Clara {era} (MONAI {baseline}) ran with {change.old}"
                ),
                json_path=f"{json_path}.args.{change.arg}",
                fix=f'set "{change.arg}": {json.dumps(change.old_value)} to keep Clara\'s behaviour',
                level=Level.INFO,
            )
        )
    return notes
