"""The ``clara-hydra`` command: ``clara-hydra convert config_train.json -o conf/``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from clara_hydra.errors import EXIT_USER_ERROR, UserError, run_and_report


def _parse_set(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UserError(f"--set expects KEY=VALUE, got {text!r}")
    try:
        return key, yaml.safe_load(value) if value else ""
    except yaml.YAMLError:
        return key, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clara-hydra", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="convert a Clara config (or MMAR folder) into a Hydra config tree")
    conv.add_argument("source", help="config_train.json, or a Clara MMAR folder (config/config_train.json, ...)")
    conv.add_argument("-o", "--output", default="conf", help="output folder (default: conf)")
    conv.add_argument("--env", help="environment.json (variables such as DATA_ROOT, MMAR_CKPT_DIR)")
    conv.add_argument("--automl", help="config_automl.json (max_rounds, stop_threshold, num_mmars_to_keep)")
    conv.add_argument("--set", action="append", default=[], metavar="K=V", help="set a variable (highest priority)")
    conv.add_argument("-q", "--quiet", action="store_true", help="do not print the report")
    from clara_hydra.export.cli import add_export_parser

    add_export_parser(sub)
    from clara_hydra.report.cli import add_report_parser

    add_report_parser(sub)
    return parser


def _convert(args: argparse.Namespace) -> int:
    from clara_hydra.convert import convert_path, write_tree

    sets = dict(_parse_set(s) for s in args.set)
    conv = convert_path(args.source, args.env, args.automl, sets)
    write_tree(conv.files, args.output)
    if not args.quiet:
        print(conv.report)
    print(
        f"wrote {len(conv.files)} file(s) to {args.output}/ ({conv.dimensions} search dimension(s), "
        f"{conv.points} discrete point(s))",
        file=sys.stderr,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed its usage message
        return EXIT_USER_ERROR if exc.code else 0
    handler = getattr(args, "handler", _convert)  # subcommands other than convert set their handler
    return run_and_report(lambda: handler(args))


if __name__ == "__main__":
    sys.exit(main())
