"""A live progress display of the sweep, when the console is an interactive terminal.

One bar below the per-trial lines (:mod:`clara_hydra.sweeper.progress`): trials counted against the
budget, the best value so far, how many trials run now (all workers), elapsed time and rich's ETA. It
reads the study itself every ``interval`` seconds, so it works the same for a single process, for a
coordinator whose workers are other processes, and for a worker that joins a study run elsewhere.

It is drawn only when stdout is a terminal (never into a log file or a captured test output) and
``CLARA_HYDRA_LIVE`` is not ``0``. rich's ``Progress`` draws it (a dependency already: the summary
table); rich keeps the lines printed meanwhile above the bar.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from rich.console import Console

LIVE_ENV = "CLARA_HYDRA_LIVE"


def wanted(stream: Any = None) -> bool:
    """Whether to draw the live display: an interactive terminal, not turned off by ``CLARA_HYDRA_LIVE=0``."""
    stream = stream if stream is not None else sys.stdout
    if os.environ.get(LIVE_ENV, "1") == "0":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def describe(study: optuna.Study) -> tuple[int, str]:
    """(finished trials that count against the budget, the bar's text) for the study as stored now."""
    from optuna.trial import TrialState

    from clara_hydra.sweeper.resume import budget_used

    trials = study.get_trials(deepcopy=False)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    text = f"study '{study.study_name}'"
    if done and len(study.directions) == 1:
        maximize = study.directions[0].name.lower() == "maximize"
        best = (max if maximize else min)(done, key=lambda t: t.values[0])
        text += f" · best {best.values[0]:.4g} (trial {best.number})"
    text += f" · {running} running"
    return budget_used(study), text


class LiveProgress:
    """The bar, refreshed from the study by a daemon thread until :meth:`stop`.

    Args:
        study: the study to follow (any storage; only read).
        n_trials: the study's budget.
        console: where to draw (default: rich's console on stdout).
        interval: seconds between two reads of the study.
    """

    def __init__(
        self, study: optuna.Study, n_trials: int, console: Console | None = None, interval: float = 1.0
    ) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.study = study
        self.n_trials = n_trials
        self.interval = interval
        self._stop = threading.Event()
        self.progress = Progress(
            TextColumn("[bold]sweep[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,  # the summary table replaces it at the end
        )
        self.task = self.progress.add_task("", total=n_trials)
        self._thread = threading.Thread(target=self._follow, name="clara-hydra-live", daemon=True)

    def refresh(self) -> None:
        """Read the study once and redraw the bar."""
        used, text = describe(self.study)
        self.progress.update(self.task, completed=min(used, self.n_trials), description=text)

    def start(self) -> None:
        self.refresh()
        self.progress.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.progress.stop()

    def _follow(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except Exception:  # a storage hiccup must never end the sweep: the next read tries again
                continue


@contextmanager
def live_progress(study: optuna.Study, n_trials: int, enabled: bool | None = None) -> Iterator[None]:
    """Draw the live bar around a block when :func:`wanted` (or ``enabled``) says so; otherwise do nothing."""
    if not (wanted() if enabled is None else enabled):
        yield
        return
    live = LiveProgress(study, n_trials)
    live.start()
    try:
        yield
    finally:
        live.stop()
