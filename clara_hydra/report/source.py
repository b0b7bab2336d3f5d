"""Find the study of ``clara-hydra report SWEEP_DIR|STORAGE [--study NAME]`` and write its report."""

from __future__ import annotations

from pathlib import Path

from clara_hydra.sweep_record import open_sweep


def report(target: str, study_name: str | None = None) -> Path:
    """Write the report of the study at ``target`` (found by :func:`~clara_hydra.sweep_record.open_sweep`)."""
    from clara_hydra.report.page import write_report

    sweep = open_sweep(target, study_name)
    return write_report(sweep.study, sweep.folder)
