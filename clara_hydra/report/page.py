"""``report.html``: one self-contained page (plotly.js inline, no CDN) that opens offline."""

from __future__ import annotations

import html
import os
import shlex
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clara_hydra.report.figures import Figure, build_figures, objective_names
from clara_hydra.sweep_record import TrialAttr
from clara_hydra.sweeper.results import BEST_CONFIG_FILE, best_trial_run_here

if TYPE_CHECKING:
    import optuna

REPORT_FILE = "report.html"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; } td, th { padding: 0.2rem 0.8rem; border-bottom: 1px solid #eee; text-align: left; }
code, pre { background: #f4f4f4; padding: 0.1rem 0.3rem; } pre { padding: 0.6rem; white-space: pre-wrap; }
.note { color: #666; font-style: italic; } .plot { min-height: 200px; }
"""
# Records script errors on the page itself, so a headless browser check (and a curious reader) can see them.
_ERRORS = (
    "<script>window.addEventListener('error', function (e) {"
    " var el = document.documentElement;"
    " el.setAttribute('data-errors', (el.getAttribute('data-errors') || '') + (e.message || 'error') + '\\n'); });"
    "</script>"
)


@lru_cache(maxsize=1)
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().replace("</script>", "<\\/script>")


def write_report(study: optuna.Study, sweep_dir: Path) -> Path:
    """Write (or rewrite) ``<sweep_dir>/report.html`` for the study's current trials.

    Safe to call after every finished trial: the file is replaced atomically, so a browser never reads
    half a page.

    Args:
        study: the study (any storage; read only).
        sweep_dir: the sweep folder (holds ``best_config.yaml`` when the sweeper wrote one).

    Returns:
        The path of the report.

    Example:
        >>> write_report(optuna.load_study(study_name="quickstart", storage=url), Path("multirun/x"))
        PosixPath('multirun/x/report.html')
    """
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    text = render(study, sweep_dir)
    path = sweep_dir / REPORT_FILE
    fd, tmp = tempfile.mkstemp(dir=sweep_dir, prefix=f".{REPORT_FILE}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the page from a browser run as another user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def render(study: optuna.Study, sweep_dir: Path) -> str:
    """The page's HTML text (see :func:`write_report`)."""
    figures = build_figures(study)
    trials = study.get_trials(deepcopy=False)
    counts = Counter(t.state.name for t in trials)
    title = f"Optuna study '{study.study_name}'"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title>",
        f"<style>{_STYLE}</style>",
        _ERRORS,
        f"<script>{_plotly_js()}</script>",
        "</head><body>",
        f"<h1>{_e(title)}</h1>",
        "<p>"
        + _e(
            f"{len(trials)} trial(s): "
            + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none yet")
            + f" · directions {[d.name.lower() for d in study.directions]}"
            + f" · sweep folder {sweep_dir.resolve()} · written {datetime.now():%Y-%m-%d %H:%M:%S}"
        )
        + "</p>",
        _best_section(study, sweep_dir),
    ]
    for fig in figures:
        parts.append(_figure_section(fig))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _figure_section(fig: Figure) -> str:
    out = [f'<section id="{fig.key}"><h2>{_e(fig.title)}</h2>']
    if fig.figure is not None:
        out.append(
            '<div class="plot">'
            + fig.figure.to_html(
                full_html=False,
                include_plotlyjs=False,
                div_id=f"plot-{fig.key}",
                config={"displaylogo": False, "responsive": True},
            )
            + "</div>"
        )
    if fig.note:
        out.append(f'<p class="note">{_e(fig.note)}</p>')
    out.append("</section>")
    return "\n".join(out)


def _best_section(study: optuna.Study, sweep_dir: Path) -> str:
    from optuna.trial import TrialState

    names = objective_names(study)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    out = ['<section id="best"><h2>Best trial</h2>']
    # Single objective: the best trial run here (a warm-started trial was measured under an earlier config).
    best = list(study.best_trials) if len(names) > 1 else [t for t in [best_trial_run_here(study)] if t is not None]
    if not complete or not best:
        out.append('<p class="note">No complete trial yet.</p></section>')
        return "\n".join(out)
    if len(names) > 1:  # a single trial can make the whole front (it beats the others on every objective)
        out.append(f"<p>{len(best)} trial(s) on the Pareto front; each below.</p>")
    for t in best:
        values = ", ".join(f"{n} = {v:.6g}" for n, v in zip(names, t.values, strict=True))
        job_dir = t.user_attrs.get(TrialAttr.JOB_DIR)
        baseline = " (baseline: the unsearched defaults)" if t.user_attrs.get(TrialAttr.BASELINE) else ""
        out.append(f"<h3>Trial {t.number}{baseline}</h3>")
        out.append(f"<p><b>{_e(values)}</b></p>")
        out.append(_params_table(t.params))
        out.append(f"<p>Folder: <code>{_e(str(job_dir) if job_dir else 'unknown')}</code></p>")
        out.append(
            "<p>Rerun it:</p><pre>" + _e("\n".join(rerun_commands(t, sweep_dir, single=len(best) == 1))) + "</pre>"
        )
    out.append("</section>")
    return "\n".join(out)


def rerun_commands(trial: optuna.trial.FrozenTrial, sweep_dir: Path, single: bool = True) -> list[str]:
    """Commands that train ``trial`` again: its saved config (when it is the one best), or its overrides."""
    script = _script()
    out = []
    if single and (sweep_dir / BEST_CONFIG_FILE).is_file():
        out.append(f"python {script} --config-path {shlex.quote(str(sweep_dir.resolve()))} --config-name best_config")
    overrides = [*trial.user_attrs.get(TrialAttr.FIXED_OVERRIDES, []), *trial.user_attrs.get(TrialAttr.OVERRIDES, [])]
    line = " ".join(["python", script, *(shlex.quote(str(o)) for o in overrides)])
    out.append(f"{line}   # from the app's own config folder" if out else line)
    return out


def _params_table(params: Mapping[str, Any]) -> str:
    if not params:
        return '<p class="note">No searched parameter (the defaults).</p>'
    rows = "".join(f"<tr><td><code>{_e(k)}</code></td><td>{_e(_fmt(v))}</td></tr>" for k, v in params.items())
    return f"<table><tr><th>parameter</th><th>value</th></tr>{rows}</table>"


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _script() -> str:
    script = os.path.basename(sys.argv[0]) if sys.argv else ""
    return script if script.endswith(".py") else "train.py"


def _e(text: str) -> str:
    return html.escape(text, quote=True)
