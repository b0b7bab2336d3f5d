#!/usr/bin/env bash
# Wheels that the GPU check needs on a device machine (it has torch, numpy, PyYAML, rich, tqdm, tensorboard,
# MarkupSafe, narwhals, packaging, typing-extensions, but not MONAI, ignite, nibabel, Hydra, Optuna & co, and it
# cannot reach a registry). Downloads them for CPython 3.12 x86-64, at the versions installed in this venv (what the
# tests pass with), into DEST (default .whl, ignored through .git/info/exclude), and prints their total size
# (the working tree that travels is limited to 64 MiB).
# Usage: bash tools/bench/gpu_wheels.sh [DEST]
# Then on the device (carry: [".whl"]):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
#     .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD && bash tools/bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=${1:-.whl}
if [ "$dest" = .whl ] && ! grep -qx '/.whl/' .git/info/exclude 2>/dev/null; then
  echo '/.whl/' >>.git/info/exclude  # the wheels travel through `carry`, never into a commit
fi
mkdir -p "$dest"
py=${PYTHON:-python}
pins=()
for name in monai pytorch-ignite nibabel hydra-core omegaconf optuna alembic sqlalchemy colorlog Mako plotly; do
  pins+=("$name==$("$py" -c "import sys; from importlib.metadata import version; print(version(sys.argv[1]))" "$name")")
done
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dest" "${pins[@]}"
# antlr4-python3-runtime 4.9.3 (what omegaconf 2.3 needs) is published as a source archive only: build its
# pure-Python wheel here.
antlr=$("$py" -c "from importlib.metadata import version; print(version('antlr4-python3-runtime'))")
"$py" -m pip wheel -q --no-deps -w "$dest" "antlr4-python3-runtime==$antlr"
ls -1 "$dest"
du -ch "$dest"/*.whl | tail -1
