#!/usr/bin/env python
"""Regenerate the golden trees of the converter (tests/golden/) and the repo's conf/ from the seed example.

Run after a deliberate change of the converter's output:  python tools/regen_goldens.py
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clara_hydra.convert import convert_path, write_tree  # noqa: E402
from clara_hydra.errors import ConfigError  # noqa: E402

EXAMPLES = ROOT / "tests" / "data" / "clara_examples"
GOLDEN = ROOT / "tests" / "golden"
SEED = EXAMPLES / "seed_full_automl_example.json"
SEED_ENV = ROOT / "tools" / "seed_environment.json"
AUTOML = EXAMPLES / "06_NVIDIA_clara-train-examples_v4x_config_automl.json"
# Inputs that are not training configs (environment.json, config_automl.json files).
NOT_TRAINING = ("_environment.json", "_config_automl", "_config_automl_")


def training_examples() -> list[Path]:
    return sorted(p for p in EXAMPLES.glob("*.json") if not any(tag in p.name for tag in NOT_TRAINING))


def golden_files(source: Path) -> dict[str, str]:
    """The files the converter writes for one example (the report included)."""
    return convert_path(source).files


def conf_files() -> dict[str, str]:
    """The repo's conf/: the seed example with its environment and the notebook's config_automl.json."""
    return convert_path(SEED, env=SEED_ENV, automl=AUTOML).files


def main() -> int:
    if GOLDEN.exists():
        shutil.rmtree(GOLDEN)
    for source in training_examples():
        try:
            files = golden_files(source)
        except ConfigError as exc:
            print(f"{source.name}: does not convert:\n{exc}", file=sys.stderr)
            return 1
        write_tree(files, GOLDEN / source.stem)
        print(f"{source.name}: {len(files)} file(s)")
    conf = ROOT / "conf"
    write_tree(conf_files(), conf)
    print(f"conf/: regenerated from {SEED.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
