"""How the builder words its errors: the config key put in front once (Hydra's ``_with_full_key``), a missing
value named with the command that sets it, where an argument's value came from, did-you-mean for a target.

The walk of :mod:`clara_hydra.runtime.build` raises :class:`NodeError` where it has no config key at hand; the one
wrapper, :func:`with_full_key`, around the build of each node turns it into the user error it names, located.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from omegaconf import DictConfig, ListConfig
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from clara_hydra import tree_nodes as tree
from clara_hydra.errors import BuildError, UserError, shorten, suggest

__all__ = ["NodeError", "did_you_mean", "join_key", "missing", "sources", "value_error", "with_full_key"]

_MISSING_KEY = re.compile(r"Missing mandatory value: ([\w.\[\]]+)")


def join_key(path: str, key: object) -> str:
    """``train.model`` + ``lr`` -> ``train.model.lr``; a list index -> ``train.handlers[0]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


class NodeError(Exception):
    """An error about the node being built, raised where its config key is not at hand: :func:`with_full_key`
    turns it into the user error it names, located.

    Args:
        message: the text after ``<key>: ``, or a function of the full key that writes the whole message.
        key: parts below the node the error is about (``("_args_", 0)``), joined to the node's path.
        label: written between the key and the colon (`` (monai.transforms.LoadImaged)``).
        error: the user error to raise (:class:`BuildError`; the class of a wrapped ``DataError``).
    """

    def __init__(
        self,
        message: str | Callable[[str], str],
        *,
        key: tuple[object, ...] = (),
        label: str = "",
        error: Callable[[str], UserError] = BuildError,
    ) -> None:
        super().__init__(message)
        self.message, self.key, self.label, self.error = message, key, label, error

    def located(self, path: str) -> UserError:
        """The user error, its message starting with the full key (``train.optimizer.lr: ...``)."""
        full = functools.reduce(join_key, self.key, path)
        return self.error(self.message(full) if callable(self.message) else f"{full}{self.label}: {self.message}")


@contextmanager
def with_full_key(path: str) -> Iterator[None]:
    """Hydra's ``with_full_key``: a :class:`NodeError` raised while building the node at ``path`` becomes the
    user error it names, with the full config key in front. The one place where a build error gets its key."""
    try:
        yield
    except NodeError as exc:
        raise exc.located(path) from exc.__cause__


def missing(variable: str | None = None, key: tuple[object, ...] = ()) -> NodeError:
    """A required value (``???``) is missing: at the key itself, or in the ``variable`` it interpolates."""

    def message(full: str) -> str:
        name = variable or full
        return f"{full}: required value {name} is missing (???); set it on the command line, " + (
            f"e.g. `python train.py {name}=<value>`"
        )

    return NodeError(message, key=key)


def value_error(exc: OmegaConfBaseException, key: tuple[object, ...]) -> NodeError:
    """OmegaConf's error reading the value at ``key`` (below the node): a missing value names the variable to set."""
    if isinstance(exc, MissingMandatoryValue):
        return missing(key=key)
    match = _MISSING_KEY.search(str(exc))
    if match:
        return missing(match.group(1), key=key)
    return NodeError(f"cannot resolve its value: {exc}", key=key)


def sources(node: DictConfig, kwargs: dict[str, Any]) -> str:
    """Where the arguments set by interpolation come from (``lr`` is ``${learning_rate}``), so the user sees the key to
    change, e.g. ``; lr=1e9 comes from learning_rate``."""
    found = []
    for key in kwargs:
        raw = node._get_node(key) if key in node else None
        text = raw._value() if raw is not None and not isinstance(raw, DictConfig | ListConfig) else None
        link = tree.interpolation_link(text)
        if link is not None:
            found.append(f"{key}={shorten(repr(kwargs[key]), 40)} comes from {link}")
    return f"; {', '.join(found)}" if found else ""


def did_you_mean(target: str) -> str:
    """`` (did you mean ...)`` for a ``_target_`` that cannot be imported."""
    module_name, _, attr = target.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception:
        return f" (module {module_name!r} cannot be imported)"
    hint = suggest(attr, [n for n in dir(module) if not n.startswith("_")])
    return f"; {hint}" if hint else f" ({module_name!r} has no {attr!r})"
