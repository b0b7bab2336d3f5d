"""No input breaks the converter (issue 10, item 5): the input classes that did, generated and checked.

Property: any generated document converts into YAML whose values read back (with OmegaConf, as Hydra reads them)
equal to what was written, or fails with a :class:`~clara_hydra.errors.UserError` whose every diagnostic names
its file and JSON path; never another exception. Then one test per class: nesting depth, quoting, non-finite
bounds, empty configs, nameless slots, nested searches, ``null`` choices, misspelt keys, duplicate keys, long values.
"""

from __future__ import annotations

import copy
import json
import math
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf

from clara_hydra.convert import Document, convert_documents, write_tree
from clara_hydra.convert.jsonload import MAX_DEPTH
from clara_hydra.errors import ConfigError, InputFileError, Level
from clara_hydra.sweeper.grammar import param_from_override, parse_override

REPO = Path(__file__).resolve().parents[2]
BASE_FILE = Path(__file__).resolve().parent / "errors" / "ok_alias-identical-twice.json"
BASE: dict[str, Any] = json.loads(BASE_FILE.read_text())
NAME = "config_train.json"
# Unicode of every kind, lone surrogates (category Cs) and U+2028/U+2029 included.
ANY_TEXT = st.text(st.characters(blacklist_categories=()), min_size=1, max_size=30)
LONG_KEYS = st.builds(lambda c, n: c * n, st.sampled_from("kéZ"), st.integers(1000, 1100))


def convert(doc: Any = None, text: bytes | None = None) -> Any:
    data = text if text is not None else json.dumps(doc).encode()
    return convert_documents(Document(NAME, data))


def config_yaml(conv: Any) -> DictConfig:
    cfg = OmegaConf.create(conv.files["config.yaml"])
    assert isinstance(cfg, DictConfig)
    return cfg


def _carried_verbatim(value: Any) -> bool:
    """First-level values the lowering keeps as they are (no {VAR}, @ref or #expression meaning)."""
    if isinstance(value, str):
        return not value.startswith(("@", "#")) and "{" not in value and value != "???"
    return not isinstance(value, float) or math.isfinite(value)


def _check_outcome(doc: Any = None, text: bytes | None = None) -> Any:
    """Convert; a conversion must read back, an error must be located. Returns the conversion or None."""
    try:
        conv = convert(doc, text)
    except ConfigError as exc:
        assert exc.diagnostics
        for d in exc.diagnostics:
            assert d.file == NAME and d.json_path, d.render()
        assert len(str(exc)) < 20_000  # long values are cut
        return None
    except InputFileError as exc:
        assert NAME in str(exc)
        return None
    for rel, text_ in conv.files.items():
        if rel.endswith(".yaml"):
            assert isinstance(OmegaConf.create(text_), DictConfig), rel
    if isinstance(doc, dict):
        cfg = config_yaml(conv)
        for key, value in doc.items():
            if key in conv.config.first_level and _carried_verbatim(value) and not isinstance(value, (dict, list)):
                got = cfg[key]
                assert type(got) is type(value) and got == value, (key, value, got)
    return conv


# -- the property: every input class of item 5 ----------------------------------------------------------------------
def _deep(depth: int, as_list: bool) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value] if as_list else {"a": value}
    return value


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    parent: Any = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return doc


SLOTS = ["loss", "optimizer", "model", "lr_scheduler", "lr_policy", "image_pipeline", "handlers", "key_metric", "other"]
NESTED_SEARCH = {
    "name": "RandomOrder",
    "args": {
        "transforms": [
            {
                "name": "RandFlipd",
                "args": {"keys": ["image"], "prob": 0.5},
                "search": [{"domain": "transform", "type": "float", "args": ["prob"], "targets": [0.1, 0.9]}],
            }
        ]
    },
}

documents = st.one_of(
    # nesting depth around and far beyond the bound, in a first-level value and in a component's args
    st.builds(lambda d, lst: _with(("notes",), _deep(d, lst)), st.integers(1, 3 * MAX_DEPTH), st.booleans()),
    st.builds(
        lambda d, lst: _with(("train", "model", "args", "norm"), _deep(d, lst)), st.integers(1, 500), st.booleans()
    ),
    # any text as a first-level key and value; long keys
    st.builds(lambda k, v: _with((k,), v), ANY_TEXT | LONG_KEYS, ANY_TEXT | st.floats() | st.integers() | st.none()),
    # non-finite or odd bounds
    st.builds(
        lambda lo, hi: _with(("search", 0, "targets"), [lo, hi]),
        st.floats() | st.integers(-3, 3),
        st.floats() | st.integers(-3, 3),
    ),
    # empty and non-object documents
    st.sampled_from([{}, [], None, 3, "text", {"epochs": 1}, {"train": {}}, {"train": {}, "validate": {}}]),
    # a slot without name, or a scalar, under a known, 3.x or unknown slot name
    st.builds(
        lambda slot, v: _with(("train", slot), v),
        st.sampled_from(SLOTS),
        st.sampled_from([{"args": {"step_size": 1}}, {"search": []}, 5, "StepLR", None, [], [{"args": {}}], {}]),
    ),
    # a nested search, at the end of the transforms
    st.builds(lambda i: _with(("train", "pre_transforms", i), NESTED_SEARCH), st.integers(0, 3)),
    # null among enum choices
    st.builds(
        lambda choices: _with(("train", "model", "search", 0, "targets"), choices),
        st.lists(st.sampled_from([[None], [[8, 16, 32, 64, 128]], [[None, 1]], [{"a": None}]]), min_size=1, max_size=3),
    ),
    # misspelt structural keys
    st.builds(
        lambda key: _with(("train", "model"), {key: "UNet", "args": {"spatial_dims": 3}}),
        st.sampled_from(["Name", "nmae", "names", "NAME", "nam"]),
    ),
    st.builds(
        lambda key: _with(("train", "loss"), {"name": "DiceLoss", key: {"softmax": True}}),
        st.sampled_from(["Args", "arg", "ARGS", "argss", "serach", "Search", "aply", "Apply"]),
    ),
    # a long value where a message may quote it
    st.builds(
        lambda where, n: _with(where, "x" * n),
        st.sampled_from([("train", "model", "name"), ("search", 0, "type"), ("train", "model", "disabled")]),
        st.integers(10_000, 200_000),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(documents)
def test_generated_inputs_convert_and_read_back_or_fail_located(doc: Any) -> None:
    _check_outcome(doc)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["epochs", "learning_rate", "amp"]), st.integers(2, 4))
def test_duplicate_keys_are_warned_once_each(key: str, times: int) -> None:
    text = json.dumps(BASE, indent=1)
    first = f'"{key}": {json.dumps(BASE[key])}'
    text = text.replace(first, ", ".join([first] * times), 1)
    conv = _check_outcome(text=text.encode())
    hits = [d for d in conv.diagnostics if d.rule == "duplicate-key"]
    assert [(d.json_path, d.level) for d in hits] == [(key, Level.WARNING)]
    assert f"`{key}`: key '{key}' is written more than once" in conv.report


# -- one test per class -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 950, 5_000, 200_000])
def test_deep_nesting_is_a_located_error_never_a_recursion_error(depth: int) -> None:
    text = '{"train": {"model": {"name": "UNet", "args": {"norm": ' + "[" * depth + "]" * depth + "}}}}"
    with pytest.raises(ConfigError) as info:
        convert(text=text.encode())
    (diag,) = info.value.diagnostics
    # Where it happens, whether the parsed value is walked or (deeper than Python's json reads) the text scanned.
    assert diag.rule == "too-deep" and diag.json_path == "train.model.args.norm" + "[0]" * (MAX_DEPTH - 4)
    assert "levels" in diag.message and diag.fix


def test_the_bound_leaves_real_configs_room() -> None:
    conv = convert(_with(("train", "model", "args", "norm"), _deep(MAX_DEPTH - 6, True)))
    assert conv.files["config.yaml"]


STRINGS = [
    "é",
    "naïve ü ñ 中文 🙂",
    "a\u2028b",
    "a\u2029b",
    "x\ud800y",
    "\udfff",
    "\x85",
    "\ufeffbom",
    "tab\there",
    "new\nline",
    "1e-5",
    "1E5",
    "1_000",
    ".5",
    "0x1F",
    "true",
    "yes",
    "off",
    "null",
    "~",
    "nan",
    "-.inf",
    "1:2",
    "a: b",
    "a #b",
    "- x",
    "? x",
    "'quoted'",
    '"dq"',
    "back\\slash",
    "C:\\dir\\",
    "  padded ",
    "",
]


@pytest.mark.parametrize("text", STRINGS, ids=[ascii(s)[:20] for s in STRINGS])
def test_every_string_reads_back_through_omegaconf(text: str) -> None:
    conv = convert(_with(("note",), text))
    assert config_yaml(conv)["note"] == text
    assert isinstance(config_yaml(conv)["note"], str)


@pytest.mark.parametrize("key", ["k" * 1100, "é" * 1030, "x\ud800", "a\u2028b", "1e-5", "true", "a.b", "key: x"])
def test_every_key_reads_back(key: str) -> None:
    conv = convert(_with((key,), 1))
    assert key in config_yaml(conv) and config_yaml(conv)[key] == 1


def test_a_lone_surrogate_is_written_and_reported(tmp_path: Path) -> None:
    doc = _with(("note",), "x\ud800y")
    doc["train"]["model"]["x\udfff"] = 1  # reported as an unknown key: the report quotes it
    conv = convert(doc)
    write_tree(conv.files, tmp_path)
    assert OmegaConf.load(tmp_path / "config.yaml")["note"] == "x\ud800y"
    assert "\\udfff" in (tmp_path / "conversion_report.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("bounds", ["[0.0001, NaN]", "[NaN, 1]", "[0, Infinity]", "[-Infinity, 1]"])
def test_non_finite_bounds_are_errors(bounds: str) -> None:
    text = json.dumps(BASE).replace('"targets": [0.0001, 0.001]', f'"targets": {bounds}', 1)
    assert bounds in text
    with pytest.raises(ConfigError) as info:
        convert(text=text.encode())
    assert [(d.rule, d.json_path) for d in info.value.diagnostics if d.level is Level.ERROR] == [
        ("float-bounds", "search[0].targets")
    ]
    assert "finite" in str(info.value)


def test_a_nan_enum_choice_is_an_error() -> None:
    doc = _with(("train", "model", "search", 1, "targets"), [[2], [float("nan")]])
    with pytest.raises(ConfigError, match=r"enum-targets.*train\.model\.search\[1\]\.targets\[1\]"):
        convert(doc)


@pytest.mark.parametrize("doc", [{}, {"epochs": 3, "multi_gpu": False}], ids=["empty", "only-parameters"])
def test_a_config_without_components_is_an_error(doc: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        convert(doc)
    assert [d.rule for d in info.value.diagnostics] == ["no-components"]


@pytest.mark.parametrize(
    ("slot", "value", "rule"),
    [
        ("lr_policy", {"args": {"step_size": 10}}, "missing-name"),  # 3.x slot, no name
        ("lr_scheduler", {"args": {"step_size": 10}}, "missing-name"),
        ("my_scheduler", {"args": {"step_size": 10}}, "missing-name"),  # unknown slot name, component-shaped
        ("lr_scheduler", 5, "bad-component"),
        ("lr_policy", "StepLR", "bad-component"),
        ("image_pipeline", None, "bad-component"),
    ],
)
def test_a_slot_without_a_component_is_an_error(slot: str, value: Any, rule: str) -> None:
    with pytest.raises(ConfigError) as info:
        convert(_with(("train", slot), value))
    assert [(d.rule, d.json_path) for d in info.value.diagnostics if d.level is Level.ERROR] == [
        (rule, f"train.{slot}")
    ]


def test_an_unknown_plain_value_in_a_section_is_kept_and_reported() -> None:
    conv = convert(_with(("train", "notes"), "kept"))
    assert config_yaml(conv).train.notes == "kept"
    assert [d.json_path for d in conv.diagnostics if d.rule == "not-a-slot"] == ["train.notes"]
    assert "`train.notes`" in conv.report


@pytest.mark.parametrize(("key", "hint"), [("Args", "'args'"), ("serach", "'search'"), ("Name", "'name'")])
def test_misspelt_structural_keys_are_errors_with_did_you_mean(key: str, hint: str) -> None:
    comp = {"name": "DiceLoss", "args": {"softmax": True}}
    comp[key] = comp.pop(key.lower()) if key.lower() in comp else []
    with pytest.raises(ConfigError) as info:
        convert(_with(("train", "loss"), comp))
    errors = [d for d in info.value.diagnostics if d.level is Level.ERROR]
    assert [(d.rule, d.json_path) for d in errors] == [("misspelled-key", f"train.loss.{key}")]
    assert f"did you mean {hint}?" in errors[0].fix


def test_other_unknown_keys_stay_warnings() -> None:
    conv = convert(_with(("train", "loss"), {"name": "DiceLoss", "comment_here": 1}))
    assert [(d.rule, d.level) for d in conv.diagnostics if d.json_path == "train.loss.comment_here"] == [
        ("unknown-key", Level.WARNING)
    ]


@pytest.mark.parametrize("container", ["RandomOrder", "OneOf"])
def test_a_search_inside_a_nested_component_is_carried(container: str, tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    nested = copy.deepcopy(NESTED_SEARCH)
    nested["name"] = container
    doc["train"]["pre_transforms"].append(nested)
    where = f"train.pre_transforms[{len(doc['train']['pre_transforms']) - 1}].args.transforms[0]"
    conv = convert(doc)
    key = snake = re.sub(r"(?<!^)(?=[A-Z])", "_", container).lower()
    cfg = config_yaml(conv)
    node = cfg.train.pre_transforms[snake].transforms[0]
    assert OmegaConf.to_container(node)["prob"] == "${prob}"  # type: ignore[index]
    assert cfg.hydra.sweeper.params.prob == "interval(0.1, 0.9)"
    assert conv.plan.bindings[(where, "prob")] == "prob"
    write_tree(conv.files, tmp_path)
    with initialize_config_dir(config_dir=str(tmp_path), version_base=None):
        composed = compose("config", overrides=["prob=0.3"])
    assert composed.train.pre_transforms[key].transforms[0].prob == 0.3


def test_a_null_choice_is_a_config_group_hydra_and_the_sweeper_accept(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    crop = {
        "name": "RandSpatialCropd",
        "args": {"keys": ["image", "label"], "roi_size": [96, 96, 96], "max_roi_size": None},
        "search": [
            {"domain": "transform", "type": "enum", "args": ["max_roi_size"], "targets": [[None], [[96, 96, 96]]]}
        ],
    }
    doc["train"]["pre_transforms"].append(crop)
    conv = convert(doc)
    cfg = config_yaml(conv)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    assert isinstance(params, dict) and params["max_roi_size_choice"] == "choice(none, v96x96x96)"
    for name, text in params.items():  # every dimension parses as our sweeper parses it
        param_from_override(parse_override(f"{name}={text}", "test"), "test")
    write_tree(conv.files, tmp_path)
    for option, expected in (("none", None), ("v96x96x96", [96, 96, 96])):
        with initialize_config_dir(config_dir=str(tmp_path), version_base=None):
            composed = compose("config", overrides=[f"max_roi_size_choice={option}"])
        assert OmegaConf.to_container(composed)["max_roi_size"] == expected
        assert OmegaConf.to_container(composed.train.pre_transforms.rand_spatial_cropd)["max_roi_size"] == (
            "${max_roi_size}"
        )


def test_null_inside_a_list_choice_stays_a_plain_choice() -> None:
    doc = _with(("train", "model", "search", 0, "targets"), [[[None, 1]], [[2, 3]]])
    params = config_yaml(convert(doc)).hydra.sweeper.params
    assert params.channels == "choice([null, 1], [2, 3])"


def test_long_values_are_cut_in_messages() -> None:
    huge = "UNet" + "x" * 5_000_000
    doc = _with(("train", "model", "search", 1, "type"), huge)
    with pytest.raises(ConfigError) as info:
        convert(doc)
    assert len(str(info.value)) < 5_000
    assert "characters" in str(info.value)


def test_cli_exit_code_2_for_generated_inputs(tmp_path: Path) -> None:
    cases = {
        "deep.json": b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "empty.json": b"{}",
        "cesu8.json": b'{"train": {"model": {"name": "UNet\xed\xa0\x80"}}}',
        "huge_bound.json": b'{"search": [{"domain": "lr", "type": "float", "args": ["learning_rate"], "targets": [0, 1'
        + b"0" * 400
        + b']}], "learning_rate": 0.1, "train": {"model": {"name": "UNet"}}}',
    }
    for name, text in cases.items():
        (tmp_path / name).write_bytes(text)
        proc = subprocess.run(
            [sys.executable, "-m", "clara_hydra.cli", "convert", str(tmp_path / name), "-o", str(tmp_path / "out")],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and name in proc.stderr


def test_yaml_scalars_are_checked_with_omegaconfs_loader() -> None:
    # PyYAML alone reads 1e-5 as a string; OmegaConf reads it as a float: it must be quoted.
    assert yaml.safe_load("k: 1e-5") == {"k": "1e-5"}
    text = convert(_with(("note",), "1e-5")).files["config.yaml"]
    assert 'note: "1e-5"' in text


def test_a_variable_used_only_by_a_first_level_value_is_declared() -> None:
    doc = _with(("note",), "{MY_ROOT}/x")
    conv = convert(doc)
    assert "MY_ROOT" in conv.required
    cfg = config_yaml(conv)
    cfg.MY_ROOT = "/d"
    assert cfg.note == "/d/x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${x}", "$X"),  # Clara substituted {x}: the '$' before it is text
        ("\\{x}", "\\X"),  # a backslash before a variable stays a backslash
        ("\\${x}", "\\$X"),
        ("${", "${"),  # no variable: OmegaConf must not see an interpolation
        ("${1}", "${1}"),
        ("a\\${", "a\\${"),
        ("{x}{x}", "XX"),
    ],
)
def test_clara_variables_become_interpolations_and_the_rest_stays_text(text: str, expected: str) -> None:
    conv = convert_documents(Document(NAME, json.dumps(_with(("note",), text)).encode()), sets={"x": "X"})
    assert config_yaml(conv)["note"] == expected


def test_environment_values_are_text_not_interpolations() -> None:
    doc = _with(("note",), "{ROOT}/x")
    env = Document("environment.json", json.dumps({"ROOT": "/d/${HOME}"}).encode())
    conv = convert_documents(Document(NAME, json.dumps(doc).encode()), env)
    assert config_yaml(conv)["note"] == "/d/${HOME}/x"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_TEXT.filter(lambda k: not k.startswith(("_", "/"))) | LONG_KEYS, ANY_TEXT | st.floats(allow_nan=False))
def test_any_text_composes_with_hydra_to_itself(key: str, value: Any) -> None:
    """What Hydra composes (``python train.py``) holds the value as written, for any key and text."""
    doc = _with((key,), value)
    conv = _check_outcome(doc)
    if conv is None or key not in conv.config.first_level or not _carried_verbatim(value):
        return
    with tempfile.TemporaryDirectory() as tmp:
        write_tree(conv.files, tmp)
        with initialize_config_dir(config_dir=tmp, version_base=None):
            composed = compose("config")
    got = composed[key]
    assert type(got) is type(value) and got == value
