"""Hydra's sweep grammar -> Optuna distributions, parsed by Hydra's own override parser.

=======================================  ==========================================================
override                                 Optuna distribution
=======================================  ==========================================================
``x=choice(a, b)`` / ``x=a,b``           ``CategoricalDistribution(("a", "b"))``
``x=choice([16, 32], [8, 16])``          ``CategoricalDistribution(("[16, 32]", "[8, 16]"))``: lists and
                                         dicts become their override text (Optuna choices must be
                                         primitives) and are sent back to the job as that exact text
``x=range(1, 5)``                        ``IntDistribution(1, 4)``: Hydra's end is *exclusive*
``x=range(0, 10, 3)``                    ``IntDistribution(0, 9, step=3)``
``x=range(0.5, 2.0, 0.5)``               ``FloatDistribution(0.5, 1.5, step=0.5)``
``x=shuffle(range(1, 4))``               ``CategoricalDistribution((1, 2, 3))`` (as upstream)
``x=interval(0, 1)``                     ``FloatDistribution(0.0, 1.0)``
``x=int(interval(1, 8))``                ``IntDistribution(1, 8)`` (both ends included)
``x=tag(log, interval(1e-5, 1e-2))``     ``FloatDistribution(1e-05, 0.01, log=True)``
``x=tag(log, int(interval(8, 256)))``    ``IntDistribution(8, 256, log=True)``
``loss=choice(dice_loss, focal_loss)``   a config-group choice: an ordinary ``loss=dice_loss`` override
=======================================  ==========================================================

Anything else that is a sweep (``glob(...)``, unknown tags, an empty range, reversed bounds) is a
:class:`~clara_hydra.errors.SweepError` naming the key, the text, the rule and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from clara_hydra.errors import SweepError, with_fix
from clara_hydra.keywords import Sweep
from clara_hydra.quoting import override_quoted
from clara_hydra.sweeper._optuna_private import override_element_text

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override
    from optuna.distributions import BaseDistribution

# Tags with a meaning for this sweeper; any other tag is most likely a typo (``tag(lgo, ...)``).
KNOWN_TAGS = frozenset({Sweep.LOG})
Primitive = str | int | float | bool | None


@dataclass(frozen=True)
class ParamSpec:
    """One search dimension: an override key and the Optuna distribution of its values.

    Args:
        name: the override key as typed (``lr``, ``+extra``, ``db@pkg``); also the Optuna parameter name.
        key: the config key or group without prefix/package (``extra``, ``db``), to look up defaults.
        distribution: the Optuna distribution.
        source: where the dimension was written and how (for messages).
        encoded: categorical choice value -> exact override text, for list/dict choices.
        elements: categorical choice value -> the parsed element (a list for ``"[16, 32]"``).
    """

    name: str
    key: str
    distribution: BaseDistribution
    source: str
    encoded: Mapping[str, str] = field(default_factory=dict)
    elements: Mapping[Primitive, Any] = field(default_factory=dict)

    def to_text(self, value: Any) -> str:
        """The override text of an Optuna value (``"[16, 32]"`` for an encoded list choice)."""
        if isinstance(value, str) and value in self.encoded:
            return self.encoded[value]
        return format_element(value)

    def override(self, value: Any) -> str:
        """The job override ``name=text`` for an Optuna value."""
        return f"{self.name}={self.to_text(value)}"


def format_element(value: Any) -> str:
    """Format a parsed value as override text that Hydra's parser reads back as the same value.

    Args:
        value: a primitive, list or dict as Hydra's parser produces them.

    Returns:
        The text, e.g. ``0.0003``, ``dice_loss``, ``[16, 32]``, ``'1'`` (a string that looks like a number).
    """
    if isinstance(value, float) and value != value:  # NaN never compares equal: no round-trip check
        return "nan"
    # Containers element by element, so a string inside a list ("0" in ["0"]) keeps its quotes too.
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_element(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{override_element_text(str(k))}: {format_element(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    text = override_element_text(value, space_after_sep=True)  # Hydra's own formatter (_optuna_private)
    if isinstance(value, str) and not _reads_back(text, value):
        text = quote(value)  # e.g. "1" or "true" as strings: unquoted they would parse as int/bool
    return text


def quote(text: str) -> str:
    """Single-quote a string for Hydra's override grammar (:func:`clara_hydra.quoting.override_quoted`)."""
    return override_quoted(text)


def _reads_back(text: str, value: Any) -> bool:
    try:
        parsed = parse_override(f"x={text}", "round-trip check").value()
    except SweepError:
        return False
    return type(parsed) is type(value) and bool(parsed == value)


def parse_override(line: str, where: str) -> Override:
    """Parse one override line with Hydra's own parser.

    Args:
        line: ``key=value`` text.
        where: the place the line came from, for the error message.

    Returns:
        Hydra's parsed :class:`~hydra.core.override_parser.types.Override`.

    Raises:
        SweepError: the line is not valid override grammar.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        return OverridesParser.create().parse_overrides([line])[0]
    except OverrideParseException as exc:
        message = str(exc).splitlines()
        raise SweepError(
            with_fix(
                f"{where}: cannot parse '{line}': {' '.join(m for m in message[1:2] if m) or message[0]}",
                "use Hydra's sweep grammar: choice(a, b), range(start, stop[, step]), interval(low, high), "
                "int(interval(...)), tag(log, interval(...))",
            )
        ) from exc


def param_from_override(override: Override, where: str) -> ParamSpec:
    """Turn a parsed *sweep* override into a :class:`ParamSpec`.

    Args:
        override: a sweep override (``override.is_sweep_override()``).
        where: where it was written (``hydra.sweeper.params.lr`` or ``command line``), for messages.

    Returns:
        The search dimension.

    Raises:
        SweepError: unsupported sweep, unknown tag, empty range, reversed interval, invalid Optuna bounds.
    """
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    value = override.value()
    text = override.input_line or f"{override.get_key_element()}=..."
    name = override.get_key_element()
    key = override.key_or_group
    where = f"{where} '{text}'"
    tags = set(getattr(value, "tags", set()) or set())
    unknown = tags - KNOWN_TAGS
    if unknown:
        raise SweepError(
            with_fix(
                f"{where}: unknown tag(s) {sorted(unknown)}; this sweeper knows only 'log'",
                "write tag(log, interval(low, high)) or drop the tag",
            )
        )
    try:
        if isinstance(value, ChoiceSweep):
            if Sweep.LOG in tags:
                raise SweepError(f"{where}: tag(log, ...) applies to interval(...) or range(...), not to choice(...)")
            return _categorical(name, key, list(value.list), where)
        if isinstance(value, RangeSweep):
            return _range(name, key, value, override, where, log=Sweep.LOG in tags)
        if isinstance(value, IntervalSweep):
            return _interval(name, key, value, where, log=Sweep.LOG in tags)
    except ValueError as exc:  # Optuna's own checks (log with low <= 0, log with a step, ...)
        raise SweepError(f"{where}: {exc}") from exc
    raise SweepError(
        with_fix(
            f"{where}: {type(value).__name__} sweeps are not supported by the Optuna sweeper",
            "list the options with choice(a, b, ...)",
        )
    )


def _categorical(name: str, key: str, items: list[Any], where: str) -> ParamSpec:
    from optuna.distributions import CategoricalDistribution

    choices: list[Primitive] = []
    encoded: dict[str, str] = {}
    elements: dict[Primitive, Any] = {}
    for item in items:
        if isinstance(item, (list, dict)):
            # Optuna stores only primitives: a list choice is kept as its override text, sent back verbatim.
            choice: Primitive = format_element(item)
            assert isinstance(choice, str)
            encoded[choice] = choice
        else:
            choice = item
        if choice in elements and _same(elements[choice], item):
            continue  # choice(a, a): one category
        if choice in elements:
            raise SweepError(
                with_fix(
                    f"{where}: the choices {elements[choice]!r} and {item!r} are equal for Optuna "
                    "(same text, or 1 and true)",
                    "keep one of them, or quote the string one",
                )
            )
        elements[choice] = item
        choices.append(choice)
    return ParamSpec(name, key, CategoricalDistribution(choices), where, encoded, elements)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and bool(a == b)


def _range(name: str, key: str, value: Any, override: Override, where: str, log: bool) -> ParamSpec:
    from optuna.distributions import FloatDistribution, IntDistribution

    values: list[Any] = list(override.sweep_iterator())
    if not values:
        raise SweepError(
            with_fix(
                f"{where}: the range is empty (Hydra's range(start, stop, step) excludes stop)",
                "check the order of start and stop and the sign of step",
            )
        )
    if value.shuffle:  # the values as categories, as upstream does; sorted, because Hydra shuffled them and
        return _categorical(name, key, sorted(values), where)  # a resumed study needs the same choice order
    start, step, n = value.start, value.step, len(values)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in (start, value.stop, step)):
        low, high = int(min(values)), int(max(values))
        if log:
            if abs(step) != 1:
                raise SweepError(f"{where}: tag(log, range(...)) needs step 1; Optuna has no log scale with a step")
            return ParamSpec(name, key, IntDistribution(low, high, log=True), where)
        return ParamSpec(name, key, IntDistribution(low, high, step=abs(step)), where)
    if log:
        raise SweepError(f"{where}: tag(log, ...) on a float range; use tag(log, interval(low, high)) instead")
    # Decimal arithmetic on the written numbers: Hydra's accumulated floats (0.30000000000000004) would
    # make Optuna warn that (high - low) is not a multiple of step.
    d_start, d_step = Decimal(str(start)), Decimal(str(step))
    d_last = d_start + d_step * (n - 1)
    low_d, high_d = min(d_start, d_last), max(d_start, d_last)
    return ParamSpec(name, key, FloatDistribution(float(low_d), float(high_d), step=float(abs(d_step))), where)


def _interval(name: str, key: str, value: Any, where: str, log: bool) -> ParamSpec:
    from optuna.distributions import FloatDistribution, IntDistribution

    start, end = value.start, value.end
    if start > end:
        raise SweepError(
            with_fix(f"{where}: interval needs low <= high, got low={start} high={end}", "swap the bounds")
        )
    if isinstance(start, int) and isinstance(end, int):  # int(interval(...)): both ends included
        return ParamSpec(name, key, IntDistribution(start, end, log=log), where)
    return ParamSpec(name, key, FloatDistribution(float(start), float(end), log=log), where)
