"""Build the objects of a composed config, following the converted-tree contract (README, ``keywords.Emitted``).

Why not ``hydra.utils.instantiate``: it builds a fresh object for every occurrence of a node and cannot hand
*one* object to several references, while Clara's ``@model`` means the optimizer, the trainer, the evaluator and
the checkpoint saver all hold the *same* model. It also leaves OmegaConf containers inside objects by default.
So we walk the tree ourselves, memoised by config path, and only borrow Hydra's target lookup.

Some targets are built by a factory registered with the builder (:meth:`Builder.register`): the data cache
(:mod:`clara_hydra.runtime.cache`) builds every ``monai.data.CacheDataset`` that way, so it never writes
into the builder's memo; the builder still memoises, shares and permission-checks what the factory returns.

Which targets may be built is :mod:`clara_hydra.targets`' business (judged by the module that defines the
object). Only the top config and the command line grant more (``_allow_``): a builder created while another
one is building (``clara_hydra.expressions.model_from_checkpoint`` rebuilding a network from a checkpoint's
``train_conf``) inherits the outer builder's permissions and ignores the ``_allow_`` of the config it reads.

Example:
    >>> builder = Builder(cfg)                      # doctest: +SKIP
    >>> trainer = builder.build("train.trainer")    # doctest: +SKIP
    >>> builder.build("train.model") is trainer.network  # doctest: +SKIP
    True
"""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from clara_hydra import tree_nodes as tree
from clara_hydra.errors import BuildError, DataError, UserError, suggest
from clara_hydra.keywords import Clara, Emitted
from clara_hydra.runtime.build_errors import (
    NodeError,
    did_you_mean,
    join_key,
    missing,
    sources,
    value_error,
    with_full_key,
)
from clara_hydra.targets import DEFAULT_ALLOWED, Permissions
from clara_hydra.tree_nodes import Kind

__all__ = ["DEFAULT_ALLOWED", "Builder", "StoredDict", "build_all", "slot_paths"]

log = logging.getLogger(__name__)
_CHECKPOINT_DICTS = ("save_dict", "load_dict")  # ignite/MONAI checkpoint handlers' object mappings

KwargsPolicy = Callable[[str, Any, dict[str, Any]], dict[str, Any]]  # (path, callable, kwargs) -> kwargs
# (builder, path, default) -> object; default() builds the node as configured.
Factory = Callable[["Builder", str, Callable[[], Any]], Any]

# The permissions of the builder now building, so a builder created inside a build cannot widen them.
_BUILDING: contextvars.ContextVar[Permissions | None] = contextvars.ContextVar("clara_hydra_building", default=None)


class Builder:
    """Builds objects from a composed config; one object per config path, shared by every ``_ref_``.

    Args:
        cfg: the composed config (root; ``_ref_`` paths are taken from it).
        rank: this process's distributed rank; members with another ``_rank_`` are dropped.
        allow: extra user entries (packages, modules or exact names) whose targets may be built, on top of
            ``DEFAULT_ALLOWED`` and the config's top-level ``_allow_``.
        kwargs_policy: called as ``policy(path, callable, kwargs)`` before each call (device/AMP rules).
        trusted: whether ``cfg`` is the user's own config, whose ``_allow_`` counts. ``False`` for a config
            read from a checkpoint, a cache or a storage. Inside another builder's build the outer builder's
            permissions apply and ``cfg``'s ``_allow_`` is ignored either way.
    """

    def __init__(
        self,
        cfg: DictConfig,
        *,
        rank: int = 0,
        allow: Iterable[str] = (),
        kwargs_policy: KwargsPolicy | None = None,
        trusted: bool = True,
    ) -> None:
        self.cfg = cfg
        self.rank = rank
        outer = _BUILDING.get()
        own = _allow_entries(cfg)
        if outer is not None or not trusted:
            if own:
                log.warning(
                    "ignoring _allow_=%s of a config read from a file (a checkpoint's train_conf?): only the "
                    "command line and the top config grant permissions",
                    own,
                )
            own = []
        self.config_allow = own
        self.permissions = (outer or Permissions()).with_user([*own, *allow])
        self.allowed = self.permissions.allowed
        self.kwargs_policy = kwargs_policy
        self.built: dict[str, Any] = {}
        self._factories: list[tuple[Any, Factory]] = []  # (object a _target_ names, factory); looked up by identity
        self._active: list[tuple[str, bool]] = []  # (path, entered through a _ref_)

    # -- public API -------------------------------------------------------------------------------------

    def build(self, path: str) -> Any:
        """The object for the config node at ``path`` (``train.model``), built once and then reused.

        Raises:
            BuildError: unknown path, reference cycle, missing value, constructor error (message names the path).
            RefusedTargetError: a target outside the allowed modules.
            DataError: a datalist problem, prefixed with the path of the node that read it.
        """
        if path in self.built:
            return self.built[path]
        token = _BUILDING.set(self.permissions)
        try:
            return self._build(path)
        finally:
            _BUILDING.reset(token)

    def _build(self, path: str) -> Any:
        with with_full_key(path):
            try:
                node = OmegaConf.select(self.cfg, path, throw_on_missing=True, default=_ABSENT)
            except MissingMandatoryValue:
                raise missing() from None
            except OmegaConfBaseException as exc:
                raise NodeError(f"cannot read it: {exc}") from exc
            if node is _ABSENT:
                hint = suggest(path, slot_paths(self.cfg))
                tail = f"; {hint}" if hint else ""
                raise NodeError(lambda key: f"reference to {key!r}, which is not in the config{tail}")
        return self._at(node, path, via_ref=True)

    def build_slots(self, paths: Iterable[str] | None = None) -> dict[str, Any]:
        """Build every slot (or the ``paths`` given) and return ``{path: object}``."""
        return {path: self.build(path) for path in (slot_paths(self.cfg) if paths is None else paths)}

    def config_container(self) -> dict[str, Any]:
        """The whole config, resolved, as plain containers (Clara's ``@conf``); unresolvable values stay ``???``."""
        plain: dict[str, Any] = _plain(self.cfg)
        return plain

    def members(self, path: str) -> list[tuple[str, Any]]:
        """``(path, node)`` of the enabled members of the ``_compose_``/``_list_`` mapping at ``path``, in order.

        They correspond one to one, in order, to the transforms of the built ``Compose`` (the data cache
        uses this to find the config of the transforms before the first random one).
        """
        node = OmegaConf.select(self.cfg, path, default=None)
        if not isinstance(node, DictConfig):
            return []
        with with_full_key(path):
            return list(self._members(node, path))

    def register(self, obj: Any, factory: Factory) -> None:
        """Build every node whose ``_target_`` names ``obj`` with ``factory`` instead of calling ``obj``.

        The hook through which other parts of the runtime take over the construction of one kind of object
        (the data cache builds ``monai.data.CacheDataset``). The builder still checks the target's permission
        first and memoises the result under the node's path, so every ``_ref_`` to it gets the same object.

        Args:
            obj: the object the ``_target_`` resolves to (a class, a function), compared by identity, so any
                spelling of its import path matches (``monai.data.CacheDataset``, ``monai.data.dataset.CacheDataset``).
            factory: called as ``factory(builder, path, default)``; ``default()`` builds the node as configured
                (a factory that does not want the node returns it). Its errors pass through unchanged: they name
                their place themselves. A later registration for the same object replaces an earlier one.

        Example:
            >>> builder.register(CacheDataset, lambda b, path, default: default())  # doctest: +SKIP
        """
        self._factories = [(o, f) for o, f in self._factories if o is not obj]
        self._factories.append((obj, factory))

    def locate(self, target: str, path: str) -> Any:
        """The object a ``_target_`` names, refused outside the allowed modules (see :meth:`build`)."""
        with with_full_key(path):
            return self._locate(target, path)

    def enabled(self, node: Any, path: str) -> bool:
        """Whether a node is kept in its container: not ``_disabled_: true`` and on this ``_rank_``."""
        if not isinstance(node, DictConfig):
            return True
        with with_full_key(path):
            return tree.enabled(node, self.rank, get=lambda key: self._get(node, key))

    # -- the walk ---------------------------------------------------------------------------------------

    def _at(self, node: Any, path: str, via_ref: bool = False) -> Any:
        if path in self.built:
            return self.built[path]
        if any(p == path for p, _ in self._active):
            refs = [p for p, r in self._active if r]
            chain = [*refs[refs.index(path) :], path] if path in refs else [*refs, path]
            raise BuildError(f"reference cycle: {' -> '.join(chain)}; an object cannot (indirectly) contain itself")
        self._active.append((path, via_ref))
        try:
            with with_full_key(path):
                obj = self._node(node, path)
        finally:
            self._active.pop()
        self.built[path] = obj
        return obj

    def _node(self, node: Any, path: str) -> Any:
        if isinstance(node, ListConfig):
            items = ((join_key(path, i), self._get(node, i)) for i in range(len(node)))
            return [self._at(v, p) for p, v in items if self.enabled(v, p)]
        if not isinstance(node, DictConfig):
            return node  # a primitive, already resolved by OmegaConf
        kind = tree.kind_of(node)
        if kind is Kind.NONE:
            return None
        if kind is Kind.REFERENCE:
            extra = [k for k in node if k != Emitted.REF and not tree.is_placement(k)]
            if extra:
                raise NodeError(f"a {{_ref_: ...}} node takes no other keys, found {extra}")
            return self.build(str(self._get(node, Emitted.REF)))
        if kind is Kind.CONFIG:
            return self.config_container()
        if kind is Kind.ONE_OF:
            return self._one_of(node, path)
        if kind is Kind.COMPOSE:
            from monai.transforms import Compose

            return Compose([self._at(v, p) for p, v in self._members(node, path)])
        if kind is Kind.LIST:
            return [self._at(v, p) for p, v in self._members(node, path)]
        if kind is Kind.TARGET:
            return self._call(node, path)
        values = ((k, join_key(path, k), self._get(node, k)) for k in tree.arguments(node))
        return {str(k): self._at(v, p) for k, p, v in values if self.enabled(v, p)}

    def _one_of(self, node: DictConfig, path: str) -> Any:
        alternatives = tree.one_of_list(node)
        if alternatives is not None:  # list form {_one_of_: [node, ...]}
            members = [(join_key(join_key(path, Emitted.ONE_OF), i), alternatives[i]) for i in range(len(alternatives))]
            names = [str(i) for i in range(len(alternatives))]
            enabled = [(p, v) for p, v in members if v is not None and self.enabled(v, p)]
        else:
            names = [str(k) for k in node if tree.is_member_key(k)]
            enabled = list(self._members(node, path))
        if len(enabled) != 1:
            chosen = [p.rsplit(".", 1)[-1] for p, _ in enabled]
            example = names[0] if names else "<name>"
            raise NodeError(
                f"exactly one alternative must be enabled, found {len(enabled)} {chosen} among {names}; "
                f"set `_disabled_` so that one remains (e.g. `{path}.{example}._disabled_=false`)"
            )
        member_path, member = enabled[0]
        return self._at(member, member_path)

    def _members(self, node: DictConfig, path: str) -> Iterator[tuple[str, Any]]:
        """``(path, value)`` of the enabled named members of a ``_compose_``/``_list_``/``_one_of_`` mapping."""
        found = tree.members(
            node,
            get=lambda key: self._get(node, key),
            keep=lambda key, value: self.enabled(value, join_key(path, key)),
        )
        for key, value in found:
            yield join_key(path, key), value

    def _call(self, node: DictConfig, path: str) -> Any:
        target = self._get(node, Emitted.TARGET)
        if not isinstance(target, str) or not target:
            raise NodeError(f"_target_ must be a dotted import path, got {target!r}")
        func = self._locate(target, path)
        factory = next((f for o, f in self._factories if o is func), None)
        if factory is not None:
            return factory(self, path, lambda: self._construct(node, path, target, func))
        return self._construct(node, path, target, func)

    def _construct(self, node: DictConfig, path: str, target: str, func: Any) -> Any:
        args = [self._at(v, p) for p, v in self._positional(node, path)]
        kwargs = {str(k): self._at(self._get(node, k), join_key(path, k)) for k in tree.arguments(node)}
        if self.kwargs_policy is not None:
            kwargs = self.kwargs_policy(path, func, kwargs)
        if target.startswith(("monai.handlers.", "ignite.handlers.")):
            kwargs = _checkpointable(kwargs)
        if node.get(Emitted.PARTIAL) is True:
            return functools.partial(func, *args, **kwargs)
        if not callable(func):
            if args or kwargs:
                raise NodeError(f"{target} is not callable but was given arguments {sorted(kwargs)}")
            return func  # e.g. {_target_: torch.float32}
        try:
            return func(*args, **kwargs)
        except (DataError, BuildError) as exc:
            raise NodeError(str(exc), label=f" ({target})", error=type(exc)) from exc
        except UserError:
            raise
        except Exception as exc:
            raise NodeError(
                f"{target}({', '.join(sorted(kwargs))}) failed: {type(exc).__name__}: {exc}" + sources(node, kwargs)
            ) from exc

    def _positional(self, node: DictConfig, path: str) -> list[tuple[str, Any]]:
        if Emitted.ARGS not in node:
            return []
        values = self._get(node, Emitted.ARGS)
        if not isinstance(values, ListConfig):
            raise NodeError(f"_args_ must be a list, got {values!r}")
        args_path = join_key(path, Emitted.ARGS)
        return [(join_key(args_path, i), self._get(values, i, within=Emitted.ARGS)) for i in range(len(values))]

    def _locate(self, target: str, path: str) -> Any:
        try:
            return self.permissions.locate(target, path)
        except ImportError as exc:
            raise NodeError(f"cannot import _target_ {target!r}{did_you_mean(target)}") from exc

    # -- OmegaConf access with located errors ------------------------------------------------------------

    def _get(self, container: DictConfig | ListConfig, key: Any, within: str | None = None) -> Any:
        """``container[key]``; an error names the key below the node being built (``within`` it, e.g. ``_args_``)."""
        try:
            return container[key]
        except OmegaConfBaseException as exc:
            raise value_error(exc, (key,) if within is None else (within, key)) from None


class StoredDict:
    """A plain dict made storable by ignite's ``Checkpoint`` (which wants ``state_dict()`` and recurses into
    mappings): Clara's CheckpointSaver took ``"train_conf": "@conf"`` in its ``save_dict``.

    Args:
        value: the dict to store (kept as is; ``state_dict()`` returns it).
    """

    def __init__(self, value: dict[str, Any]) -> None:
        self.value = value

    def state_dict(self) -> dict[str, Any]:
        """The dict itself (what a checkpoint stores)."""
        return self.value

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace the content with a stored dict."""
        self.value.clear()
        self.value.update(state)


def _checkpointable(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Wrap plain dicts inside a checkpoint handler's ``save_dict``/``load_dict`` in :class:`StoredDict`."""
    for key in _CHECKPOINT_DICTS:
        objects = kwargs.get(key)
        if isinstance(objects, dict):
            kwargs[key] = {k: StoredDict(v) if isinstance(v, dict) else v for k, v in objects.items()}
    return kwargs


class _Absent:
    pass


_ABSENT = _Absent()


def _allow_entries(cfg: DictConfig) -> list[str]:
    """The config's top-level ``_allow_`` (a list, or one string) as strings."""
    value = cfg.get(Emitted.ALLOW) if isinstance(cfg, DictConfig) else None
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, ListConfig | list | tuple):
        with with_full_key(Emitted.ALLOW):
            raise NodeError(f"expected a list of packages or names, got {value!r}; e.g. '+_allow_=[my_pkg]'")
    return [str(v) for v in value]


def _plain(node: Any) -> Any:
    """``OmegaConf.to_container(node, resolve=True)``, but a value that cannot be resolved stays ``'???'``."""
    try:
        return OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException:
        pass
    if isinstance(node, DictConfig):
        out: dict[str, Any] = {}
        for key in node:
            try:
                out[str(key)] = _plain(node[key])
            except OmegaConfBaseException:
                out[str(key)] = "???"
        return out
    if isinstance(node, ListConfig):
        items: list[Any] = []
        for i in range(len(node)):
            try:
                items.append(_plain(node[i]))
            except OmegaConfBaseException:
                items.append("???")
        return items
    return node


def slot_paths(cfg: DictConfig) -> list[str]:
    """Every slot of a config: the children of ``train``/``validate``, or top-level Clara slots when it has none."""
    sections = [s for s in Clara.SECTIONS if isinstance(cfg.get(s), DictConfig)]
    if sections:
        return [f"{s}.{k}" for s in sections for k in cfg[s]]
    known = (*Clara.SINGLE_SLOTS, *Clara.TRANSFORM_SLOTS, *Clara.LIST_SLOTS)
    return [str(k) for k in cfg if k in known]


def build_all(cfg: DictConfig, **kwargs: Any) -> dict[str, Any]:
    """Build every slot of ``cfg`` (see :func:`slot_paths`) and return ``{path: object}``.

    Keyword arguments go to :class:`Builder` (``rank``, ``allow``, ``kwargs_policy``).
    """
    return Builder(cfg, **kwargs).build_slots()
