"""The ``clara-hydra report SWEEP_DIR|STORAGE [--study NAME]`` subcommand."""

from __future__ import annotations

import argparse
from typing import Any


def add_report_parser(sub: Any) -> None:
    """Add ``report`` to the ``clara-hydra`` subparsers (its handler is set as ``handler``)."""
    rep = sub.add_parser("report", help="write a sweep's report.html (plots, best trial, its command) again")
    rep.add_argument("target", metavar="SWEEP_DIR|STORAGE", help="a sweep folder, or a storage URL or file")
    rep.add_argument("--study", help="the study's name (needed when the storage holds several)")
    rep.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from clara_hydra.report.source import report

    print(f"wrote {report(args.target, args.study)}")
    return 0
