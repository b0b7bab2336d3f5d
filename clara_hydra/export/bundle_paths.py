"""Paths in an exported bundle: the bundle's own files named from ``bundle_root``, the data's from their ids.

As in MONAI's model zoo, ``bundle_root`` is ``"."`` (the folder ``python -m monai.bundle run`` starts in;
``--bundle_root DIR`` names another) and ``ckpt_path`` is ``<bundle_root>/models/model.pt``. The model zoo writes
that as ``"$@bundle_root + '/models/model.pt'"``; MONAI's `_target_` syntax has no `$`-free join (it passes
keyword arguments only, and ``os.path.join`` takes its parts by position), but ``string.Formatter.vformat``
takes every argument by name, so every such path is a ``vformat`` item (:func:`under_root`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from clara_hydra.export.trial_config import MISSING, SIMPLE_INTERPOLATION, TrialConfig

ROOT_ID = "bundle_root"
# MONAI's model zoo default: the folder `monai.bundle run` starts in; `--bundle_root DIR` runs it from elsewhere.
ROOT_DEFAULT = "."
FORMAT_TARGET = "string.Formatter.vformat"


def _formatted(format_string: str, names: list[str]) -> dict[str, Any]:
    """``format_string`` with ``{name}`` filled from the ids ``names``, in MONAI's `_target_` syntax:
    ``string.Formatter().vformat(format_string, (), {name: @name})``, the `$`-free form of the model zoo's
    ``"$@bundle_root + '/models/model.pt'"`` (MONAI passes keyword arguments only, and ``vformat``, unlike
    ``os.path.join``, takes every argument by name)."""
    return {
        "_target_": FORMAT_TARGET,
        "self": {"_target_": "string.Formatter"},
        "format_string": format_string,
        "args": [],
        "kwargs": {name: f"@{name}" for name in names},
    }


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def under_root(relative: str) -> dict[str, Any]:
    """``<bundle_root>/<relative>``: a file of the bundle, wherever the bundle is (see :func:`_formatted`).

    Example:
        ``under_root("models/model.pt")`` resolves to ``"./models/model.pt"``, or ``"/x/models/model.pt"``
        with ``--bundle_root /x``.
    """
    return _formatted("{" + ROOT_ID + "}/" + _escape(relative), [ROOT_ID])


def built_on_variable(tc: TrialConfig, name: str, variables: list[str]) -> dict[str, Any] | str | None:
    """A variable whose value is a path built on others (``DATASET_JSON: ${DATA_ROOT}/dataset.json``) stays
    built on them, so that ``--DATA_ROOT /data`` moves both; None for any other value."""
    raw = tc.raw.get(name)
    if not isinstance(raw, str) or tc.resolved.get(name) == MISSING:
        return None
    links = list(SIMPLE_INTERPOLATION.finditer(raw))
    # Only a value that starts with a link: a relative start would be read from MONAI's working folder,
    # not from where the trial was launched. Any other `${...}` (a resolver) leaves the resolved value.
    if not links or links[0].start() != 0 or raw.count("${") != len(links):
        return None
    names = [m.group(1) for m in links]
    if not set(names) <= set(variables) - {name}:
        return None
    if links[0].end() == len(raw):
        return f"@{names[0]}"  # the same value as another variable: a link to it
    parts, last = [], 0
    for m in links:
        parts += [_escape(raw[last : m.start()]), "{" + m.group(1) + "}"]
        last = m.end()
    parts.append(_escape(raw[last:]))
    return _formatted("".join(parts), list(dict.fromkeys(names)))


def relocate(node: Any, root: Path) -> Any:
    """Every path inside the bundle folder named from ``bundle_root`` (:func:`under_root`), none absolute."""
    base = os.fspath(root)
    if isinstance(node, str) and (node == base or node.startswith(base + os.sep)):
        relative = Path(os.path.relpath(node, base)).as_posix()
        return f"@{ROOT_ID}" if relative == "." else under_root(relative)
    if isinstance(node, dict):
        return {k: relocate(v, root) for k, v in node.items()}
    if isinstance(node, list):
        return [relocate(v, root) for v in node]
    return node


def data_ids(config: dict[str, Any], variables: list[str]) -> dict[str, str]:
    """The variables that name files outside the bundle (the trial's data), with their values."""
    found: dict[str, str] = {}
    for name in variables:
        value = config.get(name)
        if isinstance(value, str) and os.path.isabs(value):
            found[name] = value
        elif isinstance(value, dict) and value.get("_target_") == FORMAT_TARGET and ROOT_ID not in value["kwargs"]:
            found[name] = str(value["format_string"])
    return found
