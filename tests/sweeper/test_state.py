"""SweepState: the result files' timers and share of a sweep's time, and the composed configs kept in memory."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.storages.journal import JournalFileBackend, JournalStorage

from clara_hydra.sweep_record import TrialAttr
from clara_hydra.sweeper import state as state_module
from clara_hydra.sweeper._optuna_private import storage_of
from clara_hydra.sweeper.disk import Reserve
from clara_hydra.sweeper.results import write_all
from clara_hydra.sweeper.settings import Settings
from clara_hydra.sweeper.space import SearchSpace
from clara_hydra.sweeper.state import SweepState
from clara_hydra.sweeper.storage import StorageSpec


def _study(
    tmp_path: Path, values: list[float], directions: list[str] | None = None, last_repeats: int | None = None
) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "s.journal")))
    study = optuna.create_study(study_name="s", storage=storage, directions=directions or ["minimize"])
    for i, value in enumerate(values):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 10)})
        trial.set_user_attr(TrialAttr.JOB_DIR, str(tmp_path / "sweep" / str(i)))
        if last_repeats is not None and i == len(values) - 1:
            trial.set_user_attr(TrialAttr.DUPLICATE_OF, last_repeats)
        study.tell(trial, value if directions is None else [value, -value])
    return study


def _state(tmp_path: Path, study: optuna.Study, **settings: Any) -> SweepState:
    journal = tmp_path / "s.journal"
    return SweepState(
        settings=Settings.from_node(settings),
        space=SearchSpace.from_config(None, []),
        spec=StorageSpec(f"journal://{journal}"),
        storage=storage_of(study),
        study=study,
        sweep_dir=tmp_path / "sweep",
        role=None,
        worker="p1@test",
        cache_dir=str(tmp_path / "cache"),
        concurrent=1,
        reserve=Reserve(None),
    )


def _configs(n: int) -> dict[int, Any]:
    return {i: OmegaConf.create({"x": i}) for i in range(n)}


@pytest.mark.parametrize(
    ("values", "duplicate_of", "used"),
    [
        ([3.0, 1.0, 2.0], None, {1}),  # the best trial's config
        ([3.0, 2.0, 1.0], 0, {2, 0}),  # a best duplicate reads the trial it repeats
        ([], None, set()),  # nothing complete: no config
    ],
)
def test_write_all_names_the_configs_it_used(
    tmp_path: Path, values: list[float], duplicate_of: int | None, used: set[int]
) -> None:
    study = _study(tmp_path, values, last_repeats=duplicate_of)
    assert write_all(study, tmp_path / "sweep", "journal:///s", _configs(len(values))) == used
    if used:
        best = values.index(min(values))
        assert (tmp_path / "sweep" / "best_config.yaml").read_text().endswith(f"x: {best}\n")


def test_write_all_keeps_the_pareto_fronts_configs(tmp_path: Path) -> None:
    study = _study(tmp_path, [1.0, 2.0, 3.0], directions=["minimize", "minimize"])  # values (v, -v): all optimal
    assert write_all(study, tmp_path / "sweep", "journal:///s", _configs(3)) == {0, 1, 2}


def test_only_the_configs_the_result_files_use_stay_in_memory(tmp_path: Path) -> None:
    # Keeping every trial's composed config made trial 1,000 cost more than trial 1 (the garbage collector
    # walks them all); the result files need the best trial's alone (others are read from its job folder).
    study = _study(tmp_path, [5.0, 4.0, 1.0, 3.0])
    state = _state(tmp_path, study)
    state.configs = _configs(4)
    state.write_results()
    assert set(state.configs) == {2}
    state.configs[4] = OmegaConf.create({"x": 4})  # finished since: kept until the next write
    state.write_results()
    assert set(state.configs) == {2}


def _later(state: SweepState, seconds: float) -> None:
    """As if ``seconds`` had passed since the last writes."""
    state.results_written -= seconds
    state.report_written -= seconds


def test_a_costly_write_waits_ten_times_as_long(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study = _study(tmp_path, [1.0])
    state = _state(tmp_path, study, report_interval=1)
    reports: list[float] = []

    def slow_report(study: Any, sweep_dir: Path) -> None:
        reports.append(time.monotonic())
        time.sleep(0.2)  # a report that takes 0.2 s may be rewritten every 2 s, not every second

    monkeypatch.setattr(state_module, "write_report", slow_report)
    state.write_results(final=False)
    assert len(reports) == 1 and state.report_cost >= 0.2
    _later(state, 1.5)  # past report_interval, not past 10 x its cost
    state.write_results(final=False)
    assert len(reports) == 1
    _later(state, 1.0)  # 2.5 s after it
    state.write_results(final=False)
    assert len(reports) == 2
    state.write_results()  # the end of a run always writes
    assert len(reports) == 3


def test_report_interval_0_writes_after_every_batch_whatever_the_cost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = _study(tmp_path, [1.0])
    state = _state(tmp_path, study, report_interval=0)
    reports: list[int] = []
    monkeypatch.setattr(state_module, "write_report", lambda study, sweep_dir: reports.append(1) or time.sleep(0.05))
    for _ in range(3):
        state.write_results(final=False)
    assert len(reports) == 3
