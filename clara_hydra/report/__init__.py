"""The sweep report: ``report.html``, a self-contained page of Optuna's plots, the best trial and its command.

``write_report(study, sweep_dir)`` is called by the sweep after every finished trial;
``clara-hydra report SWEEP_DIR|STORAGE [--study NAME]`` writes it again (:mod:`clara_hydra.report.source`).
The names below are imported on first use, so ``clara-hydra --help`` loads no Optuna or plotly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clara_hydra.report.page import REPORT_FILE, write_report

__all__ = ["REPORT_FILE", "write_report"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from clara_hydra.report import page

        return getattr(page, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
