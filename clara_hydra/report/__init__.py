"""The sweep report: ``report.html``, a self-contained page of Optuna's plots, the best trial and its command.

``write_report(study, sweep_dir)`` is called by the sweep after every finished trial;
``clara-hydra report SWEEP_DIR|STORAGE [--study NAME]`` writes it again (:mod:`clara_hydra.report.source`).
"""

from clara_hydra.report.page import REPORT_FILE, write_report

__all__ = ["REPORT_FILE", "write_report"]
