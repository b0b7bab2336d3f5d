"""Result files written to the sweep folder after every batch, and the summary table at the end.

- ``optimization_results.yaml``: best value, parameters, trial number, its job folder and overrides
  (the Pareto front for a multi-objective study), counts per state, the storage.
- ``trials.csv``: one row per trial: number, state, value(s), duration, parameters, reason, job folder.
- ``best_config.yaml``: the best trial's composed config; ``python train.py --config-path <sweep
  folder> --config-name best_config`` runs it as is (its header says so).

Files are replaced atomically, so an interrupted sweep never leaves half a file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from omegaconf import DictConfig, OmegaConf

from clara_hydra.sweep_record import RESULTS_FILE, TrialAttr, reason_of, trial_record

if TYPE_CHECKING:
    import optuna

TRIALS_FILE = "trials.csv"
BEST_CONFIG_FILE = "best_config.yaml"
MAX_SUMMARY_ROWS = 30

# Trial user attributes written by the runner and read here.


def write_all(
    study: optuna.Study,
    sweep_dir: Path,
    storage_display: str,
    configs: Mapping[int, DictConfig],
) -> set[int]:
    """Write the three result files.

    Args:
        study: the study.
        sweep_dir: the sweep folder.
        storage_display: the storage URL with its password masked.
        configs: trial number -> composed config, for trials launched by this process (others are read
            from their job folder's ``.hydra/config.yaml``).

    Returns:
        The numbers of the trials whose configs the files were made from (the best trial and the trial it
        repeats, or the Pareto front): a caller keeping configs in memory needs no others.
    """
    trials = study.get_trials(deepcopy=False)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(sweep_dir / TRIALS_FILE, trials_csv(trials, len(study.directions)))
    summary = results_summary(study, trials, storage_display, configs)
    _atomic_write(sweep_dir / RESULTS_FILE, yaml.safe_dump(summary, sort_keys=False, allow_unicode=True))
    used = {int(t["number"]) for t in summary.get("pareto_front", [])}
    best = summary.get("best_trial")
    if isinstance(best, int):
        trial = next(t for t in trials if t.number == best)
        used |= {best, int(trial.user_attrs.get(TrialAttr.DUPLICATE_OF, best))}
        text = best_config_text(study, trial, sweep_dir, configs)
        if text is not None:
            _atomic_write(sweep_dir / BEST_CONFIG_FILE, text)
    return used


def results_summary(
    study: optuna.Study,
    trials: Sequence[optuna.trial.FrozenTrial],
    storage_display: str,
    configs: Mapping[int, DictConfig] | None = None,
) -> dict[str, Any]:
    """The content of ``optimization_results.yaml``.

    Upstream's keys keep their meaning: ``name``, ``best_params`` (every searched parameter, also for the
    baseline trial, whose defaults outside the space are filled in from the config it ran with) and
    ``best_value``; a multi-objective study has upstream's ``solutions`` (``params``, ``values``) and our
    ``pareto_front`` (with trial numbers and folders).
    """
    from optuna.trial import TrialState

    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    out: dict[str, Any] = {
        "name": "optuna",
        "study_name": study.study_name,
        "storage": storage_display,
        "directions": [d.name.lower() for d in study.directions],
        "n_trials": len(trials),
        "states": counts,
    }
    from clara_hydra.sweeper import terminator, warm_start  # light modules; Optuna only inside functions

    out.update(**warm_start.results_entry(study), **terminator.results_entry(study))
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        return out
    if len(study.directions) == 1:
        best = best_trial_run_here(study, trials)
        if best is None:
            return out
        out.update(
            best_value=best.value,
            best_params=_plain(complete_params(best, trials, configs or {})),
            best_trial=best.number,
            best_job_dir=best.user_attrs.get(TrialAttr.JOB_DIR),
            best_overrides=best.user_attrs.get(TrialAttr.OVERRIDES, []),
            best_config=BEST_CONFIG_FILE,
        )
    else:
        front = study.best_trials
        out["solutions"] = [
            {"params": _plain(complete_params(t, trials, configs or {})), "values": list(t.values)} for t in front
        ]
        out["pareto_front"] = [
            {
                "number": t.number,
                "values": list(t.values),
                "params": _plain(t.params),
                "job_dir": t.user_attrs.get(TrialAttr.JOB_DIR),
                "overrides": t.user_attrs.get(TrialAttr.OVERRIDES, []),
            }
            for t in front
        ]
    return out


def best_trial_run_here(
    study: optuna.Study, trials: Sequence[optuna.trial.FrozenTrial] | None = None
) -> optuna.trial.FrozenTrial | None:
    """The best COMPLETE trial this study ran (single objective), None when there is none.

    A warm-started trial was measured under an earlier config and never run here (no job folder, no
    ``best_config.yaml``): it stays in the study and in ``trials.csv``, but it is never the best. Without
    warm-started trials this is Optuna's ``study.best_trial``.
    """
    from optuna.trial import TrialState

    from clara_hydra.sweeper.warm_start import is_warm_started

    trials = study.get_trials(deepcopy=False) if trials is None else trials
    if not any(is_warm_started(t) for t in trials):
        try:
            return study.best_trial
        except ValueError:  # no COMPLETE trial
            return None
    here = [t for t in trials if t.state == TrialState.COMPLETE and t.values and not is_warm_started(t)]
    if not here:
        return None
    sign = -1.0 if study.directions[0].name.lower() == "maximize" else 1.0
    return min(here, key=lambda t: (sign * t.values[0], t.number))


def complete_params(
    trial: optuna.trial.FrozenTrial,
    trials: Sequence[optuna.trial.FrozenTrial],
    configs: Mapping[int, DictConfig],
) -> dict[str, Any]:
    """``trial.params`` plus, for a baseline trial, the defaults it ran with for dimensions it did not suggest.

    The baseline trial suggests only the dimensions whose default lies in the space (Optuna cannot record
    a value outside a distribution); it ran with the composed default of the others, read here from its
    config (a config group's option from its ``.hydra/hydra.yaml``), so ``best_params`` names every
    searched parameter, as upstream's does.
    """
    params = dict(trial.params)
    if not trial.user_attrs.get(TrialAttr.BASELINE):
        return params
    missing = [n for t in trials for n in t.params if n not in params]
    if not missing:
        return params
    job_dir = trial.user_attrs.get(TrialAttr.JOB_DIR)
    cfg = configs.get(trial.number)
    if cfg is None and job_dir and (Path(job_dir) / ".hydra" / "config.yaml").is_file():
        cfg = OmegaConf.load(Path(job_dir) / ".hydra" / "config.yaml")  # type: ignore[assignment]
    hydra_file = Path(job_dir) / ".hydra" / "hydra.yaml" if job_dir else None
    choices = (
        OmegaConf.select(OmegaConf.load(hydra_file), "hydra.runtime.choices", default=None) or {}
        if hydra_file is not None and hydra_file.is_file()
        else {}
    )
    for name in dict.fromkeys(missing):
        key = name.lstrip("+~")
        if key in choices:
            params[name] = choices[key]
        elif cfg is not None:
            try:
                value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
                params[name] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
            except Exception:  # an interpolation that only resolves inside the job: leave the name out
                continue
    return params


def trials_csv(trials: Sequence[optuna.trial.FrozenTrial], n_objectives: int) -> str:
    """The content of ``trials.csv``: number, state, value(s), duration_s, params_*, reason, job_dir, ..."""
    value_cols = ["value"] if n_objectives == 1 else [f"value_{i}" for i in range(n_objectives)]
    names: list[str] = []
    for t in trials:
        names.extend(n for n in t.params if n not in names)
    header = ["number", "state", *value_cols, "duration_s", *(f"params_{n}" for n in names)]
    header += ["reason", *(a.value for a in (TrialAttr.JOB_DIR, TrialAttr.BASELINE, TrialAttr.DUPLICATE_OF))]
    header += [TrialAttr.RETRY_OF.value, TrialAttr.WORKER.value]  # the columns are named as the attributes
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for r in map(trial_record, trials):
        values = list(r.values) if r.values is not None else [None] * n_objectives
        writer.writerow(
            [r.number, r.state, *_cells(values), _cell(r.duration_s and round(r.duration_s, 3))]
            + [_cell(r.params.get(n)) for n in names]
            + [r.reason, *_cells([r.job_dir, r.baseline, r.duplicate_of, r.retry_of, r.worker])]
        )
    return buf.getvalue()


def best_config_text(
    study: optuna.Study, trial: optuna.trial.FrozenTrial, sweep_dir: Path, configs: Mapping[int, DictConfig]
) -> str | None:
    """``best_config.yaml``: the best trial's composed config (unresolved) under a how-to-run header."""
    source = trial.user_attrs.get(TrialAttr.DUPLICATE_OF, trial.number)
    job_dir = trial.user_attrs.get(TrialAttr.JOB_DIR)
    cfg = configs.get(trial.number) or configs.get(source)
    if cfg is not None:
        body = OmegaConf.to_yaml(cfg, resolve=False)
    elif job_dir and (Path(job_dir) / ".hydra" / "config.yaml").is_file():
        body = (Path(job_dir) / ".hydra" / "config.yaml").read_text()
    else:
        return None
    overrides = trial.user_attrs.get(TrialAttr.OVERRIDES, [])
    header = (
        f"# Best trial {trial.number} of Optuna study '{study.study_name}' (value {trial.value}), "
        f"job folder {job_dir}.\n"
        f"# Its composed config, searched values filled in. Run it as is with:\n"
        f"#   python {_script()} --config-path {sweep_dir.resolve()} --config-name {Path(BEST_CONFIG_FILE).stem}\n"
        f"# Overrides of that trial: {' '.join(overrides) or '(none: the defaults)'}\n"
    )
    return header + body


def print_summary(study: optuna.Study, sweep_dir: Path) -> None:
    """Print a table of the trials, best first, and where the result files are."""
    from optuna.trial import TrialState
    from rich.console import Console
    from rich.table import Table

    trials = study.get_trials(deepcopy=False)
    sign = -1.0 if study.directions[0].name.lower() == "maximize" else 1.0
    order = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.FAIL: 2}

    def rank(t: optuna.trial.FrozenTrial) -> tuple[int, float, int]:
        first = t.values[0] if t.values else 0.0
        return order.get(t.state, 3), sign * first, t.number

    table = Table(title=f"Optuna study '{study.study_name}': {len(trials)} trial(s)")
    for column in ("#", "state", "value", "params", "seconds", "note"):
        table.add_column(column, overflow="fold")
    shown = sorted(trials, key=rank)
    for t in shown[:MAX_SUMMARY_ROWS]:
        value = ", ".join(f"{v:.6g}" for v in t.values) if t.values else ""
        params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
        seconds = f"{t.duration.total_seconds():.1f}" if t.duration is not None else ""
        table.add_row(str(t.number), t.state.name, value, params, seconds, reason_of(t))
    console = Console(width=max(100, Console().width))
    console.print(table)
    if len(shown) > MAX_SUMMARY_ROWS:
        console.print(f"... {len(shown) - MAX_SUMMARY_ROWS} more in {sweep_dir / TRIALS_FILE}")
    console.print(f"Results: {sweep_dir / RESULTS_FILE}, {sweep_dir / TRIALS_FILE}, {sweep_dir / BEST_CONFIG_FILE}")


def _script() -> str:
    """The app's script as the user typed it (``train.py`` for this project's entry point)."""
    script = sys.argv[0] if sys.argv else ""
    return script if script.endswith(".py") else "train.py"


def _plain(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v)) for k, v in params.items()}


def _cells(values: Sequence[Any]) -> list[str]:
    return [_cell(v) for v in values]


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _atomic_write(path: Path, text: str) -> None:
    """Write a file whole or not at all; a unique temp name, so workers writing at once never collide."""
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
