"""Round trip: search dimensions emitted as sweep strings and parsed back with Hydra's own override parser.

Random float bounds and enum choices (numbers, strings, booleans, lists) must come back with the same bounds and
the same choices, so the emitted ``hydra.sweeper.params`` say exactly what the Clara search said.
"""

from __future__ import annotations

from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep
from hypothesis import given, settings
from hypothesis import strategies as st

from clara_hydra.convert.alternatives import option_name
from clara_hydra.convert.emit import sweep_expression
from clara_hydra.convert.search import Dimension

PARSER = OverridesParser.create()

finite = st.floats(allow_nan=False, allow_infinity=False, width=64, min_value=-1e12, max_value=1e12)
words = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=12).filter(
    lambda s: s == s.strip()
)
scalars = st.one_of(st.integers(-(10**6), 10**6), finite, st.booleans(), words)
values = st.one_of(scalars, st.lists(st.integers(1, 512), min_size=1, max_size=5))


def _parse(key: str, expression: str) -> Any:
    return PARSER.parse_override(f"{key}={expression}").value()


@settings(max_examples=150, deadline=None)
@given(finite, finite)
def test_float_dimension_round_trips(a: float, b: float) -> None:
    lo, hi = min(a, b), max(a, b)
    sweep = _parse("x", sweep_expression(Dimension("search[0]", "float", ("x",), (lo, hi)), None))
    assert isinstance(sweep, IntervalSweep)
    assert (sweep.start, sweep.end) == (lo, hi)


@settings(max_examples=150, deadline=None)
@given(st.lists(values, min_size=1, max_size=6, unique_by=repr))
def test_enum_dimension_round_trips(choices: list[Any]) -> None:
    targets = tuple((c,) for c in choices)
    sweep = _parse("x", sweep_expression(Dimension("search[0]", "enum", ("x",), targets), None))
    assert isinstance(sweep, ChoiceSweep)
    assert list(sweep.list) == choices


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(-500, 500), st.integers(-500, 500)), min_size=1, max_size=5, unique=True))
def test_joint_options_are_valid_override_names(choices: list[tuple[int, int]]) -> None:
    names = [option_name(c) for c in choices]
    assert len(set(names)) == len(names)
    for name in names:
        assert _parse("group", name) == name  # an option name reads back as that string, never a number or bool
