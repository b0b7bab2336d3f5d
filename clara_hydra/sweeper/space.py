"""The search space of a sweep: ``hydra.sweeper.params`` merged with the command line's overrides.

Command-line sweep overrides (``lr=1e-4,3e-4``) add dimensions or replace the configured ones; a
command-line *value* for a searched key (``lr=1e-4``) fixes it and removes the dimension. Every other
command-line override is passed unchanged to every job.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from clara_hydra.errors import SweepError, with_fix
from clara_hydra.sweeper.grammar import ParamSpec, Primitive, format_element, param_from_override, parse_override

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)
_ABSENT = object()


@dataclass
class SearchSpace:
    """The dimensions of a sweep and the overrides every job gets.

    Args:
        params: search dimensions by Optuna parameter name (the override key as typed).
        fixed_overrides: command-line overrides passed unchanged to every job.
    """

    params: dict[str, ParamSpec]
    fixed_overrides: list[str]

    @classmethod
    def from_config(cls, params: Mapping[str, Any] | None, arguments: Sequence[str]) -> SearchSpace:
        """Parse ``hydra.sweeper.params`` and the command-line task overrides.

        Args:
            params: the ``params`` node (key -> sweep text).
            arguments: the command line's task overrides, as Hydra passes them to the sweeper.

        Returns:
            The merged search space.

        Raises:
            SweepError: a value is not valid sweep grammar (the message names the key).
        """
        entries: dict[str, tuple[Any, str]] = {}
        for key, value in (params or {}).items():
            if isinstance(value, (DictConfig, ListConfig)):
                value = OmegaConf.to_container(value)
            text = value if isinstance(value, str) else format_element(value)
            where = f"hydra.sweeper.params.{key}"
            override = parse_override(f"{key}={text}", where)
            entries[override.key_or_group] = (override, where)
        fixed: list[str] = []
        for argument in arguments:
            override = parse_override(argument, "command line override")
            if override.is_sweep_override():
                entries[override.key_or_group] = (override, "command line override")
                continue
            if override.key_or_group in entries:
                log.info("%s is fixed on the command line (%s): not searched", override.key_or_group, argument)
                del entries[override.key_or_group]
            fixed.append(argument)
        dims: dict[str, ParamSpec] = {}
        for override, where in entries.values():
            if not override.is_sweep_override():  # a plain value under params: a fixed override, as upstream
                fixed.append(override.input_line or "")
                continue
            spec = param_from_override(override, where)
            dims[spec.name] = spec
        return cls(dims, fixed)

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """The Optuna distribution of every dimension, by parameter name."""
        return {name: spec.distribution for name, spec in self.params.items()}

    def suggest(self, trial: optuna.Trial, only: Collection[str] | None = None) -> dict[str, Any]:
        """Ask the trial for a value of every dimension (or of those in ``only``) with the public API.

        Args:
            trial: the running trial (enqueued values are returned as they were enqueued).
            only: names to suggest; ``None`` for all.

        Returns:
            Parameter name -> Optuna value.
        """
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        values: dict[str, Any] = {}
        for name, spec in self.params.items():
            if only is not None and name not in only:
                continue
            dist = spec.distribution
            if isinstance(dist, CategoricalDistribution):
                values[name] = trial.suggest_categorical(name, dist.choices)
            elif isinstance(dist, IntDistribution):
                values[name] = trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
            elif isinstance(dist, FloatDistribution):
                values[name] = trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
            else:  # pragma: no cover - the grammar only makes the three kinds above
                raise TypeError(f"unexpected distribution {dist!r}")
        return values

    def overrides(self, values: Mapping[str, Any]) -> list[str]:
        """The job's overrides for these parameter values (after the fixed command-line ones).

        Args:
            values: parameter name -> Optuna value; names outside the space (set by a custom search
                space function) are formatted as plain override values.

        Returns:
            Override strings such as ``["epochs=2", "lr=0.0003", "channels=[16, 32]"]``.
        """
        lines = list(self.fixed_overrides)
        for name, value in values.items():
            spec = self.params.get(name)
            lines.append(spec.override(value) if spec else f"{name}={format_element(value)}")
        return lines

    def grid(self) -> dict[str, list[Primitive]]:
        """Every value of every dimension, for ``optuna.samplers.GridSampler``.

        Raises:
            SweepError: a dimension is continuous (``interval(...)``).
        """
        from optuna.distributions import CategoricalDistribution, IntDistribution

        grid: dict[str, list[Primitive]] = {}
        for name, spec in self.params.items():
            dist = spec.distribution
            if isinstance(dist, CategoricalDistribution):
                grid[name] = list(dist.choices)
            elif isinstance(dist, IntDistribution):
                grid[name] = list(range(dist.low, dist.high + 1, dist.step))
            elif getattr(dist, "step", None) is not None:
                low, step = Decimal(str(dist.low)), Decimal(str(dist.step))  # type: ignore[attr-defined]
                count = int((Decimal(str(dist.high)) - low) / step) + 1  # type: ignore[attr-defined]
                grid[name] = [float(low + step * i) for i in range(count)]
            else:
                raise SweepError(
                    with_fix(
                        f"{spec.source}: the grid sampler needs discrete dimensions, this one is continuous",
                        "use choice(...) or range(...) for it, or another sampler (tpe, random, ...)",
                    )
                )
        if not grid:
            raise SweepError("the grid sampler needs at least one dimension in hydra.sweeper.params")
        return grid

    def baseline(self, cfg: DictConfig) -> dict[str, Any]:
        """The values of the composed defaults, for the dimensions whose default lies in the space.

        A config-group dimension takes the group's default option (``hydra.runtime.choices``); a
        default outside the space (a group whose default is ``null``, a value outside the interval)
        is left out: the baseline job runs with no override for it anyway.

        Args:
            cfg: the sweeper's composed config (defaults plus the fixed command-line overrides).

        Returns:
            Parameter name -> Optuna value, to enqueue as the baseline trial.
        """
        choices = OmegaConf.select(cfg, "hydra.runtime.choices", default=None) or {}
        values: dict[str, Any] = {}
        for name, spec in self.params.items():
            if spec.key in choices:
                default: Any = choices[spec.key]
            else:
                try:
                    node = OmegaConf.select(cfg, spec.key, default=_ABSENT, throw_on_missing=False)
                    if node is _ABSENT or OmegaConf.is_missing(cfg, spec.key):
                        continue
                    default = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
                except Exception:
                    continue
            found = _value_in(spec, default)
            if found is not _ABSENT:
                values[name] = found
            else:
                log.info(
                    "baseline trial: default %s=%r lies outside %s; run without an override", name, default, spec.source
                )
        return values


def _value_in(spec: ParamSpec, default: Any) -> Any:
    """The Optuna value of ``spec`` equal to ``default``, or ``_ABSENT``."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    dist = spec.distribution
    if isinstance(dist, CategoricalDistribution):
        for choice, element in spec.elements.items():
            if _equal(element, default):
                return choice
        return _ABSENT
    if isinstance(default, bool) or not isinstance(default, (int, float)):
        return _ABSENT
    if isinstance(dist, IntDistribution):
        if (
            float(default).is_integer()
            and dist.low <= default <= dist.high
            and (int(default) - dist.low) % dist.step == 0
        ):
            return int(default)
        return _ABSENT
    if isinstance(dist, FloatDistribution) and dist.low <= default <= dist.high:
        if dist.step is not None:
            offset = (Decimal(str(default)) - Decimal(str(dist.low))) / Decimal(str(dist.step))
            if offset != offset.to_integral_value():
                return _ABSENT
        return float(default)
    return _ABSENT


def _equal(a: Any, b: Any) -> bool:
    """Equality that keeps ``True`` and ``1`` apart but lets ``2`` equal ``2.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)
