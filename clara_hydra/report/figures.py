"""The report's plots: Optuna's visualisation module (plotly) plus a timeline of trials by worker.

Each builder returns a :class:`Figure` holding either a plotly figure or the reason there is none yet
(too few trials, a multi-objective study), so a report written after the first trial already opens.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from clara_hydra.runtime.summary import objective_name
from clara_hydra.sweep_record import TrialAttr

if TYPE_CHECKING:
    import optuna

ONE_LANE = "sweep process"

_STATE_COLOURS = {
    "COMPLETE": "#2a9d8f",
    "PRUNED": "#e9c46a",
    "FAIL": "#e76f51",
    "RUNNING": "#8ab6d6",
    "WAITING": "#cccccc",
}


@dataclass(frozen=True)
class Figure:
    """One section of the report: a title, the plotly figure (or None) and a note shown instead or under it."""

    key: str
    title: str
    figure: Any = None
    note: str = ""


def objective_names(study: optuna.Study) -> list[str]:
    """The objectives' names: ``study.metric_names`` when set; else, for one objective, the key metric a
    trial's ``trial_summary.json`` names (``val_mean_dice``); else ``value`` / ``value 0``, ``value 1``."""
    names = study.metric_names
    if names:
        return list(names)
    n = len(study.directions)
    if n == 1:
        return [_summary_metric(study) or "value"]
    return [f"value {i}" for i in range(n)]


def _summary_metric(study: optuna.Study) -> str | None:
    for trial in study.get_trials(deepcopy=False):
        name = objective_name(trial.user_attrs.get(TrialAttr.JOB_DIR))
        if name:
            return name
    return None


def build_figures(study: optuna.Study) -> list[Figure]:
    """Every section's figure, in the report's order.

    Args:
        study: the study, from any storage.

    Returns:
        History, importances, parallel coordinates, slices, learning curves (intermediate values of
        every trial, pruned ones included), timeline by worker; for a multi-objective study the Pareto
        front first, and the per-objective plots of its first objective.
    """
    import optuna.visualization as vis
    from optuna.trial import TrialState

    names = objective_names(study)
    multi = len(names) > 1
    target: Callable[[optuna.trial.FrozenTrial], float] | None = (lambda t: t.values[0]) if multi else None
    kw: dict[str, Any] = {"target": target, "target_name": names[0]} if multi else {"target_name": names[0]}
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    searched = {n for t in complete for n in t.params}
    figs: list[Figure] = []
    if multi:
        figs.append(
            _make("pareto", "Pareto front", lambda: vis.plot_pareto_front(study, target_names=names), needs=complete)
        )
    figs.append(_make("history", "Optimisation history", lambda: vis.plot_optimization_history(study, **kw), complete))
    figs.append(
        _make(
            "importances",
            "Parameter importances",
            lambda: vis.plot_param_importances(study, **kw),
            complete,
            minimum=2,
            also=bool(searched),
        )
    )
    figs.append(
        _make(
            "parallel",
            "Parallel coordinates",
            lambda: vis.plot_parallel_coordinate(study, **kw),
            complete,
            also=bool(searched),
        )
    )
    figs.append(_make("slices", "Slices", lambda: vis.plot_slice(study, **kw), complete, also=bool(searched)))
    if multi:
        figs.append(
            Figure(
                "curves", "Learning curves", note="Optuna records no intermediate values in a multi-objective study."
            )
        )
    else:
        reported = [t for t in study.get_trials(deepcopy=False) if t.intermediate_values]
        figs.append(
            _make(
                "curves",
                "Learning curves (every trial, pruned ones included)",
                lambda: _curves(vis.plot_intermediate_values(study), names[0]),
                reported,
            )
        )
    figs.append(_make("timeline", "Timeline of trials", lambda: timeline(study), study.get_trials(deepcopy=False)))
    return figs


def _make(
    key: str,
    title: str,
    build: Callable[[], Any],
    needs: list[Any],
    minimum: int = 1,
    also: bool = True,
) -> Figure:
    if len(needs) < minimum or not also:
        return Figure(key, title, note=f"Shown once {minimum} trial(s) with searched parameters have finished.")
    try:
        with warnings.catch_warnings():
            # Optuna warns about too few trials per regime, experimental features: not the reader's concern.
            warnings.simplefilter("ignore")
            fig = build()
            # Optuna fixes some widths (slices: 300 px per parameter): let every plot follow the page instead.
            fig.update_layout(width=None, autosize=True)
            return Figure(key, title, fig)
    except Exception as exc:  # one plot must never cost the whole report (e.g. a single-valued parameter)
        return Figure(key, title, note=f"Not available: {type(exc).__name__}: {exc}")


def _curves(fig: Any, metric: str) -> Any:
    fig.update_layout(title="Intermediate values", xaxis_title="epoch (validation step)", yaxis_title=metric)
    return fig


def timeline(study: optuna.Study) -> Any:
    """Horizontal bars, one per trial, from its start to its end, one lane per worker, coloured by state.

    Written here because Optuna's ``plot_timeline`` has one lane per trial and knows nothing of workers;
    the bars are plain plotly (no pandas needed, unlike ``plotly.express.timeline``).
    """
    import plotly.graph_objects as go

    now = datetime.now()
    trials = [t for t in study.get_trials(deepcopy=False) if t.datetime_start is not None]
    fig = go.Figure()
    for state, colour in _STATE_COLOURS.items():
        chosen = [t for t in trials if t.state.name == state]
        if not chosen:
            continue
        starts = [t.datetime_start for t in chosen]
        ends = [t.datetime_complete or now for t in chosen]
        fig.add_trace(
            go.Bar(
                name=state,
                orientation="h",
                y=[str(t.user_attrs.get(TrialAttr.WORKER, ONE_LANE)) for t in chosen],
                base=[s.isoformat() for s in starts],  # type: ignore[union-attr]
                x=[(e - s).total_seconds() * 1000.0 for s, e in zip(starts, ends, strict=True)],  # type: ignore[operator]
                marker_color=colour,
                text=[f"trial {t.number}" for t in chosen],
                hovertemplate="%{text}<br>%{base|%H:%M:%S} + %{customdata:.1f} s<extra>" + state + "</extra>",
                customdata=[(e - s).total_seconds() for s, e in zip(starts, ends, strict=True)],  # type: ignore[operator]
            )
        )
    fig.update_layout(
        title="Trials by worker",
        barmode="overlay",
        xaxis={"type": "date", "title": "time"},
        yaxis={"title": "worker", "type": "category"},
        height=max(250, 120 + 40 * len({str(t.user_attrs.get(TrialAttr.WORKER, ONE_LANE)) for t in trials})),
    )
    return fig
