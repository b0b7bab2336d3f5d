#!/usr/bin/env python
"""Generate the MONAI history table the converter's legacy rewrites read, from MONAI's own git history.

Usage::

    python tools/make_legacy_tables.py MONAI_GIT_DIR [--out clara_hydra/convert/legacy/monai_history.json]

``MONAI_GIT_DIR`` is a clone (bare or not) of github.com/Project-MONAI/MONAI with its release tags. The tool reads
every release tag from 0.3.0 on (no rc/dev tags) with ``git show`` -- nothing is imported or executed -- and parses
the Python sources with :mod:`ast`:

* **names**: what each search package (``monai.transforms``, ``monai.networks.nets``, ..., and the apps Clara configs
  used: ``monai.apps.deepgrow``, ``deepedit``, ``pathology``) exports at each release,
  following ``from .x import ...`` (star imports included) and ``A = B`` aliases to the defining class;
* **classes**: every name exported at some release but not at the newest one, with its first/last release, the
  ``@deprecated(since, removed, msg_suffix)`` data, and its replacement when the sources say it: the decorator's
  message, an alias of a class that is still exported, a CHANGELOG line "``A`` ... in favor of ``B``" (Removed /
  Deprecated / Changed sections), a case-only spelling change, or the dictionary form of a replaced array class;
* **args**: ``@deprecated_arg(name, new_name=..., since, removed, msg_suffix)`` on constructors of current classes
  (a missing ``new_name`` is taken from a message "use `x` instead" when ``x`` is a parameter), and parameters that
  existed at some release and are gone now (``removed_args``, each with what it did: its line in the ``Args:``
  docstring of the last release that had it);
* **defaults**: literal default values of current constructors that changed between releases: per argument,
  its default from the first release that has it and at each release that changed it.

The output is deterministic (sorted keys); commit it. The tests check every entry against the installed MONAI.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from clara_hydra.convert.signatures import SEARCH_MODULES

FORMAT = 1
# The packages the converter looks short names up in: MONAI's part of its one table (the apps included;
# monai.apps.detection is not there: it arrived in MONAI 0.9, after every Clara release).
PACKAGES = tuple(m for m in SEARCH_MODULES if m.startswith("monai."))
FIRST = (0, 3, 0)  # Clara 3.x ran TensorFlow; MONAI names in Clara configs start with MONAI 0.3
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "clara_hydra" / "convert" / "legacy" / "monai_history.json"
_RELEASE = re.compile(r"^\d+\.\d+\.\d+$")
_TICKED = re.compile(r"`([A-Za-z_][\w.]*)`")
_DOTTED = re.compile(r"\bmonai(?:\.\w+)+")
_USE = re.compile(r"(?:use|using|in favor of|replaced by|instead use)\s+`?([A-Za-z_][\w.]*)`?", re.IGNORECASE)


def vkey(tag: str) -> tuple[int, ...]:
    return tuple(int(p) for p in tag.split("."))


# ---------------------------------------------------------------------------------------------- reading a release


class Release:
    """The sources of one release tag, read with ``git show`` and parsed once."""

    def __init__(self, git_dir: str, tag: str) -> None:
        self.git_dir, self.tag = git_dir, tag
        out = subprocess.run(
            ["git", "-C", git_dir, "ls-tree", "-r", "--name-only", tag, "monai/"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        self.files = frozenset(out.split())
        self._trees: dict[str, ast.Module | None] = {}

    def file_of(self, module: str) -> str | None:
        base = module.replace(".", "/")
        for cand in (base + "/__init__.py", base + ".py"):
            if cand in self.files:
                return cand
        return None

    def tree(self, module: str) -> ast.Module | None:
        if module not in self._trees:
            path = self.file_of(module)
            tree = None
            if path is not None:
                src = subprocess.run(
                    ["git", "-C", self.git_dir, "show", f"{self.tag}:{path}"], check=True, capture_output=True
                ).stdout.decode("utf-8", "replace")
                try:
                    tree = ast.parse(src)
                except SyntaxError:
                    tree = None
            self._trees[module] = tree
        return self._trees[module]

    def is_package(self, module: str) -> bool:
        return (module.replace(".", "/") + "/__init__.py") in self.files


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Module-level statements, including those inside ``if``/``try``/``with`` (optional imports)."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, ast.If | ast.With):
            yield from _statements(stmt.body)
            yield from _statements(getattr(stmt, "orelse", []))
        elif isinstance(stmt, ast.Try):
            yield from _statements(stmt.body)
            for handler in stmt.handlers:
                yield from _statements(handler.body)
            yield from _statements(stmt.orelse)


def _absolute(module: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_pkg else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


@dataclass(frozen=True)
class Definition:
    """A class or function as defined in a release."""

    origin: str  # module.qualname where it is defined
    kind: str
    params: dict[str, str | None] | None  # name -> default source (None: no default); None: unknown (inherited)
    deprecated: dict[str, str] | None  # @deprecated(...) keywords
    deprecated_args: tuple[dict[str, str], ...] = field(default=())
    docs: dict[str, str] = field(default_factory=dict)  # parameter -> its line(s) in the docstring's Args section


def _keywords(call: ast.Call) -> dict[str, str]:
    out: dict[str, str] = {}
    for kw in call.keywords:
        if kw.arg is None:
            continue
        try:
            value = ast.literal_eval(kw.value)
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, str):
            out[kw.arg] = value
    if call.args and "name" not in out:
        try:
            first = ast.literal_eval(call.args[0])
        except (ValueError, SyntaxError):
            first = None
        if isinstance(first, str):
            out["name"] = first
    return out


def _decorators(node: ast.ClassDef | ast.FunctionDef, which: str) -> list[dict[str, str]]:
    found = []
    for dec in node.decorator_list:
        if isinstance(dec, ast.Call):
            func = dec.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name == which:
                found.append(_keywords(dec))
    return found


def _params(func: ast.FunctionDef, skip_self: bool) -> dict[str, str | None]:
    args = func.args
    positional = args.posonlyargs + args.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    out: dict[str, str | None] = {}
    for i, (arg, default) in enumerate(zip(positional, defaults, strict=True)):
        if skip_self and i == 0:
            continue
        out[arg.arg] = None if default is None else ast.unparse(default)
    for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        out[arg.arg] = None if kw_default is None else ast.unparse(kw_default)
    return out


class Scanner:
    """Resolves exported names of one release to their definitions."""

    def __init__(self, release: Release) -> None:
        self.release = release

    @cache  # noqa: B019 -- one scanner per release, alive for the run
    def local(self, module: str) -> dict[str, tuple[str, str]]:
        """Names bound at top level of ``module`` -> (defining module, name there); imports resolved lazily."""
        tree = self.release.tree(module)
        if tree is None:
            return {}
        is_pkg = self.release.is_package(module)
        bound: dict[str, tuple[str, str]] = {}
        for stmt in _statements(tree.body):
            if isinstance(stmt, ast.ClassDef | ast.FunctionDef):
                bound[stmt.name] = (module, stmt.name)
            elif isinstance(stmt, ast.ImportFrom):
                src = _absolute(module, is_pkg, stmt)
                if not src.startswith("monai"):
                    continue
                for alias in stmt.names:
                    if alias.name == "*":
                        for name, where in self.exported(src).items():
                            bound.setdefault(name, where)
                    else:
                        bound[alias.asname or alias.name] = (src, alias.name)
            elif isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Name):
                for target in stmt.targets:
                    if isinstance(target, ast.Name) and stmt.value.id in bound:
                        bound[target.id] = bound[stmt.value.id]
        return bound

    @cache  # noqa: B019
    def exported(self, module: str) -> dict[str, tuple[str, str]]:
        """What ``from module import *`` or ``module.X`` gives: public names (``__all__`` when defined)."""
        bound = self.local(module)
        tree = self.release.tree(module)
        names: list[str] | None = None
        for stmt in _statements(tree.body if tree else []):
            if isinstance(stmt, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in stmt.targets
            ):
                try:
                    names = [n for n in ast.literal_eval(stmt.value) if isinstance(n, str)]
                except (ValueError, SyntaxError):
                    names = None
        keep = names if names is not None else [n for n in bound if not n.startswith("_")]
        return {n: bound[n] for n in keep if n in bound}

    def definition(self, module: str, name: str, depth: int = 0) -> Definition | None:
        """Follow imports to the ``class``/``def`` statement and describe it."""
        if depth > 20:
            return None
        where = self.local(module).get(name)
        if where is None:
            return None
        if where != (module, name):
            return self.definition(*where, depth=depth + 1)
        tree = self.release.tree(module)
        for stmt in _statements(tree.body if tree else []):
            if isinstance(stmt, ast.ClassDef) and stmt.name == name:
                init = next((s for s in stmt.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
                params = _params(init, skip_self=True) if init is not None else None
                dargs = tuple(_decorators(init, "deprecated_arg")) if init is not None else ()
                dep = _decorators(stmt, "deprecated")
                docs = _arg_docs(ast.get_docstring(stmt) or "")
                if init is not None:
                    docs = {**docs, **_arg_docs(ast.get_docstring(init) or "")}
                return Definition(f"{module}.{name}", "class", params, dep[0] if dep else None, dargs, docs)
            if isinstance(stmt, ast.FunctionDef) and stmt.name == name:
                dep = _decorators(stmt, "deprecated")
                dargs = tuple(_decorators(stmt, "deprecated_arg"))
                docs = _arg_docs(ast.get_docstring(stmt) or "")
                params = _params(stmt, False)
                return Definition(f"{module}.{name}", "function", params, dep[0] if dep else None, dargs, docs)
        return None


@dataclass
class Snapshot:
    """One release: per package, short name -> definition."""

    tag: str
    names: dict[str, dict[str, Definition]]


def _home(package: str) -> str:
    """``monai.networks.nets`` -> ``monai.networks.``, ``monai.apps.deepgrow.transforms`` -> ``monai.apps.deepgrow.``:
    where a package's own objects are defined."""
    depth = 3 if package.startswith("monai.apps.") else 2
    return ".".join(package.split(".")[:depth]) + "."


_DOC_ARG = re.compile(r"^(\s*)(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_DOC_LIMIT = 300


def _arg_docs(doc: str) -> dict[str, str]:
    """Parameter -> its description in a Google-style ``Args:`` section (continuation lines joined, cut to
    a few hundred characters)."""
    out: dict[str, str] = {}
    lines = doc.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() not in ("Args:", "Arguments:", "Parameters:"):
            i += 1
            continue
        section_indent = len(lines[i]) - len(lines[i].lstrip())
        i += 1
        item_indent: int | None = None
        current: str | None = None
        while i < len(lines):
            line = lines[i]
            if not line.strip():
                i += 1
                continue
            indent = len(line) - len(line.lstrip())
            if indent <= section_indent:
                break
            m = _DOC_ARG.match(line)
            if m and (item_indent is None or indent == item_indent):
                item_indent = indent
                current = m.group(2)
                out[current] = m.group(3).strip()
            elif current is not None:
                out[current] = (out[current] + " " + line.strip()).strip()
            i += 1
    return {k: _cut(" ".join(v.split())) for k, v in out.items() if v}


def _cut(text: str) -> str:
    return text if len(text) <= _DOC_LIMIT else text[: _DOC_LIMIT - 3].rstrip() + "..."


def snapshot(git_dir: str, tag: str) -> Snapshot:
    scanner = Scanner(Release(git_dir, tag))
    names: dict[str, dict[str, Definition]] = {}
    for package in PACKAGES:
        found: dict[str, Definition] = {}
        for short, where in sorted(scanner.exported(package).items()):
            d = scanner.definition(*where)
            # Only the package's own objects: 0.3/0.4 star imports also re-exported helpers (monai.utils).
            if d is not None and short[:1].isalpha() and d.origin.startswith(_home(package)):
                found[short] = d
        names[package] = found
    return Snapshot(tag, names)


# ---------------------------------------------------------------------------------------------- the CHANGELOG


def changelog_pairs(text: str) -> list[tuple[str, str, str]]:
    """(old, new, line) from lines of the Removed/Deprecated/Changed sections saying "`A` ... in favor of `B`"."""
    pairs = []
    section = ""
    for line in text.splitlines():
        if line.startswith("### "):
            section = line[4:].strip().lower()
            continue
        if line.startswith("## "):
            section = ""
        if section not in ("removed", "deprecated", "changed") or not line.lstrip().startswith("*"):
            continue
        for sep in (" in favor of ", " renamed to ", " is renamed to ", " replaced by "):
            if sep in line:
                before, after = line.split(sep, 1)
                olds = [t.rsplit(".", 1)[-1] for t in _TICKED.findall(before)]
                news = [t.rsplit(".", 1)[-1] for t in _TICKED.findall(after)]
                if news and olds:
                    if len(olds) == len(news):
                        pairs += [(o, n, line.strip()) for o, n in zip(olds, news, strict=True)]
                    elif len(news) == 1:
                        pairs += [(o, news[0], line.strip()) for o in olds]
                break
    return pairs


# ---------------------------------------------------------------------------------------------- the tables


def _named(message: str) -> list[str]:
    """Names a deprecation message points at ("please use `SplitDim` instead", "use monai.data.PILWriter")."""
    names = [t.rsplit(".", 1)[-1] for t in _TICKED.findall(message)]
    names += [m.rsplit(".", 1)[-1] for m in _DOTTED.findall(message)]
    names += [m.rsplit(".", 1)[-1] for m in _USE.findall(message)]
    return [n.rstrip(".") for n in names if n]


def build(git_dir: str) -> dict[str, Any]:
    out = subprocess.run(["git", "-C", git_dir, "tag"], check=True, capture_output=True, text=True).stdout
    tags = sorted((t for t in out.split() if _RELEASE.match(t) and vkey(t) >= FIRST), key=vkey)
    snaps = [snapshot(git_dir, t) for t in tags]
    latest = snaps[-1]
    changelog = subprocess.run(
        ["git", "-C", git_dir, "show", f"{latest.tag}:CHANGELOG.md"], check=True, capture_output=True, text=True
    ).stdout
    pairs = changelog_pairs(changelog)
    current: dict[str, str] = {}  # short name -> public target at the latest release (first package wins)
    current_origin: dict[str, str] = {}  # defining origin -> public target
    for package in PACKAGES:
        for short, d in latest.names[package].items():
            current.setdefault(short, f"{package}.{short}")
            # An alias points at the class's own name (`unet` -> `UNet`, not `Unet`).
            if d.origin.rsplit(".", 1)[-1] == short or d.origin not in current_origin:
                current_origin[d.origin] = f"{package}.{short}"
    lower = {s.lower(): t for s, t in current.items()}

    classes: dict[str, dict[str, Any]] = {}
    for snap in snaps:
        for package in PACKAGES:
            for short, d in snap.names[package].items():
                if short in latest.names[package] or short in current:
                    continue
                entry = classes.setdefault(
                    short, {"module": package, "first": snap.tag, "last": snap.tag, "kind": d.kind}
                )
                entry["last"] = snap.tag
                if d.deprecated:
                    entry["deprecated"] = {
                        k: v for k, v in d.deprecated.items() if k in ("since", "removed", "msg_suffix")
                    }
                if d.origin in current_origin:  # an alias of a class that is still exported
                    entry.setdefault("alias_of", current_origin[d.origin])
    for short, entry in classes.items():
        after = [s.tag for s in snaps if vkey(s.tag) > vkey(entry["last"])]
        entry["removed"] = after[0] if after else None
        entry["replacement"], entry["evidence"] = _replacement(short, entry, current, lower, pairs)
    # Dictionary forms: `AddChanneld` follows `AddChannel` -> `EnsureChannelFirst` when the sources say nothing.
    for short, entry in classes.items():
        if entry["replacement"] is None and short.endswith("d") and short[:-1] in classes:
            base = classes[short[:-1]]["replacement"]
            if base and base.rsplit(".", 1)[-1] + "d" in current:
                entry["replacement"] = current[base.rsplit(".", 1)[-1] + "d"]
                entry["evidence"] = f"dictionary form of {short[:-1]} -> {base}"

    args, removed_args, defaults = _arg_tables(snaps, latest)
    return {
        "format": FORMAT,
        "source": {"repository": "Project-MONAI/MONAI", "releases": tags, "packages": list(PACKAGES)},
        "classes": dict(sorted(classes.items())),
        "args": args,
        "removed_args": removed_args,
        "defaults": defaults,
    }


def _replacement(
    short: str, entry: dict[str, Any], current: dict[str, str], lower: dict[str, str], pairs: list[tuple[str, str, str]]
) -> tuple[str | None, str]:
    message = (entry.get("deprecated") or {}).get("msg_suffix", "")
    named = [n for n in _named(message) if n in current and n != short]
    # "use MetaTensor data type and monai.transforms.EnsureChannelFirst": prefer a name of the same package.
    named.sort(key=lambda n: not current[n].startswith(entry["module"] + "."))
    if named:
        return current[named[0]], f"@deprecated: {message.strip()}"
    if "alias_of" in entry:
        return entry["alias_of"], "alias of the same class"
    for old, new, line in pairs:
        if old == short and new in current:
            return current[new], f"CHANGELOG: {line}"
    if short.lower() in lower:
        return lower[short.lower()], "same name, new spelling"
    return None, "removed without a named replacement" + (f": {message.strip()}" if message else "")


def _arg_tables(snaps: list[Snapshot], latest: Snapshot) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    args: dict[str, dict[str, Any]] = {}
    removed: dict[str, dict[str, Any]] = {}
    defaults: dict[str, dict[str, Any]] = {}
    for package in PACKAGES:
        for short, now in latest.names[package].items():
            target = f"{package}.{short}"
            # Aliases (`SpacingD` of `Spacingd`) resolve to the class's own name: one entry per class.
            if now.params is None or now.origin.rsplit(".", 1)[-1] != short:
                continue
            history: list[tuple[str, Definition]] = []
            for s in snaps:
                d = s.names[package].get(short)
                if d is not None and d.params is not None and d.origin == now.origin:
                    history.append((s.tag, d))
            for tag, d in history:
                for dep in d.deprecated_args:
                    old = dep.get("name")
                    if not old or old in now.params:
                        continue
                    said = next((n for n in _named(dep.get("msg_suffix", "")) if n in now.params), None)
                    new = dep.get("new_name") or said
                    if new and new in now.params:
                        # verbatim: MONAI itself passed the old value on to `new_name` (a pure rename); else
                        # only its message names the new parameter, whose values may mean something else.
                        args.setdefault(target, {}).setdefault(
                            old,
                            {
                                "new": new,
                                "since": dep.get("since"),
                                "removed": dep.get("removed"),
                                "seen": tag,
                                "verbatim": bool(dep.get("new_name")),
                            },
                        )
            for tag, d in history:
                assert d.params is not None
                for old in d.params:
                    if old in now.params or old in args.get(target, {}) or old in ("self", "cls"):
                        continue
                    e = removed.setdefault(target, {}).setdefault(old, {"first": tag})
                    e["last"] = tag
                    if d.docs.get(old):  # what it did, as the last release that had it says
                        e["doc"] = d.docs[old]
            for name in now.params:
                timeline = _default_timeline(name, history)
                if len(timeline) > 1:
                    defaults.setdefault(target, {})[name] = timeline
    for by_arg in removed.values():
        for entry in by_arg.values():
            later = [s.tag for s in snaps if vkey(s.tag) > vkey(entry["last"])]
            entry["removed"] = later[0] if later else None
    return (
        {k: dict(sorted(v.items())) for k, v in sorted(args.items())},
        {k: dict(sorted(v.items())) for k, v in sorted(removed.items())},
        {k: dict(sorted(v.items())) for k, v in sorted(defaults.items())},
    )


def _default_timeline(arg: str, history: list[tuple[str, Definition]]) -> list[dict[str, str]]:
    """``[{"version": v, "value": src}, ...]``: the literal default of ``arg`` from the first release that has
    it, and each release that changed it. Empty when any release gives it a non-literal default."""
    timeline: list[dict[str, str]] = []
    for tag, d in history:
        assert d.params is not None
        if arg not in d.params:
            continue
        src = d.params[arg]
        if src is None or not _literal(src):
            return []
        if not timeline or ast.literal_eval(timeline[-1]["value"]) != ast.literal_eval(src):
            timeline.append({"version": tag, "value": src})
    return timeline


def _literal(src: str) -> bool:
    try:
        ast.literal_eval(src)
    except (ValueError, SyntaxError):
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("git_dir", help="a git clone of Project-MONAI/MONAI with its release tags")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ns = parser.parse_args(argv)
    data = build(ns.git_dir)
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    ns.out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    replaced = sum(1 for e in data["classes"].values() if e["replacement"])
    print(
        f"wrote {ns.out}: {len(data['classes'])} removed names ({replaced} with a replacement), "
        f"{sum(map(len, data['args'].values()))} argument renames, "
        f"{sum(map(len, data['removed_args'].values()))} removed arguments, "
        f"{sum(map(len, data['defaults'].values()))} changed defaults, from {len(data['source']['releases'])} releases"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
