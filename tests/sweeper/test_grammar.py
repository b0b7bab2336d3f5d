"""Hydra's sweep grammar -> Optuna distributions, parsed by Hydra's own override parser."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from clara_hydra.errors import SweepError, UserError
from clara_hydra.sweeper.grammar import ParamSpec, format_element, param_from_override, parse_override


def spec_of(line: str) -> ParamSpec:
    return param_from_override(parse_override(line, "test"), "test")


TABLE: list[tuple[str, Any]] = [
    ("x=choice(a, b)", CategoricalDistribution(["a", "b"])),
    ("x=a,b,c", CategoricalDistribution(["a", "b", "c"])),
    ("lr=1e-4,3e-4", CategoricalDistribution([0.0001, 0.0003])),
    ("x=choice(1, 2, 3)", CategoricalDistribution([1, 2, 3])),
    ("x=choice(true, false)", CategoricalDistribution([True, False])),
    ("x=choice(a, a, b)", CategoricalDistribution(["a", "b"])),
    ("channels=choice([16, 32, 64], [8, 16, 32])", CategoricalDistribution(["[16, 32, 64]", "[8, 16, 32]"])),
    ("x=choice({a: 1}, {a: 2})", CategoricalDistribution(["{a: 1}", "{a: 2}"])),
    ("loss=choice(dice_loss, focal_loss)", CategoricalDistribution(["dice_loss", "focal_loss"])),
    ("x=range(1, 5)", IntDistribution(1, 4)),  # Hydra's end is exclusive: 1, 2, 3, 4
    ("x=range(0, 10, 3)", IntDistribution(0, 9, step=3)),
    ("x=range(0, 11, 5)", IntDistribution(0, 10, step=5)),
    ("x=range(10, 0, -3)", IntDistribution(1, 10, step=3)),
    ("x=range(5)", IntDistribution(0, 4)),
    ("x=range(0.5, 2.0, 0.5)", FloatDistribution(0.5, 1.5, step=0.5)),
    ("x=range(0.1, 1.0, 0.1)", FloatDistribution(0.1, 0.9, step=0.1)),
    ("x=shuffle(range(1, 4))", CategoricalDistribution([1, 2, 3])),
    ("x=tag(log, range(1, 9))", IntDistribution(1, 8, log=True)),
    ("x=interval(0, 1)", FloatDistribution(0.0, 1.0)),
    ("lr=interval(0.0001, 0.001)", FloatDistribution(0.0001, 0.001)),
    ("x=int(interval(1, 8))", IntDistribution(1, 8)),
    ("x=tag(log, interval(1e-5, 1e-2))", FloatDistribution(1e-5, 1e-2, log=True)),
    ("x=tag(log, int(interval(8, 256)))", IntDistribution(8, 256, log=True)),
    ("x=interval(2, 2)", FloatDistribution(2.0, 2.0)),
]


@pytest.mark.parametrize(("line", "expected"), TABLE, ids=[line for line, _ in TABLE])
def test_grammar_table(line: str, expected: Any) -> None:
    assert spec_of(line).distribution == expected


ERRORS: list[tuple[str, str]] = [
    ("x=interval(1, 0)", "interval needs low <= high, got low=1.0 high=0.0"),
    ("x=range(5, 1)", "the range is empty (Hydra's range(start, stop, step) excludes stop)"),
    ("x=tag(lgo, interval(0, 1))", "unknown tag(s) ['lgo']"),
    ("x=tag(log, interval(0, 1))", "low"),  # Optuna: log needs low > 0
    ("x=tag(log, choice(1, 2))", "tag(log, ...) applies to interval(...) or range(...)"),
    ("x=tag(log, range(1, 10, 2))", "needs step 1"),
    ("x=tag(log, range(0.5, 2.0, 0.5))", "use tag(log, interval(low, high)) instead"),
    ("x=glob(*)", "Glob sweeps are not supported"),
    ("x=choice(1, true)", "are equal for Optuna"),
]


@pytest.mark.parametrize(("line", "message"), ERRORS, ids=[line for line, _ in ERRORS])
def test_grammar_errors(line: str, message: str) -> None:
    with pytest.raises(SweepError) as info:
        spec_of(line)
    assert message in str(info.value)
    assert "'" + line + "'" in str(info.value)  # the message shows the offending text
    assert isinstance(info.value, UserError)


def test_unparsable_override_names_its_place() -> None:
    with pytest.raises(SweepError, match=r"hydra.sweeper.params.lr: cannot parse 'lr=interval\(1,'"):
        parse_override("lr=interval(1,", "hydra.sweeper.params.lr")


@pytest.mark.parametrize(
    ("line", "value", "text"),
    [
        ("channels=choice([16, 32], [8, 16])", "[8, 16]", "channels=[8, 16]"),
        ("x=choice({a: 1}, {b: [1, 2]})", "{b: [1, 2]}", "x={b: [1, 2]}"),
        ("lr=1e-4,3e-4", 0.0003, "lr=0.0003"),
        ("loss=choice(dice_loss, focal_loss)", "focal_loss", "loss=focal_loss"),
        ("x=choice('1', 2)", "1", "x='1'"),  # a string that looks like a number stays a string
        ("x=choice('a b', c)", "a b", "x=a\\ b"),
        ("+extra=choice(1, 2)", 2, "+extra=2"),
    ],
)
def test_values_go_back_as_exact_override_text(line: str, value: Any, text: str) -> None:
    spec = spec_of(line)
    override = spec.override(value)
    assert override == text
    reparsed = parse_override(override, "test").value()
    element = spec.elements.get(value, value) if spec.elements else value
    assert reparsed == element and type(reparsed) is type(element)


def test_list_choices_are_hashable_primitives_for_optuna() -> None:
    spec = spec_of("channels=choice([16, 32, 64, 128, 256], [8, 16, 32, 64, 128])")
    assert isinstance(spec.distribution, CategoricalDistribution)
    assert all(isinstance(c, str) for c in spec.distribution.choices)
    assert spec.elements["[8, 16, 32, 64, 128]"] == [8, 16, 32, 64, 128]


# ---------------------------------------------------------------- round-trip properties
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(a=finite, b=finite)
def test_interval_round_trip(a: float, b: float) -> None:
    low, high = min(a, b), max(a, b)
    # The converter writes the bounds with repr(); Hydra's parser must give them back exactly.
    dist = spec_of(f"x=interval({low!r}, {high!r})").distribution
    assert dist == FloatDistribution(low, high)


@settings(max_examples=60, deadline=None)
@given(a=st.integers(-(10**6), 10**6), b=st.integers(-(10**6), 10**6), log=st.booleans())
def test_int_interval_round_trip(a: int, b: int, log: bool) -> None:
    low, high = min(a, b), max(a, b)
    if log:
        low, high = abs(low) + 1, abs(low) + 1 + (high - low)
        dist = spec_of(f"x=tag(log, int(interval({low}, {high})))").distribution
    else:
        dist = spec_of(f"x=int(interval({low}, {high}))").distribution
    assert dist == IntDistribution(low, high, log=log)


elements = st.recursive(
    st.one_of(
        st.integers(-1000, 1000),
        st.floats(allow_nan=False, allow_infinity=False, width=32),
        st.booleans(),
        st.text(alphabet="abcxyz_019 .,-:", min_size=1, max_size=8),
    ),
    lambda inner: st.lists(inner, min_size=1, max_size=3),
    max_leaves=6,
)


@settings(max_examples=80, deadline=None)
@given(choices=st.lists(elements, min_size=1, max_size=4))
def test_choice_round_trip(choices: list[Any]) -> None:
    line = "x=choice(" + ", ".join(format_element(c) for c in choices) + ")"
    try:
        spec = spec_of(line)
    except SweepError as exc:  # only Python-equal choices (1 and true) may be refused
        assert "are equal for Optuna" in str(exc)
        return
    dist = spec.distribution
    assert isinstance(dist, CategoricalDistribution)
    # Every choice comes back as override text that Hydra parses to exactly the original element.
    parsed = [parse_override(spec.override(c), "test").value() for c in dist.choices]
    distinct: list[Any] = []
    for c in choices:
        if not any(_same(c, d) for d in distinct):
            distinct.append(c)
    assert len(parsed) == len(distinct)
    assert all(_same(p, c) for p, c in zip(parsed, distinct, strict=True))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b
