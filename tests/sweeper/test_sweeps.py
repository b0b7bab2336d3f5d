"""End to end: the toy app swept by the clara_optuna plugin in a real ``-m`` subprocess.

Each test runs one or two tiny sweeps (a trial of the toy task takes ~0.2 s; start-up ~1.5 s).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from tests.sweeper.conftest import TOY_APP

BASE = ("hydra.sweeper.sampler.seed=0",)


def states(sweep: Any) -> list[str]:
    return [row["state"] for row in sweep.trials()]


def test_sweep_baseline_results_and_best_config(run_toy: Any, tmp_path: Path) -> None:
    sweep = run_toy("x=interval(0,1)", "opt=sgd,adam", "width=choice([8,16],[4])", "hydra.sweeper.n_trials=4", *BASE)
    rows = sweep.trials()
    assert [r["number"] for r in rows] == ["0", "1", "2", "3"] and set(states(sweep)) == {"COMPLETE"}
    # Trial 0 is Clara's unsearched configuration: the composed defaults, no override.
    assert rows[0]["baseline"] == "True"
    assert (rows[0]["params_x"], rows[0]["params_opt"], rows[0]["params_width"]) == ("0.5", "sgd", "[8, 16]")
    first = sweep.trainings()[0]
    assert (first["trial"], first["x"], first["opt"], first["width"], first["n"]) == (0, 0.5, "sgd", [8, 16], 2)
    assert yaml.safe_load((sweep.sweep_dir / "0" / ".hydra" / "overrides.yaml").read_text()) == []
    # A list choice reaches the job as the list itself.
    assert all(isinstance(t["width"], list) for t in sweep.trainings())
    # Job folder N holds trial N.
    assert [t["output_dir"] for t in sweep.trainings()] == [str(sweep.sweep_dir / str(i)) for i in range(4)]
    results = sweep.results()
    best = min(rows, key=lambda r: float(r["value"]))
    assert results["best_trial"] == int(best["number"]) and results["best_value"] == pytest.approx(float(best["value"]))
    assert results["best_job_dir"] == str(sweep.sweep_dir / best["number"])
    assert "Optuna study 'toy': 4 trial(s)" in sweep.output  # the summary table
    # best_config.yaml runs as is.
    header = (sweep.sweep_dir / "best_config.yaml").read_text().splitlines()[2]
    assert f"--config-path {sweep.sweep_dir} --config-name best_config" in header
    rerun = subprocess.run(
        [sys.executable, str(TOY_APP), "--config-path", str(sweep.sweep_dir), "--config-name", "best_config",
         f"hydra.run.dir={tmp_path / 'rerun'}"],
        cwd=tmp_path, capture_output=True, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("TOY_")},
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr


def test_grid_runs_every_point_once_and_reuses_duplicates(run_toy: Any) -> None:
    sweep = run_toy("hydra/sweeper/sampler=grid", "opt=sgd,adam", "hydra.sweeper.n_trials=4", *BASE)
    # Baseline (sgd) + the two grid points, one of which repeats the baseline: 2 trainings, then the
    # grid is exhausted and the sweep ends before n_trials.
    assert len(sweep.trainings()) == 2
    rows = sweep.trials()
    assert len(rows) == 3 and set(states(sweep)) == {"COMPLETE"}
    duplicate = [r for r in rows if r["duplicate_of"]]
    assert len(duplicate) == 1 and duplicate[0]["reason"].startswith("duplicate of trial 0")
    assert duplicate[0]["value"] == rows[0]["value"]
    assert "every grid point has been tried" in sweep.output


def test_duplicates_are_not_retrained(run_toy: Any) -> None:
    args = (
        "hydra/sweeper/sampler=random",
        "opt=sgd,adam",
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.baseline_trial=false",
    )
    sweep = run_toy(*args, *BASE)
    distinct = {r["params_opt"] for r in sweep.trials()}
    assert len(sweep.trials()) == 6
    assert len(sweep.trainings()) == len(distinct) <= 2  # 6 trials over 2 points: at most 2 trainings


def test_failed_trials_are_recorded_and_the_sweep_goes_on(run_toy: Any) -> None:
    sweep = run_toy(
        "hydra/sweeper/sampler=grid", "mode=choice(ok,diverge,raise,oom)", "hydra.sweeper.baseline_trial=false",
        "hydra.sweeper.n_trials=4", *BASE,
    )  # fmt: skip
    by_mode = {r["params_mode"]: r for r in sweep.trials()}
    assert by_mode["ok"]["state"] == "COMPLETE"
    assert (by_mode["diverge"]["state"], by_mode["diverge"]["reason"]) == ("FAIL", "objective is nan (diverged?)")
    assert (by_mode["raise"]["state"], by_mode["raise"]["reason"]) == ("FAIL", "ValueError: toy failure")
    assert by_mode["oom"]["state"] == "FAIL"
    assert by_mode["oom"]["reason"].startswith("out of memory: RuntimeError: CUDA out of memory")
    assert sweep.results()["best_trial"] == int(by_mode["ok"]["number"])


def test_a_sweep_whose_trials_all_fail_stops_early_with_the_first_error(run_toy: Any) -> None:
    sweep = run_toy("x=interval(0,1)", "mode=fail", "hydra.sweeper.n_trials=20", *BASE, check=False)
    assert sweep.proc.returncode != 0
    assert "the first 3 trial(s) of this sweep all failed" in sweep.output
    assert "FileNotFoundError: no such datalist: /nope/dataset.json" in sweep.output
    assert states(sweep) == ["FAIL", "FAIL", "FAIL"]


def test_pruner_prunes_and_nop_does_not(run_toy: Any) -> None:
    # The toy reports final + 1/(step+1) at steps 0..4, so a trial whose x is far from 0.3 stays above
    # the median of the earlier trials at every step. The median pruner (2 startup trials) must prune
    # at least one of the 6 later trials: with seed 0 TPE samples x values spread over [0, 1]; if half
    # of them were worse than the median by chance, the chance that none is pruned would be 1/64, and the
    # seed makes the run deterministic anyway. With NopPruner, nothing may be pruned.
    args = ("x=interval(0,1)", "steps=5", "hydra.sweeper.n_trials=8", *BASE)
    pruned = run_toy(*args, "hydra.sweeper.pruner.n_startup_trials=2")
    assert states(pruned).count("PRUNED") >= 1
    assert all(r["reason"].startswith("pruned at step") for r in pruned.trials() if r["state"] == "PRUNED")
    kept = run_toy(*args, "hydra/sweeper/pruner=nop", "hydra.sweeper.study_name=toy_nop", sweep_dir="sweep_nop")
    assert "PRUNED" not in states(kept)


def test_pruning_from_a_reopened_trial_matches_the_live_trial(run_toy: Any) -> None:
    """A job in another process (joblib, submitit) reopens its trial from the storage: same decisions."""
    args = ("x=interval(0,1)", "steps=3", "hydra.sweeper.n_trials=6", "hydra.sweeper.pruner.n_startup_trials=1", *BASE)
    live = run_toy(*args, "hydra.sweeper.study_name=live", sweep_dir="live")
    reopened = run_toy(*args, "hydra.sweeper.study_name=reopened", env={"TOY_REOPEN": "1"}, sweep_dir="reopened")
    assert "PRUNED" in states(live)
    assert states(reopened) == states(live)


def test_resume_after_a_killed_sweep(run_toy: Any, tmp_path: Path) -> None:
    args = ("x=interval(0,1)", "hydra.sweeper.n_trials=5", *BASE)
    first = run_toy(*args, env={"TOY_EXIT_AT": "2"}, check=False, sweep_dir=None)
    assert first.proc.returncode == 3  # the process died inside trial 2
    (sweep_dir,) = [p.parent for p in tmp_path.glob("multirun/*/*/multirun.yaml")]
    before = {p: p.read_text() for p in sweep_dir.glob("[01]/.hydra/*.yaml")}
    second = run_toy(*args, sweep_dir=None)
    # Hydra's default folder has a timestamp: the rerun continued in the first run's folder.
    assert [p.parent for p in tmp_path.glob("multirun/*/*/multirun.yaml")] == [sweep_dir]
    assert "continuing in its sweep folder" in second.output
    rows = list(__import__("csv").DictReader((sweep_dir / "trials.csv").open()))
    assert [(r["number"], r["state"], r["reason"]) for r in rows[:3]] == [
        ("0", "COMPLETE", ""), ("1", "COMPLETE", ""), ("2", "FAIL", "interrupted")
    ]  # fmt: skip
    assert rows[3]["retry_of"] == "2" and rows[3]["params_x"] == rows[2]["params_x"]
    counted = [r for r in rows if r["reason"] != "interrupted"]
    assert len(counted) == 5 and all(r["state"] == "COMPLETE" for r in counted)  # n_trials is the total
    assert {p: p.read_text() for p in before} == before  # nothing overwritten
    assert sorted(int(p.name) for p in sweep_dir.iterdir() if p.name.isdigit()) == list(range(6))
    assert (tmp_path / "multirun" / "optuna" / "toy.journal").is_file()  # the default storage


def test_resume_after_ctrl_c_retries_the_interrupted_trial(run_toy: Any) -> None:
    args = ("x=interval(0,1)", "hydra.sweeper.n_trials=3", *BASE)
    first = run_toy(*args, env={"TOY_INTERRUPT_AT": "1"}, check=False)
    assert first.proc.returncode != 0
    # Ctrl-C closed trial 1 itself and enqueued its parameters again (trial 2, WAITING).
    assert [(r["state"], r["reason"]) for r in first.trials()] == [
        ("COMPLETE", ""), ("FAIL", "interrupted"), ("WAITING", "")
    ]  # fmt: skip
    second = run_toy(*args)
    rows = second.trials()
    assert [r["state"] for r in rows] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert rows[2]["retry_of"] == "1" and rows[2]["params_x"] == rows[1]["params_x"]


def test_keep_best_deletes_other_checkpoints(run_toy: Any) -> None:
    sweep = run_toy("x=interval(0,1)", "hydra.sweeper.n_trials=4", "hydra.sweeper.keep_best=1", *BASE)
    with_checkpoints = sorted(p.parent.parent.name for p in sweep.sweep_dir.glob("*/models/model.pt"))
    assert with_checkpoints == [str(sweep.results()["best_trial"])]
    assert "keep_best=1: deleted" in sweep.output


def test_keep_best_cleans_a_trial_killed_between_its_end_and_its_record(run_toy: Any) -> None:
    args = ("x=interval(0,1)", "hydra.sweeper.n_trials=4", "hydra.sweeper.keep_best=1", *BASE)
    first = run_toy(*args, env={"TOY_EXIT_AFTER": "1"}, check=False)
    assert first.proc.returncode == 3 and (first.sweep_dir / "1" / "models" / "model.pt").is_file()
    second = run_toy(*args)
    rows = second.trials()
    assert (rows[1]["state"], rows[1]["reason"], rows[1]["job_dir"]) == (
        "FAIL",
        "interrupted",
        str(second.sweep_dir / "1"),
    )
    kept = sorted(p.parent.parent.name for p in second.sweep_dir.glob("*/models/model.pt"))
    assert kept == [str(second.results()["best_trial"])]  # trial 1's checkpoint was found and deleted


def test_stop_threshold_ends_the_sweep(run_toy: Any) -> None:
    # The baseline (x=0.5, n=2, sgd, width [8, 16]) scores 0.063, below the threshold.
    sweep = run_toy("x=interval(0,1)", "hydra.sweeper.n_trials=10", "hydra.sweeper.stop_threshold=0.07", *BASE)
    assert len(sweep.trials()) == 1
    assert "stop_threshold 0.07 reached by trial 0" in sweep.output


def test_custom_search_space(run_toy: Any) -> None:
    sweep = run_toy(
        "opt=sgd,adam", "hydra.sweeper.custom_search_space=toy_space.extend", "hydra.sweeper.baseline_trial=false",
        "hydra/sweeper/sampler=random", "hydra.sweeper.n_trials=4", *BASE,
    )  # fmt: skip
    for row, training in zip(sweep.trials(), sweep.trainings(), strict=False):
        if row["params_opt"] == "adam":
            assert row["params_n"] and int(row["params_n"]) == training["n"]
        else:
            assert row["params_n"] == "" and training["n"] == 2


def test_multi_objective(run_toy: Any) -> None:
    sweep = run_toy(
        "x=interval(0,1)", "objectives=2", "steps=2", "hydra.sweeper.direction=[minimize,maximize]",
        "hydra/sweeper/sampler=nsgaii", "hydra.sweeper.n_trials=3", *BASE,
    )  # fmt: skip
    assert set(states(sweep)) == {"COMPLETE"}
    assert {"value_0", "value_1"} <= set(sweep.trials()[0])
    front = sweep.results()["pareto_front"]
    assert front and all(len(t["values"]) == 2 for t in front)


@pytest.mark.parametrize("storage", ["sqlite:///studies/toy.db", "studies/toy.journal"])
def test_storages(run_toy: Any, tmp_path: Path, storage: str) -> None:
    sweep = run_toy("x=interval(0,1)", "hydra.sweeper.n_trials=2", f"hydra.sweeper.storage={storage}", *BASE)
    assert sweep.results()["storage"].endswith(f"{tmp_path}/studies/toy.{storage.rsplit('.', 1)[1]}")
    from clara_hydra.sweeper.storage import open_storage

    url = sweep.results()["storage"]
    study = optuna.load_study(study_name="toy", storage=open_storage(url))
    assert len(study.trials) == 2 and study.user_attrs["sweep_dir"] == str(sweep.sweep_dir)


@pytest.mark.postgres
def test_postgres_sweep(run_toy: Any) -> None:
    url = os.environ.get("CLARA_HYDRA_PG_URL")
    if not url:
        pytest.skip("set CLARA_HYDRA_PG_URL (e.g. postgresql://postgres@localhost/optuna) to run")
    pytest.importorskip("psycopg", reason="needs the PostgreSQL driver: pip install -e '.[postgres]'")
    name = f"toy_pg_{os.getpid()}_{id(run_toy)}"
    sweep = run_toy("x=interval(0,1)", "hydra.sweeper.n_trials=2", f"hydra.sweeper.storage={url}",
                    f"hydra.sweeper.study_name={name}", *BASE)  # fmt: skip
    assert set(states(sweep)) == {"COMPLETE"}
    from clara_hydra.sweeper.storage import open_storage

    optuna.delete_study(study_name=name, storage=open_storage(url))


def test_pruning_across_processes_with_the_joblib_launcher(run_toy: Any) -> None:
    """Jobs in loky worker processes reopen their trial from the journal and are pruned there."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="needs hydra-joblib-launcher")
    sweep = run_toy(
        "x=interval(0,1)", "steps=4", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=8", "hydra.sweeper.pruner.n_startup_trials=2", *BASE,
    )  # fmt: skip
    assert "PRUNED" in states(sweep)  # seed 0: trials 2, 3, 4 and 6 are pruned (checked by hand once)
