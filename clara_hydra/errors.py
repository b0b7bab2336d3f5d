"""The one exception hierarchy of clara-hydra.

User errors (a bad config, a missing file, a value out of range) derive from :class:`UserError`;
the command-line entry points print them as one compact block and exit with code 2. Anything
else is a bug and keeps its traceback. Set ``CLARA_HYDRA_FULL_ERROR=1`` to see the traceback of
user errors too.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a process stopped by Ctrl-C
FULL_ERROR_ENV = "CLARA_HYDRA_FULL_ERROR"


class Level(str, Enum):
    """How serious a diagnostic is."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


FIX_PREFIX = "\n    fix: "


#: Longest message (or fix) and location a diagnostic keeps; longer ones are cut in the middle.
MESSAGE_LIMIT = 2000
PATH_LIMIT = 500


def shorten(value: object, limit: int = 120) -> str:
    """``repr``-like text of a user's value, cut in the middle beyond ``limit`` characters (messages stay short)."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return text
    keep = max(limit // 2 - 10, 8)
    return f"{text[:keep]}... ({len(text)} characters) ...{text[-keep:]}"


def with_fix(message: str, fix: str = "") -> str:
    """The one layout of a problem's text and its fix, shared by the converter, the runtime and the sweeper.

    >>> with_fix("hydra.sweeper.n_trials: must be >= 1, got 0", "set n_trials: 1 or more")
    'hydra.sweeper.n_trials: must be >= 1, got 0\\n    fix: set n_trials: 1 or more'
    """
    return f"{message}{FIX_PREFIX}{fix}" if fix else message


def format_location(file: str | None, json_path: str | None, hydra_key: str | None = None) -> str:
    """The one place where a diagnostic's location is spelled out, so no message can forget it."""
    parts = []
    if file:
        parts.append(file)
    if json_path:
        parts.append(json_path)
    where = ": ".join(parts) if parts else "<config>"
    if hydra_key:
        where += f" (hydra key {hydra_key})"
    return where


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a user's config.

    Args:
        rule: short identifier of the broken rule (``float-bounds``, ``unknown-class``, ...).
        message: what is wrong, with the values seen.
        json_path: where in the Clara JSON (``train.pre_transforms[5].search[0].targets``).
        fix: what the user should do.
        level: error, warning or info.
        file: the file the problem is in.
        hydra_key: the Hydra key the JSON path maps to, when there is one.
    """

    rule: str
    message: str
    json_path: str = ""
    fix: str = ""
    level: Level = Level.ERROR
    file: str | None = None
    hydra_key: str | None = None

    def __post_init__(self) -> None:
        # The one safety net for every creator: a message quoting a 20 MB value, or a path through a 2 MB key,
        # stays a few KB (cut in the middle by `shorten`, the helper that cuts values everywhere).
        for name, limit in (("message", MESSAGE_LIMIT), ("fix", MESSAGE_LIMIT), ("json_path", PATH_LIMIT)):
            text = getattr(self, name)
            if len(text) > limit:
                object.__setattr__(self, name, shorten(text, limit))
        if self.hydra_key is not None and len(self.hydra_key) > PATH_LIMIT:
            object.__setattr__(self, "hydra_key", shorten(self.hydra_key, PATH_LIMIT))

    def render(self) -> str:
        where = format_location(self.file, self.json_path, self.hydra_key)
        return with_fix(f"{self.level.value}[{self.rule}] {where}\n    {self.message}", self.fix)

    def sort_key(self) -> tuple[str, tuple[tuple[int, str], ...], str]:
        # List indices sort as numbers, so pre_transforms[2] comes before pre_transforms[10] (file order).
        tokens = re.findall(r"\[(\d+)\]|([^.\[\]]+)", self.json_path)
        path = tuple((int(i), "") if i else (-1, name) for i, name in tokens)
        return (self.file or "", path, self.rule)


class ClaraHydraError(Exception):
    """Base class of every exception raised on purpose by clara-hydra."""


class UserError(ClaraHydraError):
    """Raised for problems the user can fix (config, paths, values); printed compactly, exit code 2."""


class ConfigError(UserError, ValueError):
    """Raised when a Clara config breaks one or more rules; carries every problem found in it.

    The converter collects all problems of a file before raising, so one run shows them all.
    """

    def __init__(self, diagnostics: Sequence[Diagnostic], summary: str = "") -> None:
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        errors = [d for d in self.diagnostics if d.level is Level.ERROR]
        self.summary = summary or f"{len(errors)} error(s) in the Clara config"
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join([self.summary + ":", *(d.render() for d in self.diagnostics)])


class InputFileError(UserError, FileNotFoundError):
    """Raised when an input file or folder is missing, unreadable or not valid JSON."""


class DataError(UserError, LookupError):
    """Raised at run time when a datalist file, key or data file named by the config is missing."""


class RefusedTargetError(UserError, PermissionError):
    """Raised when a config asks to build a class outside the allowed modules (MONAI, torch, ignite, clara_hydra)."""


class BuildError(UserError, ValueError):
    """Raised when a composed config cannot be turned into objects (bad reference, constructor refused args)."""


class SweepError(UserError, RuntimeError):
    """Raised when a sweep cannot go on (every trial failed, bad sweeper settings, unreadable storage)."""


class DivergedError(UserError, ArithmeticError):
    """Raised when the training loss becomes NaN or infinite; the message starts ``diverged at epoch N``."""


class ExportError(UserError, ValueError):
    """Raised when a trial cannot be exported (no such trial or study, no checkpoint, a node with no equivalent)."""


E = TypeVar("E", bound=BaseException)


def suggest(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """A did-you-mean phrase for ``name`` among ``candidates``, or an empty string."""
    import difflib

    pool = list(dict.fromkeys(candidates))
    # difflib's ratio is at most 2*min/(len(a)+len(b)): past 7/3 of the longest candidate no match reaches 0.6, and
    # difflib would first index the whole name (seconds for a 20 MB value).
    hopeless = len(name) * 3 > 7 * max((len(c) for c in pool), default=0)
    close = [] if hopeless else difflib.get_close_matches(name, pool, n=n, cutoff=0.6)
    if not close and len(name) >= 4:  # 'probability' -> 'prob': a shortened name is a prefix, not a close match
        close = [c for c in pool if len(c) >= 3 and (name.startswith(c) or c.startswith(name))][:n]
    if not close and not hopeless:
        lowered = {c.lower(): c for c in pool}
        close = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6)]
    if not close:
        return ""
    return "did you mean " + " or ".join(repr(c) for c in close) + "?"


def report_user_error(exc: UserError) -> int:
    """Print a user error as one compact block on stderr; return its exit code (2)."""
    print(f"clara-hydra: {exc}", file=sys.stderr)
    print(f"(set {FULL_ERROR_ENV}=1 for the traceback)", file=sys.stderr)
    return EXIT_USER_ERROR


def exit_code_for(exc: BaseException) -> int | None:
    """The error contract of every command: print ``exc`` compactly and return the exit code, or ``None``.

    A :class:`UserError` is one block on stderr, exit code 2; Ctrl-C (``KeyboardInterrupt``) is one line, exit
    code 130. ``None`` means "let it propagate with its traceback": any other exception (a bug), or any
    exception at all when ``CLARA_HYDRA_FULL_ERROR=1`` is set.
    """
    if os.environ.get(FULL_ERROR_ENV):
        return None
    if isinstance(exc, UserError):
        return report_user_error(exc)
    if isinstance(exc, KeyboardInterrupt):
        print("\nclara-hydra: interrupted (Ctrl-C)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return None


def hydra_user_error(exc: SystemExit) -> bool:
    """Whether Hydra ended the process (exit 1) after printing one of its own compact user errors.

    Hydra prints a bad override, an unknown key or a missing config-group option compactly itself and
    calls ``sys.exit(1)`` from inside its ``except`` block, so the error is the exit's ``__context__``. The
    error contract wants exit code 2 for those: :mod:`train.py` swaps the code, the message stays Hydra's.
    """
    from hydra.errors import CompactHydraException

    return exc.code == 1 and isinstance(exc.__context__, CompactHydraException)


def run_and_report(func: Callable[[], int | None]) -> int:
    """Run an entry point under :func:`exit_code_for`'s contract and return its exit code."""
    try:
        return int(func() or 0)
    except (UserError, KeyboardInterrupt) as exc:
        code = exit_code_for(exc)
        if code is None:
            raise
        return code
