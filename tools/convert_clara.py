#!/usr/bin/env python
"""`clara-hydra convert` for a checkout without installing: python tools/convert_clara.py convert config.json -o conf/.

The word `convert` may be left out: python tools/convert_clara.py config.json -o conf/.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clara_hydra.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv and argv[0] not in ("convert", "-h", "--help"):
        argv = ["convert", *argv]
    sys.exit(main(argv))
