"""Build the Optuna sampler and pruner from their config nodes, and check the directions.

A ``null`` argument means "Optuna's default" and is dropped before the call, so the installed Optuna
(4.x or 5.x) keeps its own defaults; TPE's ``constant_liar`` (False in 4, True in 5) and
``multivariate`` (False in 4, None in 5) differ between the two.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from clara_hydra.errors import SweepError, with_fix
from clara_hydra.targets import Permissions

if TYPE_CHECKING:
    import optuna

    from clara_hydra.sweeper.space import SearchSpace

DIRECTIONS = ("minimize", "maximize")
_ALIASES = {"min": "minimize", "max": "maximize"}
OPTUNA: tuple[str, ...] = ("optuna",)  # samplers and pruners are Optuna's, plus what the user allows
_USER_ALLOW: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("clara_hydra_sweep_allow", default=())


@contextlib.contextmanager
def user_allowed(entries: Iterable[Any] | None) -> Iterator[None]:
    """Within the block, sampler and pruner targets may also come from ``entries`` (the user's ``_allow_``).

    The plugin sets it from the composed config's top-level ``_allow_`` (command line or top config).
    """
    token = _USER_ALLOW.set(tuple(str(e) for e in (entries or [])))
    try:
        yield
    finally:
        _USER_ALLOW.reset(token)


def check_targets(node: Any, what: str, permissions: Permissions | None = None) -> None:
    """Refuse every ``_target_`` in ``node`` (nested ones too) that is not Optuna's or allowed by the user.

    Args:
        node: a plain sampler or pruner node.
        what: its config key (``hydra.sweeper.sampler``).
        permissions: default: Optuna's packages plus the user's ``_allow_`` (:func:`user_allowed`).

    Raises:
        RefusedTargetError: a target outside them; nothing has been called.
    """
    permissions = permissions or Permissions.of(_USER_ALLOW.get(), base=OPTUNA)
    if isinstance(node, Mapping):
        for key, value in node.items():
            where = f"{what}.{key}"
            if key == "_target_":
                permissions.locate(str(value), where)
            else:
                check_targets(value, where, permissions)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            check_targets(value, f"{what}[{i}]", permissions)


def drop_nulls(node: Any) -> Any:
    """A plain copy of a config node without its ``None`` values (recursively for nested nodes).

    Args:
        node: a DictConfig, a mapping or any value.

    Returns:
        The same data as plain containers, ``None``-valued keys removed.
    """
    if isinstance(node, (DictConfig, ListConfig)):
        node = OmegaConf.to_container(node, resolve=True)
    if isinstance(node, Mapping):
        return {k: drop_nulls(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [drop_nulls(v) for v in node]
    return node


def instantiate_dropping_nulls(node: Any, what: str, **extra: Any) -> Any:
    """``hydra.utils.instantiate`` of a ``_target_`` node whose ``None`` arguments are left to Optuna.

    Args:
        node: the sampler or pruner node.
        what: its config key, for messages (``hydra.sweeper.sampler``).
        **extra: arguments computed at run time (the grid sampler's ``search_space``).

    Returns:
        The built object.

    Raises:
        SweepError: the node cannot be built (unknown argument, missing package such as ``cmaes``).
        RefusedTargetError: a ``_target_`` that is not Optuna's nor allowed by the user (see :func:`check_targets`).
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    plain = drop_nulls(node)
    if not isinstance(plain, dict) or "_target_" not in plain:
        raise SweepError(f"{what}: expected a node with _target_, got {plain!r}")
    try:
        check_targets(plain, what)
    except ImportError as exc:
        raise SweepError(f"{what}: cannot import _target_ {plain['_target_']!r}: {exc}") from exc
    plain.update(extra)
    try:
        return instantiate(plain, _convert_="all")
    except (InstantiationException, ImportError, TypeError, ValueError) as exc:
        cause = exc.__cause__ or exc
        hint = " (the cmaes sampler needs: pip install cmaes)" if "cmaes" in str(cause) else ""
        raise SweepError(f"{what}: cannot build {plain['_target_']}: {cause}{hint}") from exc


def build_sampler(node: Any, space: SearchSpace, seed_offset: int = 0) -> optuna.samplers.BaseSampler:
    """The study's sampler; the grid sampler gets the space's grid.

    Args:
        node: ``hydra.sweeper.sampler``.
        space: the search space.
        seed_offset: added to a configured seed on resume, so a seeded sampler does not replay the
            suggestions of the first run (which would all be duplicates).

    Returns:
        The sampler.
    """
    extra: dict[str, Any] = {}
    seed = OmegaConf.select(node, "seed", default=None) if isinstance(node, DictConfig) else None
    if seed is not None and seed_offset:
        extra["seed"] = int(seed) + seed_offset
    if is_grid(node):
        extra["search_space"] = space.grid()
    sampler: optuna.samplers.BaseSampler = instantiate_dropping_nulls(node, "hydra.sweeper.sampler", **extra)
    return sampler


def build_pruner(node: Any) -> optuna.pruners.BasePruner:
    """The study's pruner (``patient``'s nested ``wrapped_pruner`` is built too)."""
    if node is None:
        import optuna

        return optuna.pruners.NopPruner()
    pruner: optuna.pruners.BasePruner = instantiate_dropping_nulls(node, "hydra.sweeper.pruner")
    return pruner


def is_grid(node: Any) -> bool:
    """Whether a sampler node is Optuna's grid sampler."""
    target = OmegaConf.select(node, "_target_", default="") if isinstance(node, DictConfig) else ""
    return str(target).rsplit(".", 1)[-1] == "GridSampler"


def parse_directions(direction: Any) -> list[str]:
    """``minimize``/``maximize`` (or a list of them, for multi-objective studies) as Optuna takes them.

    Args:
        direction: ``hydra.sweeper.direction``: a string, an upstream ``Direction`` enum, or a list.

    Returns:
        The list of directions.

    Raises:
        SweepError: an unknown direction.
    """
    if isinstance(direction, ListConfig):
        direction = OmegaConf.to_container(direction)
    items = direction if isinstance(direction, (list, tuple)) else [direction]
    result = []
    for item in items:
        name = str(getattr(item, "name", item)).lower()
        name = _ALIASES.get(name, name)
        if name not in DIRECTIONS:
            raise SweepError(
                with_fix(
                    f"hydra.sweeper.direction: unknown direction {item!r}",
                    "minimize or maximize, or a list of them for a multi-objective study",
                )
            )
        result.append(name)
    if not result:
        raise SweepError(with_fix("hydra.sweeper.direction: empty list", "minimize or maximize"))
    return result
