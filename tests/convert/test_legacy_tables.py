"""The MONAI history table (``clara_hydra/convert/legacy/monai_history.json``) against the installed MONAI, and the
tool that makes it (``tools/make_legacy_tables.py``) on a small git repository with two releases.

The table is made from MONAI's git history, which CI does not have; what CI checks is that every entry still holds
for the MONAI we run: a replacement exists, a renamed argument is a parameter of its class, a removed name or
argument is really gone, and today's value of a changed default is the installed one.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from clara_hydra.convert import legacy
from clara_hydra.convert.legacy.history import TABLE, parse_history
from clara_hydra.convert.signatures import load_index

REPO = Path(__file__).resolve().parents[2]
HISTORY = legacy.load_history()
INDEX = load_index()


def test_table_covers_the_releases_clara_used() -> None:
    releases = HISTORY.releases
    # Clara 4.0 shipped MONAI 0.5 and 4.1 MONAI 0.8; the table must reach from before them to 1.x.
    for needed in ("0.3.0", "0.5.0", "0.8.0", "1.0.0", "1.3.0"):
        assert needed in releases
    assert len(HISTORY.classes) > 40 and len(HISTORY.args) > 10 and HISTORY.defaults


@pytest.mark.parametrize("name", sorted(HISTORY.classes), ids=str)
def test_removed_names_are_gone_and_replacements_exist(name: str) -> None:
    entry = HISTORY.classes[name]
    assert name not in INDEX.names, f"{name} is listed as removed but the installed MONAI exports it"
    if entry.replacement is not None:
        assert INDEX.lookup(entry.replacement) is not None, f"{name} -> {entry.replacement}: no such object"
        assert entry.evidence and entry.removed


ARG_RENAMES = [(t, a) for t, by_arg in sorted(HISTORY.args.items()) for a in sorted(by_arg)]


@pytest.mark.parametrize(("target", "old"), ARG_RENAMES, ids=lambda v: str(v))
def test_renamed_arguments_exist_on_the_installed_class(target: str, old: str) -> None:
    rename = HISTORY.args[target][old]
    sig = INDEX.lookup(target)
    assert sig is not None, f"{target} is not in the installed MONAI"
    assert rename.new in sig.names, f"{target} takes no '{rename.new}' (renamed from '{old}')"


REMOVED_ARGS = [(t, a) for t, by_arg in sorted(HISTORY.removed_args.items()) for a in sorted(by_arg)]


@pytest.mark.parametrize(("target", "arg"), REMOVED_ARGS, ids=lambda v: str(v))
def test_removed_arguments_are_gone(target: str, arg: str) -> None:
    sig = INDEX.lookup(target)
    assert sig is not None, f"{target} is not in the installed MONAI"
    assert arg not in sig.names, f"{target} still takes '{arg}', listed as removed"


def _installed_default(target: str, arg: str) -> Any:
    module, _, name = target.rpartition(".")
    obj = getattr(importlib.import_module(module), name)
    sig = inspect.signature(obj)
    return sig.parameters[arg].default


DEFAULTS = [(t, a) for t, by_arg in sorted(HISTORY.defaults.items()) for a in sorted(by_arg)]


@pytest.mark.parametrize(("target", "arg"), DEFAULTS, ids=lambda v: str(v))
def test_todays_default_is_the_installed_one(target: str, arg: str) -> None:
    today = ast.literal_eval(HISTORY.defaults[target][arg][-1][1])
    assert _plain(_installed_default(target, arg)) == _plain(today)


def _plain(value: Any) -> Any:
    """Tuples as lists, str enums as str: MONAI passes both forms interchangeably."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return str(value) if isinstance(value, str) else value


def test_history_answers_the_known_cases() -> None:
    assert HISTORY.removed_name("AddChannel").replacement == "monai.transforms.EnsureChannelFirst"  # type: ignore[union-attr]
    assert HISTORY.removed_name("SplitChanneld").replacement == "monai.transforms.SplitDimd"  # type: ignore[union-attr]
    assert HISTORY.removed_name("unet").same_class  # type: ignore[union-attr]
    assert HISTORY.arg_rename("monai.networks.nets.UNet", "dimensions").verbatim  # type: ignore[union-attr]
    crop = HISTORY.changed_defaults("monai.transforms.RandSpatialCropd", "0.8.0")
    assert [(c.arg, c.old_value, c.version) for c in crop] == [("random_size", True, "1.3.0")]
    # An argument the Clara-era release did not have yet says nothing about what Clara ran with.
    assert HISTORY.changed_defaults("monai.transforms.EnsureChannelFirstd", "0.8.0") == []


def test_table_format_is_checked() -> None:
    data = json.loads(TABLE.read_text(encoding="utf-8"))
    parse_history(data)
    with pytest.raises(ValueError, match="format"):
        parse_history({**data, "format": 99})


# ---------------------------------------------------------------------------------------------- the tool


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def _release(repo: Path, tag: str, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", tag)
    _git(repo, "tag", tag)


OLD_ARRAY = """
from monai.utils import deprecated, deprecated_arg

class Keep:
    @deprecated_arg(name="dims", new_name="spatial_dims", since="0.3")
    def __init__(self, spatial_dims=3, crop=True, gone=1):
        pass

@deprecated(since="0.3", removed="0.4", msg_suffix="please use `Keep` instead.")
class Old:
    def __init__(self, x=1):
        pass

class Other:
    pass

Alias = Keep
"""
NEW_ARRAY = """
class Keep:
    def __init__(self, spatial_dims=3, crop=False):
        pass
"""
OLD_APP = """
class FindDiscrepancyRegionsd:
    \"\"\"
    Find discrepancy between prediction and actual during click interactions.

    Args:
        label: key to label source.
        batched: whether input is batched or not;
            continued on a second line.
    \"\"\"

    def __init__(self, label="label", batched=True):
        pass
"""
NEW_APP = """
class FindDiscrepancyRegionsd:
    def __init__(self, label="label"):
        pass
"""
CHANGELOG = """# Changelog
## [0.4.0]
### Removed
* `Other` in favor of `Keep`
"""


def test_the_tool_reads_a_small_history(tmp_path: Path) -> None:
    repo = tmp_path / "monai_repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _release(
        repo,
        "0.3.0",
        {
            "monai/transforms/__init__.py": "from .array import *\n",
            "monai/transforms/array.py": OLD_ARRAY,
            "monai/apps/deepgrow/transforms.py": OLD_APP,
            "CHANGELOG.md": "# Changelog\n",
        },
    )
    (repo / "monai/transforms/array.py").write_text(NEW_ARRAY, encoding="utf-8")
    (repo / "monai/apps/deepgrow/transforms.py").write_text(NEW_APP, encoding="utf-8")
    _release(repo, "0.4.0", {"monai/transforms/__init__.py": "from .array import Keep\n", "CHANGELOG.md": CHANGELOG})
    out = tmp_path / "history.json"
    subprocess.run(
        [sys.executable, str(REPO / "tools" / "make_legacy_tables.py"), str(repo), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    data = json.loads(out.read_text(encoding="utf-8"))
    classes = data["classes"]
    assert classes["Old"]["replacement"] == "monai.transforms.Keep"
    assert classes["Old"]["evidence"].startswith("@deprecated")
    assert classes["Old"]["removed"] == "0.4.0" and classes["Old"]["last"] == "0.3.0"
    assert classes["Alias"]["replacement"] == "monai.transforms.Keep"  # an alias of a class still exported
    assert classes["Other"]["evidence"].startswith("CHANGELOG")
    assert data["args"]["monai.transforms.Keep"]["dims"]["new"] == "spatial_dims"
    assert data["args"]["monai.transforms.Keep"]["dims"]["verbatim"] is True
    assert data["removed_args"]["monai.transforms.Keep"]["gone"]["removed"] == "0.4.0"
    assert data["defaults"]["monai.transforms.Keep"]["crop"] == [
        {"version": "0.3.0", "value": "True"},
        {"version": "0.4.0", "value": "False"},
    ]
    history = parse_history(data)
    assert history.changed_defaults("monai.transforms.Keep", "0.3.0")[0].old_value is True
    # MONAI's apps are read too; a removed argument keeps what its docstring said it did.
    batched = history.removed_arg("monai.apps.deepgrow.transforms.FindDiscrepancyRegionsd", "batched")
    assert batched is not None and batched.removed == "0.4.0"
    assert batched.doc == "whether input is batched or not; continued on a second line."
    assert "doc" not in data["removed_args"]["monai.transforms.Keep"]["gone"]  # undocumented: nothing invented


@pytest.mark.parametrize("rule", legacy.MONAI_RULES, ids=lambda r: r.old)
def test_curated_rules_agree_with_the_history(rule: legacy.Rule) -> None:
    # A curated rule that says when MONAI removed its name must say what MONAI's history says.
    removed = HISTORY.removed_name(rule.old)
    if removed is None:
        assert "removed in MONAI" not in rule.why
        return
    assert removed.removed is not None
    major_minor = ".".join(removed.removed.split(".")[:2])
    assert f"removed in MONAI {major_minor}" in rule.why, (rule.why, removed)
