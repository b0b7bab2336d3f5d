"""``clara-hydra export SWEEP_DIR|STORAGE [--study NAME] [--trial N] --to KIND OUT``.

KIND OUT: ``bundle OUT/`` (a MONAI bundle), ``clara OUT.json`` (a Clara 4.1 config), ``validation CONF/``
(a converted Clara validation config pointed at the trial's checkpoint).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

KINDS = ("bundle", "clara", "validation")


def add_export_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``export`` subcommand to the ``clara-hydra`` parser's subparsers (``sub``)."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "export",
        help="export the best (or a given) trial of a sweep as a MONAI bundle or a Clara 4.1 training config",
        description=(
            "Export the best (or --trial N) trial of a sweep: '--to bundle OUT/' writes a MONAI bundle that runs "
            "wherever it is copied (configs/train.json; inference.json, label maps of new images with no label; "
            "evaluate.json, the trial's validation with its metrics; metadata.json, logging.conf; models/model.pt, "
            "LICENSE, docs/README.md); "
            "'--to clara OUT.json' writes the trial as a Clara 4.1 config_train.json without search blocks; "
            "'--to validation CONF/' points a converted Clara validation config (CONF/) at the trial's checkpoint "
            "(CONF/experiment/sweep_best.yaml: python train.py -cd CONF/ experiment=sweep_best)."
        ),
    )
    parser.add_argument("source", help="a sweep folder (holding trials.csv), or an Optuna storage URL / journal file")
    parser.add_argument("--study", help="study name (needed when the storage holds several)")
    parser.add_argument("--trial", type=int, help="trial number (default: the best trial)")
    parser.add_argument(
        "--to", nargs=2, required=True, metavar=("KIND", "OUT"), help="bundle OUT/, clara OUT.json or validation CONF/"
    )
    parser.add_argument("--force", action="store_true", help="write into a non-empty folder / over a file")
    parser.set_defaults(handler=run_export)
    return parser


def run_export(args: argparse.Namespace) -> int:
    """Run ``clara-hydra export`` with parsed arguments; user errors propagate (the caller reports them)."""
    from clara_hydra.errors import UserError, with_fix
    from clara_hydra.export.select import select_trial

    kind, out = args.to
    if kind not in KINDS:
        raise UserError(with_fix(f"--to {kind}: unknown kind", f"use one of {list(KINDS)}"))
    trial = select_trial(args.source, args.study, args.trial)
    value = f" (value {trial.value:.6g})" if trial.value is not None else ""
    if kind == "bundle":
        from clara_hydra.export.bundle import export_bundle

        bundle = export_bundle(trial, out, force=args.force)
        print(f"wrote a MONAI bundle of trial {trial.number}{value} to {bundle.root}/", file=sys.stderr)
        print(f"  weights from {bundle.checkpoint}", file=sys.stderr)
        # bundle_root is "." (MONAI's model zoo): the commands start in the bundle's folder, wherever it is.
        print(f"  use it (in {bundle.root}/, or add --bundle_root FOLDER elsewhere):", file=sys.stderr)
        run = "python -m monai.bundle run --config_file configs/"
        if "configs/inference.json" in bundle.files:
            print(f"    label maps: {run}inference.json  (into eval/; new images: see docs/README.md)", file=sys.stderr)
            print(
                "                --datalist_file LIST.json --datalist_key test --dataset_dir IMAGES/  (no label)",
                file=sys.stderr,
            )
        if "configs/evaluate.json" in bundle.files:
            print(f"    evaluate:   {run}evaluate.json  (the trial's validation: metrics, label maps)", file=sys.stderr)
        print(f"    train:      {run}train.json", file=sys.stderr)
        notes = bundle.notes
    elif kind == "validation":
        from clara_hydra.export.validation import export_validation

        val = export_validation(trial, out, force=args.force)
        print(f"wrote {val.option}: the checkpoint of trial {trial.number}{value}", file=sys.stderr)
        print(f"  evaluate it: {val.command}", file=sys.stderr)
        notes = val.notes
    else:
        from clara_hydra.export.clara_json import export_clara

        clara = export_clara(trial, out, force=args.force)
        print(f"wrote trial {trial.number}{value} as a Clara 4.1 training config to {clara.path}", file=sys.stderr)
        print(f"  back to Hydra: clara-hydra convert {clara.path} -o conf_trial{trial.number}/", file=sys.stderr)
        notes = clara.notes
    for note in notes:
        print(f"  note: {note}", file=sys.stderr)
    return 0
