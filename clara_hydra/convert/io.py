"""The outer layer of the converter: find the input files, read them, write the tree. Only this module touches disk."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clara_hydra.convert.pipeline import Conversion, Document, convert_documents
from clara_hydra.errors import InputFileError


def read_document(path: str | Path) -> Document:
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: no such file" + (" (it is a folder)" if p.is_dir() else ""))
    try:
        return Document(str(p), p.read_bytes())
    except OSError as exc:
        raise InputFileError(f"{p}: cannot read ({exc.strerror})") from None


def find_inputs(source: str | Path) -> tuple[Path, Path | None, Path | None]:
    """The training config, environment.json and config_automl.json of a file or a Clara MMAR folder."""
    src = Path(source)
    if src.is_file():
        return src, None, None
    if not src.is_dir():
        raise InputFileError(f"{src}: no such file or folder")
    for folder in (src / "config", src):
        train = folder / "config_train.json"
        if train.is_file():
            env = folder / "environment.json"
            automl = folder / "config_automl.json"
            return train, env if env.is_file() else None, automl if automl.is_file() else None
    raise InputFileError(f"{src}: not a Clara MMAR folder (no config/config_train.json); pass the config file itself")


def convert_path(
    source: str | Path,
    env: str | Path | None = None,
    automl: str | Path | None = None,
    sets: Mapping[str, Any] | None = None,
) -> Conversion:
    """Read the inputs (a config file or an MMAR folder) and convert them."""
    train, found_env, found_automl = find_inputs(source)
    env_path = env or found_env
    automl_path = automl or found_automl
    return convert_documents(
        read_document(train),
        read_document(env_path) if env_path else None,
        read_document(automl_path) if automl_path else None,
        sets,
    )


def write_tree(files: Mapping[str, str], out_dir: str | Path) -> list[Path]:
    """Write every file atomically; stale group options from an earlier conversion are removed."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups = {rel.split("/", 1)[0] for rel in files if "/" in rel}
    for group in groups:
        folder = out / group
        if folder.is_dir():
            for old in folder.glob("*.yaml"):
                if f"{group}/{old.name}" not in files:
                    old.unlink()
    written = []
    for rel, text in sorted(files.items()):
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".yaml")
        # backslashreplace: YAML values are escaped already; this keeps a header's odd file name from failing
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(text)
        os.replace(tmp, target)
        written.append(target)
    return written
