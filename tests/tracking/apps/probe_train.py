"""``python probe_train.py RECORD [train.py args]``: run the repo's ``train.py`` as ``__main__`` and write, at exit,
the MLflow modules this process imported into RECORD (a JSON list). ``PROBE_NO_MLFLOW=1`` makes ``import mlflow``
fail as it does where mlflow-skinny is not installed."""

import atexit
import json
import os
import runpy
import sys
from pathlib import Path

TRAIN = Path(__file__).resolve().parents[3] / "train.py"
record = Path(sys.argv.pop(1))
if os.environ.get("PROBE_NO_MLFLOW"):
    sys.modules["mlflow"] = None  # type: ignore[assignment]  # `import mlflow` raises ImportError


def _write() -> None:
    names = sorted(m for m in sys.modules if (m == "mlflow" or m.startswith("mlflow.")) and sys.modules[m] is not None)
    record.write_text(json.dumps(names))


atexit.register(_write)
sys.argv[0] = str(TRAIN)
sys.path.insert(0, str(TRAIN.parent))
runpy.run_path(str(TRAIN), run_name="__main__")
