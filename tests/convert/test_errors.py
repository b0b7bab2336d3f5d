"""The table of malformed Clara inputs (issue 2, "Checks"; DESIGN.md "Tables of cases", "Errors carry locations").

Every file in ``tests/convert/errors/`` is a small but realistic Clara 4.1 ``config_train.json``: a trimmed copy of
the seed example (``tests/data/clara_examples/seed_full_automl_example.json``) with one thing wrong, or several for
the "collect all problems" cases. Files are named for the rule they break:

- ``error_<rule>[_<variant>].json``: conversion must fail with :class:`~clara_hydra.errors.ConfigError` (or
  :class:`~clara_hydra.errors.InputFileError` for unreadable input); on the command line: exit code 2, no traceback.
- ``warning_<rule>[_<variant>].json``: conversion succeeds and reports a warning (legacy forms, unknown domain).
- ``ok_<rule>.json``: looks suspicious but is valid (an alias defined twice identically); it converts.

``ERRORS`` is the one table: ``(file, expected error rules, JSON path of the first rule's diagnostic, fragment)``.
The set of error-level rules reported must equal the expected rules (no missing check, no cascade of secondary
errors), and one diagnostic of the first rule must sit at that JSON path and contain the fragment (values seen,
did-you-mean or fix) in its message or fix. A file may have several rows, one per fragment. Rows marked
``xfail(strict=True)`` would mark known converter gaps (none today).

Most rows run in-process through :func:`clara_hydra.convert.convert_path` (each file converted once, cached);
``CLI_CASES`` runs a few through ``tools/convert_clara.py`` in a subprocess to check what a user sees: exit code 2,
the file name, the JSON path, ``error[<rule>]``, the fragment, and no ``Traceback``.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from clara_hydra.convert import convert_path
from clara_hydra.errors import ConfigError, Diagnostic, InputFileError, Level

REPO = Path(__file__).resolve().parents[2]
ERRORS_DIR = Path(__file__).resolve().parent / "errors"
CLI = REPO / "tools" / "convert_clara.py"


P = "train.pre_transforms"

# (file, expected error rules, JSON path of the first rule's diagnostic, fragment of its message or fix)
_ROWS = [
    # float searches
    ("error_float-bounds.json", ("float-bounds",), "search[0].targets", "got min=0.001 max=0.0001"),
    ("error_float-bounds.json", ("float-bounds",), "search[0].targets", "swap the bounds"),
    pytest.param(
        "error_float-bounds_aliased.json",
        ("float-bounds",),
        f"{P}[3].search[0].targets",
        "got min=0.9 max=0.1",
    ),
    ("error_float-targets.json", ("float-targets",), "search[0].targets", "got [0.0001]"),
    ("error_float-targets_not_numbers.json", ("float-targets",), "search[0].targets", '["1e-4", "1e-3"]'),
    pytest.param(
        "error_float-targets_aliased.json",
        ("float-targets",),
        f"{P}[3].search[0].targets",
        "got [0, 0.5, 1]",
    ),
    ("error_float-disabled.json", ("float-disabled",), f"{P}[5].search[0].targets", "enum of booleans"),
    # enum searches
    ("error_enum-arity.json", ("enum-arity",), f"{P}[2].search[0].targets[1]", "1 value(s) for 2 arg(s)"),
    ("error_enum-arity.json", ("enum-arity",), f"{P}[2].search[0].targets[1]", "[-60]"),
    (
        "error_enum-arity_list_value_missing_bracket.json",
        ("enum-arity",),
        "train.model.search[0].targets[0]",
        "one more bracket",
    ),
    ("error_enum-targets.json", ("enum-targets",), "train.model.search[1].targets", "got []"),
    # shape of search entries
    ("error_bad-search-type.json", ("bad-search-type",), "train.model.search[1].type", "got 'int'"),
    ("error_bad-search-type.json", ("bad-search-type",), "train.model.search[1].type", 'searched with "enum"'),
    ("error_bad-search-args.json", ("bad-search-args",), "train.model.search[1].args", "got []"),
    ("error_bad-search-args_not_string.json", ("bad-search-args",), "train.model.search[1].args", "got [3]"),
    ("error_bad-search.json", ("bad-search",), "train.model.search", "got an object"),
    ("error_duplicate-search-arg.json", ("duplicate-search-arg",), f"{P}[2].search[0].args", "['a_min', 'a_min']"),
    ("error_unknown-search-arg.json", ("unknown-search-arg",), "train.model.search[1].args[0]", "'num_res_units'"),
    ("error_searched-twice.json", ("searched-twice",), "search[1].args[0]", "search[0] and search[1]"),
    # aliases
    (
        "error_bad-alias.json",
        # the alias 'myProb' is really not defined any more, so the apply site is reported as well
        ("bad-alias", "unknown-apply-name"),
        f"{P}[3].search[0].args[0]",
        "'prob#'",
    ),
    ("error_alias-redefined.json", ("alias-redefined",), f"{P}[4].search[0].args[0]", "float [0, 0.5]"),
    ("error_alias-redefined.json", ("alias-redefined",), f"{P}[4].search[0].args[0]", f"{P}[3].search[0]"),
    ("error_alias-shadows-parameter.json", ("alias-shadows-parameter",), f"{P}[3].search[0].args[0]", "'epochs'"),
    # apply
    ("error_unknown-apply-name.json", ("unknown-apply-name",), f"{P}[4].apply.prob", "did you mean 'myProb'?"),
    ("error_unknown-apply-target.json", ("unknown-apply-target",), f"{P}[4].apply.probability", "RandGaussianNoised"),
    pytest.param(
        "error_unknown-apply-target.json",
        ("unknown-apply-target",),
        f"{P}[4].apply.probability",
        "did you mean 'prob'",
    ),
    ("error_apply-conflict.json", ("apply-conflict",), f"{P}[4].apply.prob", "both searched and applied"),
    ("error_bad-apply.json", ("bad-apply",), f"{P}[4].apply", 'got "myProb"'),
    # alternatives: exactly one enabled
    ("error_exactly-one-enabled.json", ("exactly-one-enabled",), "train.loss", "got 2 (DiceLoss, FocalLoss)"),
    ("error_exactly-one-enabled.json", ("exactly-one-enabled",), "train.loss", "at the default values"),
    (
        "error_exactly-one-enabled_search_point.json",
        ("exactly-one-enabled",),
        "train.loss",
        "got 0 (none) at mySearchLoss1=true, mySearchLoss2=true",
    ),
    (
        "error_exactly-one-enabled_zero_at_defaults.json",
        ("exactly-one-enabled",),
        "train.loss",
        "got 0 (none) at the default values",
    ),
    # disabled
    ("error_disabled-not-bool.json", ("disabled-not-bool",), f"{P}[3].disabled", "got 'yes'"),
    ("error_disabled-not-bool_enum_choice.json", ("disabled-not-bool",), f"{P}[5].search[0].targets[0]", '"no"'),
    # references
    ("error_dangling-ref.json", ("dangling-ref",), "train.trainer.args.network", "'@modle'"),
    ("error_dangling-ref.json", ("dangling-ref",), "train.trainer.args.network", "did you mean 'model'?"),
    (
        "error_dangling-ref_validate_ref.json",
        ("dangling-ref",),
        "validate.pre_transforms[2].ref",
        "did you mean 'ScaleIntensityRanged'?",
    ),
    ("error_ambiguous-ref.json", ("ambiguous-ref",), "validate.pre_transforms[3].ref", f"{P}[1], {P}[6]"),
    # expressions
    (
        "error_unsupported-expression.json",
        ("unsupported-expression",),
        "train.handlers[1].args.output_transform",
        "#torch.load(open('x'))",
    ),
    (
        "error_unsupported-expression_lambda.json",
        ("unsupported-expression",),
        "validate.handlers[0].args.output_transform",
        "'lambda x: x*2'",
    ),
    (
        "error_unsupported-expression_lambda.json",
        ("unsupported-expression",),
        "validate.handlers[0].args.output_transform",
        "importable function",
    ),
    # classes and arguments, checked against the real signatures
    ("error_unknown-class.json", ("unknown-class",), "train.model", "'UNett'"),
    ("error_unknown-class.json", ("unknown-class",), "train.model", "did you mean 'UNet'"),
    ("error_unknown-argument.json", ("unknown-argument",), "train.model.args.num_res_unit", "'num_res_units'"),
    # component shape
    ("error_missing-name.json", ("missing-name",), f"{P}[2]", "keys seen: ['args']"),
    ("error_bad-args.json", ("bad-args",), f"{P}[1].args", "got a list"),
    # the wrong kind of file
    (
        "error_not-a-training-config_automl.json",
        ("not-a-training-config",),
        "$",
        "--automl",
    ),
    (
        "error_not-a-training-config_environment.json",
        ("not-a-training-config",),
        "$",
        "--env",
    ),
    # collect all problems of a file, report once
    (
        "error_collect-all.json",
        ("float-bounds", "unknown-class", "unknown-apply-target", "dangling-ref", "unsupported-expression"),
        "search[0].targets",
        "swap the bounds",
    ),
    ("error_collect-all_natural_order.json", ("unknown-argument",), f"{P}[2].args.a_mn", "did you mean 'a_min'"),
    # inputs that must never break the converter (issue 10, item 5)
    ("error_too-deep.json", ("too-deep",), "notes" + "[0]" * 63, "more than 64 levels deep"),
    ("error_no-components.json", ("no-components",), "$", "no 'train'/'validate' section"),
    ("error_misspelled-key.json", ("misspelled-key",), "train.model.Args", "did you mean 'args'?"),
    ("error_float-bounds_nan.json", ("float-bounds",), "search[0].targets", "max=nan"),
    ("error_missing-name_3x_slot.json", ("missing-name",), "train.lr_policy", "keys seen: ['args']"),
    ("error_dangling-ref_metric.json", ("dangling-ref",), "validate.key_metric.ref", "'MeanDicee'"),
]


def _with_ids(rows: list[Any]) -> list[Any]:
    """Each row as a pytest.param with a readable id: the file's rule part and a counter."""
    out, seen = [], Counter[str]()
    for row in rows:
        values, marks = (row.values, row.marks) if hasattr(row, "marks") else (row, ())
        stem = values[0].removesuffix(".json").removeprefix("error_")
        seen[stem] += 1
        out.append(pytest.param(*values, marks=marks, id=f"{stem}-{seen[stem]}"))
    return out


ERRORS = _with_ids(_ROWS)

# (file, warning rule, JSON path, fragment): these convert, with a warning
WARNINGS = [
    ("warning_legacy-form_lr_search.json", "legacy-form", "lr_search", "3.x form of a float search on learning_rate"),
    ("warning_legacy-form_args_disabled.json", "legacy-form", f"{P}[5].search[0].args", '"args": "DISABLED"'),
    ("warning_legacy-form_scalar_enum_targets.json", "legacy-form", "train.model.search[1].targets", "lists of one"),
    ("warning_unknown-domain.json", "unknown-domain", "train.model.search[1].domain", "'network'"),
    ("warning_duplicate-key.json", "duplicate-key", "epochs", "the last value wins"),
    ("warning_key-metric_none_marked.json", "key-metric", "validate.metrics", "the first, 'val_mean_dice', is the key"),
    (
        "warning_key-metric_two_marked.json",
        "key-metric",
        "validate.metrics",
        "'val_mean_dice' (the first) is it; val_acc become",
    ),
]


def _case_file(row: object) -> str:
    return str(row.values[0])  # type: ignore[attr-defined]


@functools.cache
def _errors_of(name: str) -> tuple[Diagnostic, ...]:
    """The error diagnostics of one file (converted once per session); fails the test if it converts."""
    path = ERRORS_DIR / name
    with pytest.raises(ConfigError) as info:
        convert_path(str(path))
    for diag in info.value.diagnostics:
        assert diag.file == str(path), diag
    return tuple(d for d in info.value.diagnostics if d.level is Level.ERROR)


@pytest.mark.parametrize(("name", "rules", "json_path", "fragment"), ERRORS)
def test_error_table(name: str, rules: tuple[str, ...], json_path: str, fragment: str) -> None:
    errors = _errors_of(name)
    assert {d.rule for d in errors} == set(rules), [d.render() for d in errors]
    hits = [d for d in errors if d.rule == rules[0] and d.json_path == json_path]
    assert hits, f"no {rules[0]} at {json_path}: {[d.render() for d in errors]}"
    assert any(fragment in f"{d.message}\n{d.fix}" for d in hits), [d.render() for d in hits]


@pytest.mark.parametrize("name", sorted({_case_file(row) for row in ERRORS}))
def test_each_problem_is_reported_once(name: str) -> None:
    """No pass reports what another already did (a dangling ref in a metric slot was reported twice)."""
    counts = Counter((d.rule, d.json_path, d.message) for d in _errors_of(name))
    assert all(n == 1 for n in counts.values()), counts


def test_collect_all_reports_every_problem_sorted_by_location() -> None:
    errors = _errors_of("error_collect-all.json")
    assert [(d.json_path, d.rule) for d in errors] == [
        ("search[0].targets", "float-bounds"),
        ("train.model", "unknown-class"),
        (f"{P}[4].apply.probability", "unknown-apply-target"),
        ("train.trainer.args.network", "dangling-ref"),
        ("validate.handlers[0].args.output_transform", "unsupported-expression"),
    ]


def test_collect_all_sorts_list_indices_as_numbers() -> None:
    errors = _errors_of("error_collect-all_natural_order.json")
    assert [d.json_path for d in errors] == [f"{P}[2].args.a_mn", f"{P}[10].args.key"]


@pytest.mark.parametrize("name", sorted({_case_file(row) for row in ERRORS}))
def test_every_error_says_the_fix(name: str) -> None:
    assert all(d.fix for d in _errors_of(name)), [d.render() for d in _errors_of(name) if not d.fix]


@pytest.mark.parametrize(("name", "rule", "json_path", "fragment"), WARNINGS, ids=[r[0][8:-5] for r in WARNINGS])
def test_warning_table(name: str, rule: str, json_path: str, fragment: str) -> None:
    conv = convert_path(str(ERRORS_DIR / name))
    hits = [d for d in conv.diagnostics if d.rule == rule and d.json_path == json_path]
    assert hits, [(d.rule, d.json_path) for d in conv.diagnostics]
    assert all(d.level is Level.WARNING for d in hits)
    assert any(fragment in f"{d.message}\n{d.fix}" for d in hits), hits
    assert not [d for d in conv.diagnostics if d.level is Level.ERROR]


def test_alias_defined_twice_identically_is_one_dimension() -> None:
    conv = convert_path(str(ERRORS_DIR / "ok_alias-identical-twice.json"))
    assert not [d for d in conv.diagnostics if d.level is not Level.INFO]
    shared = [dim for dim in conv.plan.dimensions if "myProb" in dim.keys]
    assert len(shared) == 1 and shared[0].targets == (0, 1)
    sites = sorted(path for (path, arg), key in conv.plan.bindings.items() if key == "myProb" and arg == "prob")
    assert sites == [f"{P}[3]", f"{P}[4]"]
    assert conv.dimensions == 6  # the same as the seed-derived base, which applies myProb instead


def test_invalid_json_names_line_and_column() -> None:
    with pytest.raises(InputFileError, match=r"error_invalid-json\.json: invalid JSON at line 5 column 15"):
        convert_path(str(ERRORS_DIR / "error_invalid-json.json"))


def test_missing_file() -> None:
    with pytest.raises(InputFileError, match="no such file"):
        convert_path(str(ERRORS_DIR / "no_such_config.json"))


def test_every_file_is_in_a_table() -> None:
    tabled = {_case_file(row) for row in ERRORS} | {row[0] for row in WARNINGS}
    tabled |= {"ok_alias-identical-twice.json", "error_invalid-json.json"}
    assert {p.name for p in ERRORS_DIR.glob("*.json")} == tabled
    assert len([p for p in ERRORS_DIR.glob("error_*.json")]) >= 30


# (file, strings stderr must contain): what a user sees on the command line
CLI_CASES = [
    (
        "error_enum-arity_list_value_missing_bracket.json",
        ["error[enum-arity]", "train.model.search[0].targets[0]", "one more bracket"],
    ),
    (
        "error_collect-all.json",
        [
            "5 error(s)",
            "error[float-bounds]",
            "search[0].targets",
            "error[unknown-class]",
            "did you mean 'UNet'",
            "error[unknown-apply-target]",
            "error[dangling-ref]",
            "error[unsupported-expression]",
            "lambda x: x*2",
        ],
    ),
    ("error_not-a-training-config_automl.json", ["error[not-a-training-config]", "--automl"]),
    ("error_invalid-json.json", ["line 5 column 15", "no trailing commas"]),
    ("no_such_config.json", ["no such file"]),
]


@pytest.mark.parametrize(("name", "expected"), CLI_CASES, ids=[r[0][:-5] for r in CLI_CASES])
def test_cli_exit_code_and_message(name: str, expected: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CLARA_HYDRA_FULL_ERROR"}
    src = ERRORS_DIR / name
    proc = subprocess.run(
        [sys.executable, str(CLI), str(src), "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert str(src) in proc.stderr
    for text in expected:
        assert text in proc.stderr, f"{text!r} not in:\n{proc.stderr}"
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
