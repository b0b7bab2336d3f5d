"""Command-line tweaks applied by ``train.py`` before Hydra parses ``sys.argv``."""

from __future__ import annotations

import os
from collections.abc import Sequence

_DIR_FLAGS = ("-cd", "--config-dir")
_PATH_FLAGS = ("-cp", "--config-path")


def config_dir_as_primary(argv: Sequence[str]) -> list[str]:
    """Turn ``-cd DIR``/``--config-dir DIR`` into ``--config-path=<abs DIR>``.

    Why: Hydra's ``-cd`` only *appends* DIR to the search path, so the repo's own ``conf/config.yaml`` would
    still win and ``python train.py -cd my_conf/`` would silently train the wrong config. Left alone when
    ``-cp``/``--config-path`` is given too.
    """
    args = list(argv)
    if any(a in _PATH_FLAGS or a.startswith(tuple(f + "=" for f in _PATH_FLAGS)) for a in args):
        return args
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        value: str | None = None
        if arg in _DIR_FLAGS and i + 1 < len(args):
            value, i = args[i + 1], i + 2
        elif arg.startswith(tuple(f + "=" for f in _DIR_FLAGS)):
            value, i = arg.split("=", 1)[1], i + 1
        else:
            out.append(arg)
            i += 1
            continue
        out.append(f"--config-path={os.path.abspath(os.path.expanduser(value))}")
    return out
