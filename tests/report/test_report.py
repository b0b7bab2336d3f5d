"""``report.html``: self-contained, every section, the best trial's values, folder and command; the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest

from clara_hydra.cli import main as cli
from clara_hydra.report import REPORT_FILE, write_report
from tests.report.conftest import make_study

PLOTS = ("history", "importances", "parallel", "slices", "curves", "timeline")


def test_report_is_one_offline_file_with_every_plot(study_dir: tuple[optuna.Study, Path]) -> None:
    study, folder = study_dir
    path = write_report(study, folder)
    assert path == folder / REPORT_FILE
    text = path.read_text()
    # Self-contained: plotly.js inline, nothing fetched (no script src, no stylesheet link, no CDN).
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", text)
    from clara_hydra.report.page import _plotly_js

    assert _plotly_js() in text and "Plotly.newPlot" in text
    assert "https://" not in text.replace(_plotly_js(), "")  # the bundle's own defaults (geo maps) aside
    for key in PLOTS:
        assert f'id="plot-{key}"' in text, key
    best = study.best_trial
    assert f"Trial {best.number}" in text and f"val_mean_dice = {best.value:.6g}" in text
    assert str(folder / str(best.number)) in text  # its folder
    assert f"--config-path {folder.resolve()} --config-name best_config" in text  # the command that reruns it
    assert "experiment=quickstart learning_rate=" in text
    assert "8 trial(s): 5 COMPLETE, 1 FAIL, 2 PRUNED" in text


def test_learning_curves_include_pruned_trials(study_dir: tuple[optuna.Study, Path]) -> None:
    from clara_hydra.report.figures import build_figures

    study, _ = study_dir
    curves = next(f for f in build_figures(study) if f.key == "curves").figure
    names = {trace.name for trace in curves.data}
    assert {"Trial3", "Trial6"} <= names  # the pruned ones
    assert "Trial5" not in names  # the failed trial reported nothing


def test_timeline_has_one_lane_per_worker(tmp_path: Path) -> None:
    from clara_hydra.report.figures import ONE_LANE, timeline

    lanes = {y for trace in timeline(make_study(tmp_path / "a", workers=True)).data for y in trace.y}
    assert lanes == {"w0@host", "w1@host"}
    lanes = {y for trace in timeline(make_study(tmp_path / "b")).data for y in trace.y}
    assert lanes == {ONE_LANE}


def test_an_empty_study_and_a_multi_objective_study_still_write(tmp_path: Path) -> None:
    storage = optuna.storages.InMemoryStorage()
    empty = optuna.create_study(study_name="empty", storage=storage)
    text = write_report(empty, tmp_path / "e").read_text()
    assert "No complete trial yet" in text and "0 trial(s): none yet" in text
    multi = optuna.create_study(study_name="multi", storage=storage, directions=["maximize", "minimize"])
    multi.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_float("y", 0, 1)), n_trials=6)
    text = write_report(multi, tmp_path / "m").read_text()
    assert 'id="plot-pareto"' in text and "on the Pareto front" in text


def test_rewriting_replaces_the_file_whole(study_dir: tuple[optuna.Study, Path]) -> None:
    study, folder = study_dir
    write_report(study, folder)
    trial = study.ask()
    trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
    trial.suggest_categorical("loss", ["dice_loss", "focal_loss"])
    study.tell(trial, 0.99)
    text = write_report(study, folder).read_text()
    assert "9 trial(s)" in text and f"Trial {trial.number}" in text
    assert not list(folder.glob(".report.html.*"))  # no temp file left


def test_cli_writes_it_from_the_sweep_folder_or_the_storage(
    study_dir: tuple[optuna.Study, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, folder = study_dir
    assert cli(["report", str(folder)]) == 0
    assert (folder / REPORT_FILE).is_file()
    (folder / REPORT_FILE).unlink()
    assert cli(["report", str(folder / "optuna" / "toy.journal"), "--study", "toy"]) == 0
    assert (folder / REPORT_FILE).is_file()  # the study's own sweep folder
    assert f"wrote {folder / REPORT_FILE}" in capsys.readouterr().out


def test_cli_user_errors_exit_2(study_dir: tuple[optuna.Study, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, folder = study_dir
    assert cli(["report", str(folder / "missing.db")]) == 2
    assert "no sweep folder or storage file" in capsys.readouterr().err
    assert cli(["report", str(folder / "optuna" / "toy.journal"), "--study", "nope"]) == 2
    assert "no study 'nope'" in capsys.readouterr().err
    make_study(folder / "second", name="other")  # a second study in another journal: one per file, fine
    (folder / "empty").mkdir()
    assert cli(["report", str(folder / "empty")]) == 2
    assert "holds no optimization_results.yaml" in capsys.readouterr().err
