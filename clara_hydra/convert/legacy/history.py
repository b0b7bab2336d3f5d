"""MONAI's own history of renames and removals, read from the table ``monai_history.json``.

The table is generated from MONAI's git history by ``tools/make_legacy_tables.py`` (release tags 0.3.0 on:
what each package exported -- the core packages and the apps Clara configs used (deepgrow, deepedit, pathology) --,
``@deprecated``/``@deprecated_arg`` decorators, the CHANGELOG's Removed / Deprecated / Changed lines, literal
constructor defaults, and the docstring line of each removed argument) and shipped with the package, so conversion
imports neither MONAI nor torch. The tests check every entry against the installed MONAI.

Example:
    >>> h = load_history()
    >>> h.removed_name("AddChanneld").replacement
    'monai.transforms.EnsureChannelFirstd'
    >>> h.arg_rename("monai.networks.nets.UNet", "dimensions").new
    'spatial_dims'
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

TABLE = Path(__file__).with_name("monai_history.json")
FORMAT = 1

# The MONAI release a Clara release shipped, for defaults that changed since (Clara Train 4.0 was built on
# MONAI 0.5, 4.1 on MONAI 0.8). 3.x ran TensorFlow: its components are mapped by hand (.tf), no baseline.
CLARA_MONAI: Mapping[str, str] = {"4.0": "0.5.0", "4.1": "0.8.0"}

# Defaults whose change does not alter what a Clara config computed under MONAI 1.x, so reporting them
# would only be noise. Each entry says why.
QUIET_DEFAULTS: Mapping[tuple[str, str], str] = {
    ("LoadImage", "image_only"): "MONAI 1.x keeps the metadata on the image tensor either way",
    ("LoadImaged", "image_only"): "MONAI 1.x keeps the metadata on the image tensor either way",
    ("ToTensor", "track_meta"): "metadata tracking only",
    ("ToTensord", "track_meta"): "metadata tracking only",
    ("StatsHandler", "name"): "the logger's name",
    ("Invertd", "device"): "where the inverse runs, not what it computes",
    ("Invert", "device"): "where the inverse runs, not what it computes",
    ("SegResNet", "norm_name"): "superseded by 'norm', whose default is the same group norm",
    # False -> None: both mean "no one-hot"; advising `to_onehot: false` would be wrong, MONAI 1.x rejects booleans.
    ("AsDiscrete", "to_onehot"): "None means no one-hot, as False did (MONAI 1.x rejects a boolean)",
    ("AsDiscreted", "to_onehot"): "None means no one-hot, as False did (MONAI 1.x rejects a boolean)",
    ("CacheDataset", "num_workers"): "worker threads: speed, not results",
    ("SmartCacheDataset", "num_init_workers"): "worker threads: speed, not results",
    ("SmartCacheDataset", "num_replace_workers"): "worker threads: speed, not results",
}


@dataclass(frozen=True)
class RemovedName:
    """A short name some MONAI release exported and the newest one does not."""

    name: str
    module: str  # the package that exported it (monai.transforms, ...)
    first: str  # first release exporting it
    last: str  # last release exporting it
    removed: str | None  # first release without it
    replacement: str | None  # fully qualified current target the sources name, if any
    evidence: str  # where the replacement comes from (decorator message, alias, CHANGELOG line)

    @property
    def same_class(self) -> bool:
        """The replacement is the very class under another name (an alias or a new spelling)."""
        return self.evidence in ("alias of the same class", "same name, new spelling")


@dataclass(frozen=True)
class ArgRename:
    """``@deprecated_arg(old, new_name=new)`` on a current constructor."""

    target: str
    old: str
    new: str
    since: str | None
    removed: str | None
    verbatim: bool  # MONAI passed the old value on to ``new`` (a pure rename)


@dataclass(frozen=True)
class RemovedArg:
    """A constructor parameter some release had and the newest one does not (without a rename)."""

    target: str
    arg: str
    last: str
    removed: str | None
    doc: str = ""  # what it did: its line in the docstring of the last release that had it


@dataclass(frozen=True)
class DefaultChange:
    """A literal default that differs between a Clara-era release and today.

    ``version`` is the first release with today's value ``new``; ``old`` is the value at the Clara-era release.
    """

    target: str
    arg: str
    version: str
    old: str  # Python source of the value
    new: str

    @property
    def old_value(self) -> Any:
        return ast.literal_eval(self.old)


def version_key(version: str) -> tuple[int, ...]:
    """``"1.3"`` -> ``(1, 3, 0)``: MONAI's versions compared as numbers."""
    parts = [int(p) for p in version.split(".")[:3] if p.isdigit()]
    return tuple(parts + [0] * (3 - len(parts)))


@dataclass(frozen=True)
class History:
    """The loaded table."""

    releases: tuple[str, ...]
    classes: Mapping[str, RemovedName]
    args: Mapping[str, Mapping[str, ArgRename]]
    removed_args: Mapping[str, Mapping[str, RemovedArg]]
    defaults: Mapping[str, Mapping[str, tuple[tuple[str, str], ...]]]  # target -> arg -> ((version, value), ...)

    def removed_name(self, name: str) -> RemovedName | None:
        return self.classes.get(name)

    def arg_rename(self, target: str, arg: str) -> ArgRename | None:
        return self.args.get(target, {}).get(arg)

    def removed_arg(self, target: str, arg: str) -> RemovedArg | None:
        return self.removed_args.get(target, {}).get(arg)

    def changed_defaults(self, target: str, since: str) -> list[DefaultChange]:
        """The defaults of ``target`` that differ between release ``since`` and today (quiet ones left out).

        An argument the ``since`` release did not have yet is left out: nothing says what Clara ran with.
        """
        short = target.rsplit(".", 1)[-1]
        out = []
        for arg, timeline in self.defaults.get(target, {}).items():
            then = [(v, value) for v, value in timeline if version_key(v) <= version_key(since)]
            if not then or (short, arg) in QUIET_DEFAULTS:
                continue
            old, (changed_in, new) = then[-1][1], timeline[-1]
            if ast.literal_eval(old) != ast.literal_eval(new):
                out.append(DefaultChange(target, arg, changed_in, old, new))
        return out


def parse_history(data: Mapping[str, Any]) -> History:
    """Build a :class:`History` from the JSON table.

    Raises:
        ValueError: the table is of another format.
    """
    if data.get("format") != FORMAT:
        raise ValueError(f"MONAI history table has format {data.get('format')!r}, expected {FORMAT}")
    classes = {
        name: RemovedName(
            name, e["module"], e["first"], e["last"], e.get("removed"), e.get("replacement"), e.get("evidence", "")
        )
        for name, e in data["classes"].items()
    }
    args = {
        target: {
            old: ArgRename(target, old, e["new"], e.get("since"), e.get("removed"), bool(e.get("verbatim")))
            for old, e in by_arg.items()
        }
        for target, by_arg in data["args"].items()
    }
    removed = {
        target: {
            arg: RemovedArg(target, arg, e["last"], e.get("removed"), e.get("doc", "")) for arg, e in by_arg.items()
        }
        for target, by_arg in data["removed_args"].items()
    }
    defaults = {
        target: {arg: tuple((e["version"], e["value"]) for e in timeline) for arg, timeline in by_arg.items()}
        for target, by_arg in data["defaults"].items()
    }
    return History(tuple(data["source"]["releases"]), classes, args, removed, defaults)


@cache
def load_history() -> History:
    """The shipped table (read once per process)."""
    with open(TABLE, encoding="utf-8") as fh:
        return parse_history(json.load(fh))
