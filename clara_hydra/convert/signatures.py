"""Signature index: every public class and function of the search modules, without importing them.

Importing torch + MONAI costs ~3 s on a 2-core machine, more than the whole conversion may take. So the
signatures are read once, by :func:`build_index` (which does import the libraries), and shipped as JSON in
``clara_hydra/convert/signature_index/<monai>_<torch>_<ignite>.json``. At conversion time :func:`load_index`
reads the installed versions from the package metadata (no import), loads the matching shipped index, and
only when none matches builds one into the user cache dir (slow path, logged once).

Index layout (``format`` 1)::

    {"format": 1,
     "versions": {"monai": "1.6.1", "torch": "2.13.0+cpu", "pytorch-ignite": "0.5.5"},
     "search_modules": ["monai.transforms", ...],
     "names": {"UNet": ["monai.networks.nets.UNet"], "ConfusionMatrix": ["monai.handlers.ConfusionMatrix", ...]},
     "objects": {"monai.networks.nets.UNet": {"kind": "class", "origin": "monai.networks.nets.unet.UNet",
                 "accepts_var_kwargs": false, "parameters": [{"name": "spatial_dims",
                 "kind": "positional_or_keyword", "has_default": false}, ...]}}}

``names`` lists, per short name, one public target per search module that exports it, in the global order
of ``search_modules``. ``parameters`` is ``null`` when no signature could be read.

Rebuild the shipped file with ``python tools/build_signature_index.py``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMAT = 1
INDEX_DIR = Path(__file__).with_name("signature_index")
INDEX_ENV = "CLARA_HYDRA_SIGNATURE_INDEX"  # force one index file (tests, air-gapped machines)
DISTRIBUTIONS = ("monai", "torch", "pytorch-ignite")

# The modules a short name is looked up in, in the global fallback order (SPEC §1). The slot-aware order
# of the catalog puts the slot's own modules first and then follows this one.
SEARCH_MODULES: tuple[str, ...] = (
    "monai.transforms",
    "monai.networks.nets",
    "monai.losses",
    "monai.optimizers",
    "torch.optim",
    "torch.optim.lr_scheduler",
    "monai.data",
    "monai.inferers",
    "monai.handlers",
    "monai.engines",
    "monai.metrics",
    "ignite.metrics",
    "torch.nn",
    # MONAI's apps that Clara 4.x MMARs named components from (DeepGrow, DeepEdit, digital pathology); last, so
    # they never shadow a core name (none of their names collides today).
    "monai.apps.deepgrow.transforms",
    "monai.apps.deepgrow.interaction",
    "monai.apps.deepedit.transforms",
    "monai.apps.deepedit.interaction",
    "monai.apps.pathology.transforms",
    "monai.apps.pathology.inferers",
    "monai.apps.pathology.engines",
)


# Our own implementations of Clara-only components (clara_hydra.components): indexed by their full path so the
# legacy rules that target them are checked like any other, but never found by a short name.
OWN_MODULES: tuple[str, ...] = ("clara_hydra.components",)


@dataclass(frozen=True)
class Param:
    """One parameter of a signature."""

    name: str
    kind: str  # positional_only | positional_or_keyword | keyword_only | var_positional | var_keyword
    has_default: bool


@dataclass(frozen=True)
class Signature:
    """What the index knows of one public callable."""

    target: str
    kind: str  # class | function
    origin: str  # where it is defined (module.qualname), to tell aliases from real ambiguity
    params: tuple[Param, ...] | None  # None: no signature could be read
    accepts_var_kwargs: bool

    @property
    def names(self) -> frozenset[str]:
        """Names that can be passed by keyword (``*args``/``**kwargs`` excluded)."""
        return frozenset(p.name for p in self.params or () if p.kind in ("positional_or_keyword", "keyword_only"))

    @property
    def required(self) -> frozenset[str]:
        """Keyword-passable parameters without a default."""
        return frozenset(
            p.name
            for p in self.params or ()
            if p.kind in ("positional_or_keyword", "keyword_only") and not p.has_default
        )


@dataclass(frozen=True)
class Index:
    """The loaded signature index, with lookups by short name and by qualified path."""

    versions: Mapping[str, str]
    search_modules: tuple[str, ...]
    names: Mapping[str, tuple[str, ...]]
    objects: Mapping[str, Signature]
    by_origin: Mapping[str, str]  # defining path -> public target, so `path: monai.networks.nets.unet.UNet` is checked
    source: str  # the file it was read from

    def lookup(self, path: str) -> Signature | None:
        """The signature of a public or defining path, or None."""
        sig = self.objects.get(path)
        if sig is None and path in self.by_origin:
            sig = self.objects[self.by_origin[path]]
        return sig


# ---------------------------------------------------------------------------------------------- loading


def public_version(version: str) -> str:
    """``2.13.0+cpu`` -> ``2.13.0``: local builds share the public release's signatures."""
    return version.split("+", 1)[0]


def installed_versions() -> dict[str, str]:
    """Versions of the libraries whose signatures we index, read from package metadata (no import)."""
    from importlib import metadata

    versions = {}
    for dist in DISTRIBUTIONS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "missing"
    return versions


def index_filename(versions: Mapping[str, str]) -> str:
    """``1.6.1_2.13.0_0.5.5.json`` for monai 1.6.1, torch 2.13.0+cpu, ignite 0.5.5."""
    return "_".join(public_version(versions[d]) for d in DISTRIBUTIONS) + ".json"


def cache_dir() -> Path:
    """Where indexes built on this machine live: ``$XDG_CACHE_HOME/clara-hydra`` or ``~/.cache/clara-hydra``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "clara-hydra"


def parse_index(data: Mapping[str, Any], source: str) -> Index:
    """Turn the JSON of an index into an :class:`Index`.

    Raises:
        ValueError: the file is of another format.
    """
    if data.get("format") != FORMAT:
        raise ValueError(f"signature index {source} has format {data.get('format')!r}, expected {FORMAT}")
    objects: dict[str, Signature] = {}
    by_origin: dict[str, str] = {}
    for target, entry in data["objects"].items():
        raw = entry["parameters"]
        params = None if raw is None else tuple(Param(p["name"], p["kind"], p["has_default"]) for p in raw)
        objects[target] = Signature(target, entry["kind"], entry["origin"], params, entry["accepts_var_kwargs"])
        by_origin.setdefault(entry["origin"], target)
    names = {name: tuple(targets) for name, targets in data["names"].items()}
    return Index(dict(data["versions"]), tuple(data["search_modules"]), names, objects, by_origin, source)


def _read(path: Path) -> Index:
    with open(path, encoding="utf-8") as fh:
        return parse_index(json.load(fh), str(path))


@cache
def load_index() -> Index:
    """The index for the installed library versions (cached for the process).

    Order: ``$CLARA_HYDRA_SIGNATURE_INDEX``; the shipped file for the installed versions; a file built
    earlier in the cache dir; a new build into the cache dir (imports the libraries, ~10 s, logged);
    when building fails, the newest shipped index with a warning (signatures may then be slightly off).
    """
    forced = os.environ.get(INDEX_ENV)
    if forced:
        return _read(Path(forced))
    versions = installed_versions()
    name = index_filename(versions)
    for candidate in (INDEX_DIR / name, cache_dir() / name):
        if candidate.is_file():
            return _read(candidate)
    target = cache_dir() / name
    log.warning("no shipped signature index for %s; building %s once (imports MONAI and torch)", versions, target)
    try:
        write_index(build_index(), target)
        return _read(target)
    except Exception as exc:  # a broken install must not stop conversion when a shipped index exists
        shipped = sorted(INDEX_DIR.glob("*.json"))
        if not shipped:
            raise
        log.warning("building the signature index failed (%s); using %s instead", exc, shipped[-1].name)
        return _read(shipped[-1])


def write_index(data: Mapping[str, Any], path: Path) -> None:
    """Write an index deterministically and atomically (temp file + ``os.replace``: safe for concurrent writers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the index is plain shared data
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------------------------------------- building


def _describe_params(obj: Any, is_class: bool) -> tuple[list[dict[str, Any]] | None, bool]:
    """Parameters of a callable (a class: its constructor, without ``self``) and whether it takes ``**kwargs``."""
    import inspect

    try:
        # For classes this is the __init__ (or __new__) signature without self; it follows __wrapped__, so
        # MONAI's @deprecated/@deprecated_arg wrappers report the wrapped constructor's parameters.
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        if not is_class:
            return None, True
        try:
            init = inspect.signature(obj.__init__)
        except (TypeError, ValueError):
            return None, True
        sig = init.replace(parameters=list(init.parameters.values())[1:])
    params = [
        {"name": p.name, "kind": p.kind.name.lower(), "has_default": p.default is not inspect.Parameter.empty}
        for p in sig.parameters.values()
    ]
    return params, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())


def build_index(modules: tuple[str, ...] = SEARCH_MODULES) -> dict[str, Any]:
    """Import the search modules and describe every public class and function they export.

    Slow (imports torch, MONAI, ignite); run by ``tools/build_signature_index.py`` and, when no shipped
    index matches the installed versions, once per machine by :func:`load_index`.
    """
    import importlib
    import inspect
    import warnings

    names: dict[str, list[str]] = {}
    objects: dict[str, dict[str, Any]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation noise of the libraries while importing and inspecting
        for mod_name in (*modules, *OWN_MODULES):
            module = importlib.import_module(mod_name)
            by_short = mod_name not in OWN_MODULES
            top = mod_name.split(".", 1)[0]
            for short in sorted(dir(module)):
                if short.startswith("_"):
                    continue
                obj = getattr(module, short, None)
                is_class = inspect.isclass(obj)
                if not (is_class or inspect.isfunction(obj) or inspect.isbuiltin(obj)):
                    continue
                # Only the library's own objects: not typing helpers or stdlib names a module happens to import.
                if not str(getattr(obj, "__module__", "") or "").startswith(top):
                    continue
                canonical = getattr(obj, "__name__", short)
                # Aliases (`Unet`, `Dice`) point at the class's own public name when the module exports it.
                public = canonical if getattr(module, canonical, None) is obj else short
                target = f"{mod_name}.{public}"
                if target not in objects:
                    params, var_kw = _describe_params(obj, is_class)
                    objects[target] = {
                        "kind": "class" if is_class else "function",
                        "origin": f"{obj.__module__}.{getattr(obj, '__qualname__', canonical)}",
                        "parameters": params,
                        "accepts_var_kwargs": var_kw,
                    }
                if by_short:
                    names.setdefault(short, [])
                    if target not in names[short]:
                        names[short].append(target)
    return {
        "format": FORMAT,
        "versions": installed_versions(),
        "search_modules": list(modules),
        "names": names,
        "objects": objects,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m clara_hydra.convert.signatures [OUT]``: build the index for the installed versions."""
    args = sys.argv[1:] if argv is None else argv
    data = build_index()
    out = Path(args[0]) if args else INDEX_DIR / index_filename(data["versions"])
    write_index(data, out)
    print(f"wrote {out} ({len(data['names'])} names, {len(data['objects'])} objects)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
