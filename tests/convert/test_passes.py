"""The converter's passes as a tuple over frozen stages: the wiring pass of its own, interpolations as nodes."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from clara_hydra.convert import wiring, yamlout
from clara_hydra.convert.diagnostics import Problems
from clara_hydra.convert.jsonload import Document
from clara_hydra.convert.model import ConfRef, Era, Expression, SlotRef, Var, VarText
from clara_hydra.convert.nodes import Interpolation, Members, Reference, Target, Text
from clara_hydra.convert.pipeline import PASSES, run_passes
from clara_hydra.convert.sigils import decode_text
from clara_hydra.convert.stages import Inputs, Lowered, Wired

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "clara_examples"
V40 = EXAMPLES / "18_NVIDIA_clara-train-examples_v40_trn_autoML_Enum.json"
V41 = EXAMPLES / "01_NVIDIA_clara-train-examples_v41_trn_autoML_Enum.json"
PACKAGE = Path(wiring.__file__).resolve().parent


def _stage(path: Path, name: str) -> Any:
    """The output of the passes up to and including ``name``."""
    names = [p.__name__ for p in PASSES]
    return run_passes(Inputs(Document(path.name, path.read_bytes())), PASSES[: names.index(name) + 1])


def test_wiring_is_a_pass_between_check_and_lower() -> None:
    names = [p.__name__ for p in PASSES]
    assert names == ["parse", "resolve", "bind", "check", "wire", "lower", "emit"]
    wired = _stage(V40, "wire")
    assert isinstance(wired, Wired)
    optimizer = next(v for k, v in wired.implicit.items() if k.endswith("optimizer"))
    # Clara 4.0 gave the model to the optimizer
    params = Target("clara_hydra.expressions.parameters_of", (("module", Reference("train.model")),))
    assert optimizer["params"] == params
    assert not _stage(V41, "wire").implicit, "a 4.1 config says its references itself"


def test_lower_and_wiring_do_not_import_each_other() -> None:
    def imports(name: str) -> set[str]:
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        found = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        found |= {f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        return found

    assert not {"clara_hydra.convert.lower", "clara_hydra.convert.lower.Lowering"} & imports("wiring")
    assert not {"clara_hydra.convert.tree"} & imports("lower")


def _values(node: Any) -> list[Any]:
    """The leaves of a lowered tree (inside typed nodes too) and every plain mapping in it."""
    if isinstance(node, Target | Members):
        return [x for _, v in (node.entries if isinstance(node, Target) else node.members) for x in _values(v)]
    if isinstance(node, dict):
        return [node, *(x for v in node.values() for x in _values(v))]
    if isinstance(node, list | tuple):
        return [x for v in node for x in _values(v)]
    return [node]


@pytest.mark.parametrize("path", [V40, V41], ids=["4.0", "4.1"])
def test_lowering_builds_interpolation_nodes_not_strings(path: Path) -> None:
    lowered = _stage(path, "lower")
    assert isinstance(lowered, Lowered)
    values = [v for f in lowered.files.values() for v in _values(dict(f.data))]
    assert any(isinstance(v, Interpolation) for v in values)
    handmade = [v for v in values if isinstance(v, str) and "${" in v.replace("\\${", "")]
    assert handmade == [], "every interpolation is a node; only escaped literal ${ stays in strings"
    markers = [v for v in values if isinstance(v, dict) and any(k.startswith("_") and k.endswith("_") for k in v)]
    assert markers == [], "targets, references and members are typed nodes, not mappings with markers"


@pytest.mark.parametrize(
    ("node", "value"),
    [
        (Interpolation("DATA_ROOT"), "/data"),
        (Text((Interpolation("DATA_ROOT"), "/imagesTr")), "/data/imagesTr"),
        (Text(("cost: ${5} \\", Interpolation("DATA_ROOT"), " ${x}")), "cost: ${5} \\/data ${x}"),
        (Interpolation("oc.env", "PASSES_TEST_DIR"), "job/models"),  # a resolver and its argument
    ],
)
def test_the_printer_writes_interpolation_nodes_that_omegaconf_reads_back(
    node: Any, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PASSES_TEST_DIR", "job/models")
    text = yamlout.dump({"DATA_ROOT": "/data", "v": node, "flow": [node]})
    cfg = OmegaConf.create(text)
    assert cfg.v == value and cfg.flow[0] == value  # block and flow style


def test_the_passes_build_diagnostics_through_one_helper() -> None:
    """No module of the converter builds a Diagnostic by hand: convert.diagnostics.Problems sets file and level."""
    modules = [*PACKAGE.glob("*.py"), *(PACKAGE / "legacy").glob("*.py")]
    assert len(modules) > 20
    for module in modules:
        if module.name == "diagnostics.py":
            continue
        tree = ast.parse(module.read_text())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Diagnostic"]
        assert calls == [], f"{module.name} builds a Diagnostic itself"
    problems = Problems("config_train.json")
    for _ in range(2):  # a component lowered twice says its note once
        problems.add("disabled-string", "'disabled': 'true' read as True", "train.loss[0].disabled", once=True)
    assert len(problems.found) == 1 and problems.found[0].file == "config_train.json"


def _strings(value: Any) -> list[Any]:
    """Every leaf of a parsed value (decoded typed values included), nested component dicts left out."""
    if isinstance(value, dict):
        return [] if "name" in value or "path" in value else [x for v in value.values() for x in _strings(v)]
    if isinstance(value, list):
        return [x for v in value for x in _strings(v)]
    return [value]


@pytest.mark.parametrize(("path", "era"), [(V40, Era.V40), (V41, Era.V41)], ids=["4.0", "4.1"])
def test_the_parser_decodes_sigils_into_typed_values(path: Path, era: Era) -> None:
    config = _stage(path, "parse").config
    assert config.era is era
    leaves = [x for c in config.all_components() for v in c.args.values() for x in _strings(v)]
    leaves += [x for v in config.first_level.values() for x in _strings(v)]
    kinds = {type(x) for x in leaves}
    assert VarText in kinds and (SlotRef in kinds) is (era is Era.V41)
    raw = [x for x in leaves if isinstance(x, str) and decode_text(x, era) != x]
    assert raw == [], "no marker is left inside a plain string for a later pass to read"


@pytest.mark.parametrize(
    ("text", "era", "value"),
    [
        ("@model", Era.V41, SlotRef("model")),
        ("@model", Era.V40, "@model"),  # 4.0 had no references: text
        ("@disabled", Era.V41, "@disabled"),
        ("@conf", Era.V41, ConfRef()),
        ("#@model.parameters()", Era.V41, Expression("#@model.parameters()")),
        ("  lambda x: None", Era.V40, Expression("  lambda x: None")),
        ("{DATA_ROOT}/imagesTr", Era.V40, VarText((Var("DATA_ROOT"), "/imagesTr"))),
        ("{a}{b}", Era.V41, VarText((Var("a"), Var("b")))),
        ("{not a var} $x", Era.V41, "{not a var} $x"),
    ],
)
def test_each_sigil_is_decoded_once_and_shows_as_written(text: str, era: Era, value: Any) -> None:
    decoded = decode_text(text, era)
    assert decoded == value
    # messages quote a decoded value as the config wrote it
    assert repr(decoded) == repr(text) and getattr(decoded, "text", text) == text


def test_only_the_parser_reads_markers_out_of_strings() -> None:
    """The `{VAR}` pattern and the expression test live in sigils.py alone; the passes that read argument values
    (lowering, wiring, alternatives, the catalog, the legacy rules) match on the typed values."""
    modules = [*PACKAGE.glob("*.py"), *(PACKAGE / "legacy").glob("*.py")]
    value_readers = {"lower", "wiring", "alternatives", "tree", "catalog", "arguments", "resolve", "references"}
    for module in modules:
        if module.name == "sigils.py":
            continue
        text = module.read_text()
        assert "A-Za-z_][A-Za-z0-9_]*)\\}" not in text, f"{module.name} decodes {{VAR}} itself"
        assert 'startswith("lambda")' not in text, f"{module.name} tests for an expression itself"
        if module.stem in value_readers or module.parent.name == "legacy":
            assert "REF_PREFIX" not in text and 'startswith(("@"' not in text, f"{module.name} reads '@' itself"


def test_values_kept_verbatim_are_decoded_too() -> None:
    # A section value that is no slot (kept verbatim) and a first-level value: their {VAR} is a variable all the same.
    doc = {
        "DATA_ROOT": "/d",
        "out": "{DATA_ROOT}/out",
        "train": {"model": {"name": "UNet", "args": {}}, "extra": {"root": "{DATA_ROOT}/x"}},
    }
    text = json.dumps(doc).encode()
    config = run_passes(Inputs(Document("config_train.json", text)), PASSES[:1]).config
    assert config.unknown_sections["train.extra"] == {"root": VarText((Var("DATA_ROOT"), "/x"))}
    assert config.first_level["out"] == VarText((Var("DATA_ROOT"), "/out"))
    cfg = OmegaConf.create(run_passes(Inputs(Document("config_train.json", text))).files["config.yaml"])
    assert cfg.train.extra.root == "/d/x" and cfg.out == "/d/out"
