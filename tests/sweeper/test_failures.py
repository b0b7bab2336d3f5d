"""What a finished job means for its trial, and the rules that stop a failing sweep."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from clara_hydra.errors import SweepError
from clara_hydra.sweeper.failures import FailFast, Outcome, Result, check_failure_rate, classify, is_out_of_memory


class OutOfMemoryError(RuntimeError):
    """Stands in for torch.cuda.OutOfMemoryError (recognised by name, torch is not imported)."""


@pytest.mark.parametrize(
    ("failed", "returned", "n", "outcome", "reason"),
    [
        (False, 0.5, 1, Outcome.COMPLETE, ""),
        (False, 3, 1, Outcome.COMPLETE, ""),
        (False, [0.5, 2], 2, Outcome.COMPLETE, ""),
        (False, float("nan"), 1, Outcome.FAIL, "objective is nan"),
        (False, float("inf"), 1, Outcome.FAIL, "objective is inf"),
        (False, None, 1, Outcome.FAIL, "the task returned None, expected a number"),
        (False, "x", 1, Outcome.FAIL, "the task returned 'x'"),
        (False, [1.0], 2, Outcome.FAIL, "the task returned 1 values for 2 directions"),
        (True, ValueError("bad"), 1, Outcome.FAIL, "ValueError: bad"),
        (True, FileNotFoundError("no datalist"), 1, Outcome.FAIL, "FileNotFoundError: no datalist"),
        (True, RuntimeError("CUDA out of memory. Tried"), 1, Outcome.FAIL, "out of memory: RuntimeError: CUDA"),
        (True, OutOfMemoryError("boom"), 1, Outcome.FAIL, "out of memory: OutOfMemoryError: boom"),
        (True, MemoryError(), 1, Outcome.FAIL, "out of memory: MemoryError"),
        (True, optuna.TrialPruned("pruned at step 2"), 1, Outcome.PRUNED, "pruned at step 2"),
    ],
)
def test_classify(failed: bool, returned: Any, n: int, outcome: Outcome, reason: str) -> None:
    result = classify(failed, returned, n)
    assert result.outcome is outcome
    assert result.reason.startswith(reason)


def test_out_of_memory_markers() -> None:
    assert is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp] DefaultCPUAllocator: not enough memory"))
    assert not is_out_of_memory(ValueError("out of memory"))  # only RuntimeErrors carry the marker
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def failed(msg: str) -> Result:
    return Result(Outcome.FAIL, reason=msg, error=RuntimeError(msg))


def test_fail_fast_stops_when_the_first_trials_all_raise() -> None:
    rule = FailFast(3)
    rule.add(0, failed("no such datalist /data/x.json"))
    rule.add(1, failed("no such datalist /data/x.json"))
    with pytest.raises(SweepError, match=r"first 3 trial\(s\).*First error \(trial 0\): no such datalist"):
        rule.add(2, failed("again"))


def test_fail_fast_ignores_a_sweep_that_once_worked() -> None:
    rule = FailFast(3)
    rule.add(0, failed("a"))
    rule.add(1, Result(Outcome.COMPLETE, values=[1.0]))
    rule.add(2, failed("b"))
    rule.add(3, failed("c"))
    rule.add(4, failed("d"))  # past the first three: never stops


def test_nan_is_not_an_error_for_fail_fast() -> None:
    rule = FailFast(1)
    rule.add(0, Result(Outcome.FAIL, reason="objective is nan"))


def test_max_failure_rate_keeps_upstream_meaning() -> None:
    batch = [(0, failed("x")), (1, Result(Outcome.COMPLETE, values=[1.0]))]
    check_failure_rate(batch, 0.5)  # 1 of 2 = 0.5: not above
    with pytest.raises(SweepError, match=r"1 of 2 trial\(s\) in the last batch failed.*max_failure_rate=0.4"):
        check_failure_rate(batch, 0.4)
    check_failure_rate([(0, failed("x"))], 1.0)  # the default never stops


def test_a_user_error_is_its_own_reason() -> None:
    from clara_hydra.errors import DataError, DivergedError

    result = classify(True, DataError("train.dataset: cannot read /d/x.nii.gz (datalist entry 3)"), 1)
    assert result.outcome is Outcome.FAIL and result.reason.startswith("train.dataset: cannot read /d/x.nii.gz")
    diverged = classify(True, DivergedError("diverged at epoch 2: the training loss is nan at iteration 9"), 1)
    assert diverged.reason == "diverged at epoch 2: the training loss is nan at iteration 9"
