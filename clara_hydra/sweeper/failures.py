"""What a finished job means for its trial: COMPLETE with values, PRUNED, or FAIL with a reason.

The failure policy (issue 4): a job that raises, returns NaN/inf or a non-number, or runs out of
memory is a failed *trial*, never a failed sweep; ``optuna.TrialPruned`` raised by the job (through
:func:`clara_hydra.sweeper.trial_report.report`) is a pruned trial. Only :class:`FailFast` and
``max_failure_rate`` stop a sweep, with the first error shown.

A :class:`~clara_hydra.errors.UserError` (a corrupt image, a diverged training, a bad value) is already
worded for the user: its message alone is the reason (``diverged at epoch 2: ...``), without the class name.
"""

from __future__ import annotations

import math
import os
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from clara_hydra.errors import FULL_ERROR_ENV, SweepError, UserError, with_fix

# The reason stored for trials a dead or interrupted run left unfinished (resume looks for it).
INTERRUPTED = "interrupted"
# The start of the reason stored for trials a full disk failed (clara_hydra.sweeper.disk.disk_report):
# like interrupted ones, they do not count against n_trials and their parameters are retried.
DISK_FULL = "disk full"
# How long a reason may be in the storage and the CSV (a traceback is logged, not stored).
MAX_REASON = 500


class Outcome(str, Enum):
    """The three ways a launched trial ends."""

    COMPLETE = "COMPLETE"
    PRUNED = "PRUNED"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Result:
    """A job's outcome as the study records it.

    Args:
        outcome: COMPLETE, PRUNED or FAIL.
        values: the objective values (COMPLETE only).
        reason: why it failed or was pruned (stored as the trial's ``fail_reason``/``prune_reason``).
        error: the exception the job raised, if any (kept to show the first error of a failing sweep).
    """

    outcome: Outcome
    values: list[float] | None = None
    reason: str = ""
    error: BaseException | None = None


def classify(status_failed: bool, returned: Any, n_objectives: int) -> Result:
    """Classify a job's return (``JobReturn.status`` and what it returned or raised).

    Args:
        status_failed: whether Hydra recorded the job as FAILED (it raised).
        returned: the return value, or the exception when it failed.
        n_objectives: the number of study directions.

    Returns:
        The trial's result.
    """
    if status_failed or isinstance(returned, BaseException):
        return _from_exception(returned)
    try:
        raw = list(returned) if n_objectives > 1 else [returned]
        values = [float(v) for v in raw]
    except (TypeError, ValueError):
        expected = "a number" if n_objectives == 1 else f"a sequence of {n_objectives} numbers"
        return Result(Outcome.FAIL, reason=f"the task returned {_short(repr(returned))}, expected {expected}")
    if len(values) != n_objectives:
        return Result(Outcome.FAIL, reason=f"the task returned {len(values)} values for {n_objectives} directions")
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        return Result(Outcome.FAIL, reason=f"objective is {bad[0]} (diverged?)")
    return Result(Outcome.COMPLETE, values=values)


def _from_exception(exc: Any) -> Result:
    import optuna

    if isinstance(exc, optuna.TrialPruned):
        return Result(Outcome.PRUNED, reason=_short(str(exc)) or "pruned", error=exc)
    if not isinstance(exc, BaseException):
        return Result(Outcome.FAIL, reason=f"the job failed without an exception ({exc!r})")
    text = str(exc) if isinstance(exc, UserError) and str(exc) else f"{type(exc).__name__}: {exc}"
    if is_out_of_memory(exc):
        return Result(Outcome.FAIL, reason="out of memory: " + _short(text), error=exc)
    return Result(Outcome.FAIL, reason=_short(text), error=exc)


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA or CPU out-of-memory, recognised without importing torch.

    ``torch.cuda.OutOfMemoryError`` (a ``RuntimeError``), older torch's ``RuntimeError("CUDA out of
    memory...")``, CPU allocator failures (``RuntimeError: ... not enough memory``, ``DefaultCPUAllocator``)
    and Python's ``MemoryError``.
    """
    if isinstance(exc, MemoryError):
        return True
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "OutOfMemoryError" in names:
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        marker in text for marker in ("out of memory", "not enough memory", "defaultcpuallocator")
    )


def format_traceback(exc: BaseException | None) -> str:
    """The exception's traceback as text (for the log).

    Empty for a :class:`~clara_hydra.errors.UserError` (its message, the trial's reason, says it all) unless
    ``CLARA_HYDRA_FULL_ERROR=1``: the error contract keeps tracebacks for bugs.
    """
    if exc is None or (isinstance(exc, UserError) and not os.environ.get(FULL_ERROR_ENV)):
        return ""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


@dataclass
class FailFast:
    """Stop a sweep whose first ``limit`` launched trials all raised (a wrong data path, a typo).

    Args:
        limit: how many first trials must all fail; 0 disables the rule.
    """

    limit: int
    seen: int = 0
    failed: int = 0
    first: tuple[int, Result] | None = None

    def add(self, number: int, result: Result) -> None:
        """Count one launched trial of this run, in launch order.

        Raises:
            SweepError: the first ``limit`` trials all raised an exception.
        """
        if self.limit <= 0 or self.seen >= self.limit:
            return
        self.seen += 1
        if result.outcome is Outcome.FAIL and result.error is not None:
            self.failed += 1
            self.first = self.first or (number, result)
        if self.failed == self.limit and self.first is not None:
            first_number, first = self.first
            raise SweepError(
                with_fix(
                    f"the first {self.limit} trial(s) of this sweep all failed; stopping early. "
                    f"First error (trial {first_number}): {first.reason}",
                    "run the configuration once without -m to see the full error (a data path, a missing value?)",
                )
            ) from first.error


def check_failure_rate(results: Sequence[tuple[int, Result]], max_failure_rate: float) -> None:
    """Upstream's rule: stop when the failed fraction of a batch exceeds ``max_failure_rate``.

    Args:
        results: (trial number, result) of the batch's launched trials.
        max_failure_rate: the allowed fraction (1.0 never stops).

    Raises:
        SweepError: too many trials of the batch failed; names the first failure.
    """
    failed = [(n, r) for n, r in results if r.outcome is Outcome.FAIL]
    if not results or len(failed) / len(results) <= max_failure_rate:
        return
    number, first = failed[0]
    raise SweepError(
        with_fix(
            f"{len(failed)} of {len(results)} trial(s) in the last batch failed, above "
            f"hydra.sweeper.max_failure_rate={max_failure_rate}. First failure (trial {number}): {first.reason}",
            "raise max_failure_rate (1.0 never stops) or fix the failing configuration",
        )
    ) from first.error
