"""Which trial to export: the best (or a given) trial of a sweep folder or of an Optuna storage.

A sweep folder is read from its result files (``trials.csv``, ``optimization_results.yaml``); a storage URL
(``journal:///abs/x.journal``, ``sqlite:///x.db``, ``postgresql://...``) is opened with Optuna and the
trials' user attributes give their job folders (``job_dir``) and overrides (``overrides``), as the sweeper
records them (:mod:`clara_hydra.sweeper.results`). Either way the result is a :class:`SelectedTrial` whose
``job_dir`` holds ``.hydra/config.yaml`` and ``models/``.

Example:
    >>> trial = select_trial("multirun/2026-12-01/10-00-00")  # doctest: +SKIP
    >>> trial.number, trial.job_dir  # doctest: +SKIP
    (0, PosixPath('multirun/2026-12-01/10-00-00/0'))
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clara_hydra.errors import ExportError, InputFileError, SweepError, with_fix
from clara_hydra.sweep_record import TrialAttr
from clara_hydra.sweeper.results import (
    RESULTS_FILE,
    TRIALS_FILE,
)

# States whose job folder holds a trained network: a pruned trial stopped early but saved its checkpoints.
EXPORTABLE_STATES = ("COMPLETE", "PRUNED")
CONFIG_FILE = Path(".hydra") / "config.yaml"


@dataclass(frozen=True)
class SelectedTrial:
    """One trial chosen for export.

    Args:
        number: the Optuna trial number.
        state: ``COMPLETE`` or ``PRUNED``.
        value: its objective value (the best validation key metric), None when it has none.
        study_name: the study it belongs to.
        job_dir: its job folder (``.hydra/config.yaml``, ``models/``, ``trial_summary.json``).
        overrides: the searched overrides of that trial (``learning_rate=0.001``, ...).
        params: the sampled parameters, as Optuna stores them.
    """

    number: int
    state: str
    value: float | None
    study_name: str
    job_dir: Path
    overrides: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def config_file(self) -> Path:
        """The trial's composed config (Hydra's ``.hydra/config.yaml``)."""
        return self.job_dir / CONFIG_FILE


def select_trial(source: str | Path, study: str | None = None, trial: int | None = None) -> SelectedTrial:
    """The trial to export from a sweep folder or a storage URL.

    Args:
        source: a sweep folder (holding ``trials.csv``) or an Optuna storage URL / journal or SQLite file.
        study: the study name; needed for a storage holding several studies.
        trial: the trial number; default: the best trial (single-objective studies).

    Returns:
        The chosen trial, its job folder checked to hold its composed config.

    Raises:
        InputFileError: the folder, the storage or the trial's job folder is missing.
        ExportError: no such study or trial, a trial that is not exportable, a multi-objective study without ``trial``.
    """
    path = Path(source)
    chosen = _from_folder(path, study, trial) if path.is_dir() else _from_storage(str(source), study, trial)
    if not chosen.config_file.is_file():
        raise InputFileError(
            with_fix(
                f"trial {chosen.number}: its job folder {chosen.job_dir} has no {CONFIG_FILE}",
                "export from the machine (or copy of the sweep folder) that holds the trial's job folders",
            )
        )
    return chosen


# -- sweep folder ---------------------------------------------------------------------------------------


def _from_folder(folder: Path, study: str | None, number: int | None) -> SelectedTrial:
    trials_file = folder / TRIALS_FILE
    if not trials_file.is_file():
        raise InputFileError(
            with_fix(
                f"{folder}: not a sweep folder (no {TRIALS_FILE})",
                "give the folder `python train.py -m` printed at the end (Results: .../trials.csv), "
                "or a storage URL with --study",
            )
        )
    results = _read_yaml(folder / RESULTS_FILE)
    study_name = str(results.get("study_name") or "")
    if study and study_name and study != study_name:
        raise ExportError(with_fix(f"{folder} holds study {study_name!r}, not {study!r}", "drop --study or fix it"))
    with open(trials_file, newline="") as f:
        rows = list(csv.DictReader(f))
    by_number = {int(r["number"]): r for r in rows}
    if number is None:
        number = _best_number(results, by_number, folder)
    if number not in by_number:
        raise ExportError(with_fix(f"{folder}: no trial {number}", f"choose one of {sorted(by_number)}"))
    row = by_number[number]
    _check_state(number, row["state"], row.get("reason", ""))
    job_dir = _job_dir(row.get("job_dir") or "", folder, number)
    params = {k[len("params_") :]: v for k, v in row.items() if k.startswith("params_") and v not in ("", None)}
    value = row.get("value")
    return SelectedTrial(
        number=number,
        state=row["state"],
        value=float(value) if value not in ("", None) else None,
        study_name=study_name or (study or ""),
        job_dir=job_dir,
        overrides=_overrides_of(job_dir),
        params=params,
    )


def _best_number(results: Mapping[str, Any], rows: Mapping[int, Mapping[str, str]], folder: Path) -> int:
    best = results.get("best_trial")
    if isinstance(best, int):
        return best
    if results.get("pareto_front"):
        numbers = [p.get("number") for p in results["pareto_front"]]
        raise ExportError(
            with_fix(f"{folder}: a multi-objective study has no single best trial", f"pick one with --trial {numbers}")
        )
    states = sorted({r["state"] for r in rows.values()})
    raise ExportError(
        with_fix(f"{folder}: no completed trial to export (states: {states})", "finish a trial first, or use --trial")
    )


def _job_dir(recorded: str, folder: Path, number: int) -> Path:
    """The trial's job folder: the given folder's own subfolder of that name first (a moved or copied sweep
    folder), then the folder the sweep recorded."""
    candidates = [folder / Path(recorded).name, Path(recorded)] if recorded else []
    candidates.append(folder / str(number))
    for candidate in candidates:
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    return candidates[0]


def _overrides_of(job_dir: Path) -> tuple[str, ...]:
    data = _read_yaml(job_dir / ".hydra" / "overrides.yaml", default=[])
    return tuple(str(o) for o in data) if isinstance(data, list) else ()


def _read_yaml(path: Path, default: Any = None) -> Any:
    if not path.is_file():
        return {} if default is None else default
    return yaml.safe_load(path.read_text()) or ({} if default is None else default)


# -- storage -----------------------------------------------------------------------------------------------


def _from_storage(url: str, study: str | None, number: int | None) -> SelectedTrial:
    from clara_hydra.sweep_record import SweepNotFoundError, open_sweep, trial_record

    try:
        loaded = open_sweep(url, study, study_hint="--study").study
    except SweepNotFoundError as exc:
        raise InputFileError(str(exc)) from exc
    except SweepError as exc:
        raise ExportError(str(exc)) from exc
    study = loaded.study_name
    trials = {t.number: t for t in loaded.get_trials(deepcopy=False)}
    if number is None:
        if len(loaded.directions) != 1:
            front = [t.number for t in loaded.best_trials]
            raise ExportError(
                with_fix(f"study {study!r} is multi-objective: no single best trial", f"pick one with --trial {front}")
            )
        try:
            number = loaded.best_trial.number
        except ValueError as exc:
            raise ExportError(with_fix(f"study {study!r} has no completed trial", "finish a trial first")) from exc
    if number not in trials:
        raise ExportError(with_fix(f"study {study!r} has no trial {number}", f"choose one of {sorted(trials)}"))
    record = trial_record(trials[number])
    _check_state(number, record.state, record.reason)
    if not record.job_dir:
        raise ExportError(
            with_fix(
                f"trial {number} of study {study!r} records no job folder ({TrialAttr.JOB_DIR.value!r} user attribute)",
                "export trials run by clara-hydra's sweeper",
            )
        )
    job_dir = Path(record.job_dir)
    value = record.value
    return SelectedTrial(
        number=number,
        state=record.state,
        value=value if value is None or math.isfinite(value) else None,
        study_name=study,
        job_dir=job_dir,
        overrides=_overrides_of(job_dir) or record.overrides,
        params=dict(record.params),
    )


def _check_state(number: int, state: str, reason: str) -> None:
    if state not in EXPORTABLE_STATES:
        why = f" ({reason})" if reason else ""
        raise ExportError(
            with_fix(
                f"trial {number} is {state}{why}: only {' or '.join(EXPORTABLE_STATES)} trials have a trained network",
                "pick another with --trial (trials.csv lists them)",
            )
        )
