"""Command-line tweaks applied by ``train.py`` before Hydra parses ``sys.argv``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

_DIR_FLAGS = ("-cd", "--config-dir")
_PATH_FLAGS = ("-cp", "--config-path")
_NAME_FLAGS = ("-cn", "--config-name")
DEFAULT_CONFIG_NAME = "config"


def _flag_value(args: Sequence[str], flags: tuple[str, ...]) -> str | None:
    """The value of the last ``FLAG VALUE`` or ``FLAG=VALUE`` in ``args``, or None."""
    found: str | None = None
    for i, arg in enumerate(args):
        if arg in flags and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith(tuple(f + "=" for f in flags)):
            found = arg.split("=", 1)[1]
    return found


def config_dir_as_primary(argv: Sequence[str]) -> list[str]:
    """Make ``-cd DIR``/``--config-dir DIR`` the primary config when DIR holds one; else keep Hydra's meaning.

    Hydra documents ``-cd DIR`` as "add DIR to the config search path", *after* the app's own ``conf/``.
    That is what a DIR with only extra group options (``my_exps/experiment/x.yaml``) needs, and it is left
    so. But a DIR that holds a primary config (``config.yaml``, or the ``-cn`` name) is another converted
    tree: with Hydra's rule the repo's ``conf/config.yaml`` would still win and ``python train.py -cd
    my_conf/`` would silently train the wrong config, so ``-cd`` becomes ``--config-path=<abs DIR>`` there.
    Left alone when ``-cp``/``--config-path`` is given too.

    Args:
        argv: ``sys.argv``.

    Returns:
        The arguments to hand to Hydra.
    """
    args = list(argv)
    if _flag_value(args, _PATH_FLAGS) is not None:
        return args
    name = _flag_value(args, _NAME_FLAGS) or DEFAULT_CONFIG_NAME
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        value: str | None = None
        if arg in _DIR_FLAGS and i + 1 < len(args):
            value, step = args[i + 1], 2
        elif arg.startswith(tuple(f + "=" for f in _DIR_FLAGS)):
            value, step = arg.split("=", 1)[1], 1
        if value is None:
            out.append(arg)
            i += 1
            continue
        folder = Path(os.path.abspath(os.path.expanduser(value)))
        if _holds_primary(folder, name):
            out.append(f"--config-path={folder}")
        else:
            out.extend(args[i : i + step])  # Hydra's own -cd: an extra search-path entry
        i += step
    return out


def _holds_primary(folder: Path, name: str) -> bool:
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    return (folder / f"{stem}.yaml").is_file() or (folder / f"{stem}.yml").is_file()
