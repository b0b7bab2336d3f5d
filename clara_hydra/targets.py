"""Which ``_target_`` may be imported and called: an allow-list judged by what an object *is*.

A name is only a spelling: ``torch.os.system`` is ``os.system`` reached through ``torch``'s own ``import os``.
So a target is judged in two steps:

1. Before anything is imported, its dotted name must lie in an allowed package (importing a module runs its
   top-level code, so ``evil.x`` is refused without importing ``evil``).
2. After :func:`hydra.utils.get_object` resolved it, the module that *defines* the object
   (:func:`home_of`: ``obj.__module__`` and ``__qualname__``, the type's for an instance) must be allowed, and
   must not be on :data:`DENIED`: callables that build other targets by name, evaluate text, unpickle or load
   code, run processes (``monai.utils.instantiate``, ``monai.bundle``, ``hydra.utils``, ``torch.load``,
   ``pickle``, ``os``, ``subprocess``, ``builtins``, ``importlib``, ...). Such a callable is a way around the
   allow-list itself, so allowing a whole package does not allow them.

Only the user grants more: ``_allow_: [...]`` at the top of the composed config or ``'+_allow_=[...]'`` on the
command line (see :class:`Permissions`). An entry allows what is *defined* under it (``my_pkg`` allows
``my_pkg.nets.Net``, not ``my_pkg.os.system``); a denied callable needs an entry that names it or a part of
the denied module (``os.system``, ``os``, ``monai.utils.instantiate``), never a wider one (``monai``).
Configs read from checkpoints, caches or study storages never grant anything (the builder ignores their
``_allow_``).

Why not Hydra's own check: hydra-core refuses a few spellings (``builtins.eval``) by name and lets their
re-exports through; nothing in Hydra or OmegaConf judges the resolved object.

Example:
    >>> Permissions().locate("torch.nn.Linear", "train.model")  # doctest: +SKIP
    <class 'torch.nn.modules.linear.Linear'>
    >>> Permissions().locate("torch.os.system", "train.model")  # doctest: +SKIP
    Traceback (most recent call last):
    RefusedTargetError: train.model: refusing _target_ 'torch.os.system': it is os.system (posix.system), ...
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from clara_hydra.errors import RefusedTargetError, shorten, with_fix

DEFAULT_ALLOWED: tuple[str, ...] = ("monai", "torch", "ignite", "clara_hydra")

_RUNS_TARGETS = "builds other targets by name (a way around this allow-list)"
_LOADS_CODE = "loads or compiles code"
_UNPICKLES = "unpickles data (pickles can run any code)"
_PROCESS = "runs commands or touches the process"

# Module or ``module.qualname`` prefixes, with why each is refused. A list, not a proof: it covers what the
# default packages hold that builds targets, evaluates text or loads code, and the standard modules that do.
DENIED: Mapping[str, str] = {
    # MONAI
    "monai.bundle": _RUNS_TARGETS + " and evaluates '$' expressions",
    "monai.fl": _RUNS_TARGETS,
    "monai.utils.module.instantiate": _RUNS_TARGETS,
    "monai.utils.module.locate": _RUNS_TARGETS,
    "monai.utils.module.optional_import": "imports any module by name",
    "monai.utils.module.load_submodules": "imports modules by name",
    "monai.utils.module.run_eval": _RUNS_TARGETS,
    "monai.utils.module.run_debug": _RUNS_TARGETS,
    "monai.utils.misc.run_cmd": _PROCESS,
    "monai.apps.utils": "downloads and extracts archives",
    "monai.apps.auto3dseg": _PROCESS,
    "monai.apps.nnunet": _PROCESS,
    "monai._extensions": _LOADS_CODE,
    # torch
    "torch.serialization": _UNPICKLES + " (torch.load without weights_only)",
    "torch.hub": "downloads and runs code",
    "torch.package": _UNPICKLES,
    "torch.utils.cpp_extension": _LOADS_CODE,
    "torch.utils.model_zoo": "downloads and unpickles",
    "torch.library": _LOADS_CODE,
    "torch._ops._Ops.load_library": _LOADS_CODE,
    "torch._classes._Classes.load_library": _LOADS_CODE,
    "torch._C": "exposes torch's internal extension API",
    "torch.distributed.rpc": _PROCESS,
    # Hydra / OmegaConf
    "hydra.utils": _RUNS_TARGETS,
    "hydra._internal": _RUNS_TARGETS,
    # clara_hydra itself: only its config-facing callables (data, expressions) are targets
    "clara_hydra.runtime": _RUNS_TARGETS,
    "clara_hydra.sweeper": _RUNS_TARGETS,
    "clara_hydra.convert": _RUNS_TARGETS,
    "clara_hydra.cli": _PROCESS,
    "clara_hydra.targets": _RUNS_TARGETS,
    # the standard library and common helpers
    "builtins": "evaluates text, opens files or reaches any object (eval, exec, open, getattr, __import__)",
    "os": _PROCESS,
    "subprocess": _PROCESS,
    "sys": _PROCESS,
    "shutil": "deletes and moves files",
    "importlib": "imports modules by name",
    "runpy": _LOADS_CODE,
    "ctypes": _LOADS_CODE,
    "code": _LOADS_CODE,
    "codeop": _LOADS_CODE,
    "types": _LOADS_CODE,
    "pickle": _UNPICKLES,
    "marshal": _LOADS_CODE,
    "shelve": _UNPICKLES,
    "dill": _UNPICKLES,
    "cloudpickle": _UNPICKLES,
    "joblib": _UNPICKLES,
    "operator": "calls any method by name (attrgetter, methodcaller)",
    "functools": "wraps any callable",
    "multiprocessing": _PROCESS,
    "pty": _PROCESS,
    "socket": _PROCESS,
    "yaml": _UNPICKLES + " (yaml.load with a full loader)",
    "numpy.load": _UNPICKLES + " (allow_pickle)",
}

# C modules that stand behind public standard modules: posix.system *is* os.system.
ALIASES: Mapping[str, str] = {
    "posix": "os",
    "nt": "os",
    "_pickle": "pickle",
    "_operator": "operator",
    "_functools": "functools",
    "_io": "io",
    "_imp": "importlib",
    "_ctypes": "ctypes",
    "_socket": "socket",
    "_posixsubprocess": "subprocess",
}


_NAME_IT = "name the class or function itself (module.Name), as it is defined"


def covers(entry: str, name: str) -> bool:
    """Whether the dotted ``entry`` is ``name`` or one of its parents (``monai`` covers ``monai.data.x``)."""
    return name == entry or name.startswith(entry + ".")


def home_of(obj: Any) -> str | None:
    """``module.qualname`` of where ``obj`` is defined (its type's, for an instance); ``None`` when unknown.

    >>> import os
    >>> home_of(os.system) in ("posix.system", "nt.system")
    True
    """
    if inspect.ismodule(obj):
        return obj.__name__
    if inspect.isclass(obj) or inspect.isroutine(obj):
        module = getattr(obj, "__module__", None)
        owner = getattr(obj, "__objclass__", None)  # method descriptors (torch.Tensor.add) have no __module__
        if module is None and owner is not None:
            module = getattr(owner, "__module__", None)
        bound = getattr(obj, "__self__", None)
        if module is None and bound is not None:
            module = bound.__name__ if inspect.ismodule(bound) else type(bound).__module__
        qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
        if not isinstance(module, str) or not isinstance(qualname, str):
            return None
        return f"{module}.{qualname}"
    return home_of(type(obj))  # an instance (torch.float32, a partial): judged by its type


def _suggested(target: str, shown: str) -> str:
    """The entry a fix should name: the target as written, or where it really lives when it is a re-export."""
    return target if target.split(".")[0] == shown.split(".")[0] else shown


def _aliased(name: str) -> str:
    head, _, rest = name.partition(".")
    public = ALIASES.get(head)
    return f"{public}.{rest}" if public and rest else (public or name)


@dataclass(frozen=True)
class Permissions:
    """What may be built: the default packages plus the user's explicit entries.

    Args:
        base: packages allowed by default (:data:`DEFAULT_ALLOWED`; the sweeper uses ``("optuna",)``).
        user: the user's ``_allow_`` entries (command line or top config): packages, modules or exact names.
        denied: refused even inside ``base`` (:data:`DENIED`).
    """

    base: tuple[str, ...] = DEFAULT_ALLOWED
    user: tuple[str, ...] = ()
    denied: Mapping[str, str] | None = None

    @classmethod
    def of(cls, user: Iterable[Any] | None, base: tuple[str, ...] = DEFAULT_ALLOWED) -> Permissions:
        """Permissions with ``user`` entries (``None``/empty: defaults only); entries are stripped strings."""
        entries = tuple(dict.fromkeys(str(e).strip() for e in (user or []) if str(e).strip()))
        return cls(base=base, user=entries)

    def with_user(self, more: Iterable[Any]) -> Permissions:
        """These permissions plus more user entries."""
        return Permissions.of([*self.user, *more], self.base)

    @property
    def allowed(self) -> tuple[str, ...]:
        """Every allowed package or name, default ones first."""
        return (*self.base, *self.user)

    def locate(self, target: str, where: str) -> Any:
        """Import the object ``target`` names, or refuse it (see the module docstring).

        Args:
            target: the dotted ``_target_``.
            where: the config key of the node, for messages (``train.model``).

        Returns:
            The class, function or object.

        Raises:
            RefusedTargetError: the name lies outside the allowed packages, or what it resolves to is defined
                outside them or is denied; the message names the key, the target, what it is and the fix.
            ImportError: an allowed name that cannot be imported (the caller words that error).
        """
        if any(part.startswith("__") for part in target.split(".")):
            raise self._refuse(target, where, "a dunder name is never a target", fix=_NAME_IT)
        if not any(covers(entry, target) for entry in (*self.allowed, *(ALIASES.get(e, e) for e in self.user))):
            raise self._refuse(target, where, f"it is outside the allowed packages {list(self.allowed)}")
        from hydra.utils import get_object

        try:
            obj = get_object(target)
        except Exception as exc:
            raise ImportError(str(exc)) from exc
        self.judge(obj, target, where)
        return obj

    def judge(self, obj: Any, target: str, where: str) -> None:
        """Refuse ``obj`` (which ``target`` resolved to) unless what defines it is allowed.

        Raises:
            RefusedTargetError: see :meth:`locate`.
        """
        if inspect.ismodule(obj):
            raise self._refuse(target, where, "it is a module, not a class or function", fix=_NAME_IT)
        home = home_of(obj)
        if home is None:
            raise self._refuse(target, where, "cannot tell which module defines it", fix=_NAME_IT)
        names = list(dict.fromkeys([home, _aliased(home), target]))
        shown = _aliased(home)
        what = f"it is {shown}" + (f" ({home})" if shown != home else "")
        denied = self.denied if self.denied is not None else DENIED
        rule = next(((d, why) for d, why in denied.items() for n in names if covers(d, n)), None)
        if rule is not None:
            entry, why = rule
            # Only an entry that names the denied thing (or a part of it) lifts the rule, never a wider one.
            if target in self.user or any(covers(e, n) and covers(entry, e) for e in self.user for n in names):
                return
            raise self._refuse(target, where, f"{what}, which {why}", entry=_suggested(target, shown))
        if any(covers(b, home) for b in self.base) or target in self.user:
            return
        if any(covers(_aliased(e), n) for e in self.user for n in names[:2]):
            return
        why = f"{what}, defined outside the allowed packages {list(self.allowed)}"
        raise self._refuse(target, where, why, entry=_suggested(target, shown))

    def _refuse(self, target: str, where: str, why: str, entry: str = "", fix: str = "") -> RefusedTargetError:
        entry = entry or target.split(".")[0]
        entries = [*self.user, entry]
        cli = f"'+_allow_=[{', '.join(entries)}]'" if not self.user else f"'_allow_=[{', '.join(entries)}]'"
        fix = fix or f"only if you trust it, add `_allow_: [{entry}]` at the top of the config or run with {cli}"
        return RefusedTargetError(with_fix(f"{where}: refusing to build _target_ {shorten(target)!r}: {why}", fix))
