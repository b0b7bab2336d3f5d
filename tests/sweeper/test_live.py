"""The live progress bar: drawn from the study's storage on a terminal, never into captured output."""

from __future__ import annotations

import io
from pathlib import Path

import optuna
from rich.console import Console

from clara_hydra.sweeper.live import LiveProgress, describe, live_progress, wanted


def _study(tmp_path: Path) -> optuna.Study:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "s.journal")))
    study = optuna.create_study(study_name="demo", storage=storage, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    study.ask()  # one trial left running, as a worker's would be
    return study


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_describe_counts_running_trials_and_names_the_best(tmp_path: Path) -> None:
    study = _study(tmp_path)
    used, text = describe(study)
    best = max(t.value for t in study.trials if t.value is not None)
    assert used == 3  # finished trials; the running one is counted apart
    assert f"best {best:.4g}" in text and "1 running" in text and "study 'demo'" in text


def test_the_bar_is_drawn_on_a_terminal(tmp_path: Path) -> None:
    study = _study(tmp_path)
    out = _Tty()
    live = LiveProgress(study, 6, console=Console(file=out, force_terminal=True, width=120), interval=0.05)
    live.start()
    live.refresh()
    live.stop()
    assert "3/6" in out.getvalue() and "1 running" in out.getvalue()


def test_only_an_interactive_terminal_gets_the_bar(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert not wanted(io.StringIO())  # a pipe, a log file, pytest's capture
    assert wanted(_Tty())
    monkeypatch.setenv("CLARA_HYDRA_LIVE", "0")
    assert not wanted(_Tty())
    with live_progress(_study(tmp_path), 6):  # stdout is captured here: nothing is drawn, nothing fails
        pass
