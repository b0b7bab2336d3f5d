#!/usr/bin/env bash
# GPU check (issue 8), at most ~8 minutes on one GPU:
#   1. the quickstart on CUDA with AMP and with fp32: seconds per epoch of each, and the AMP/fp32 ratio;
#   2. a 2-worker sweep on the one GPU (hydra.sweeper.gpus='0:0' is refused: a GPU per worker, so both
#      workers share GPU 0 through workers=2), with the devices each trial recorded;
#   3. GPU utilisation sampled every 0.5 s with nvidia-smi during both, summarised per phase.
# Usage: bash tools/bench/gpu_check.sh [OUT_DIR]   (default runs/gpu_check/<time>; $OUT on the device machine)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-${OUT:-runs/gpu_check}/$(date +%Y-%m-%d_%H-%M-%S)}
mkdir -p "$out"
py=${PYTHON:-python}
epochs=${EPOCHS:-8}

command -v nvidia-smi >/dev/null || { echo "gpu_check: nvidia-smi not found: no GPU here" >&2; exit 3; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.csv"
"$py" -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 500 \
  >"$out/util.csv" 2>/dev/null &
smi=$!
trap 'kill $smi 2>/dev/null || true' EXIT
mark() { echo "$1 $(date +%s.%N)" >>"$out/phases.txt"; }

for mode in amp fp32; do
  amp=true; [ "$mode" = fp32 ] && amp=false
  mark "start_$mode"
  timeout 150 "$py" train.py experiment=quickstart epochs="$epochs" amp="$amp" hydra.run.dir="$out/$mode" \
    >"$out/$mode.log" 2>&1 || { echo "quickstart ($mode) failed, see $out/$mode.log" >&2; tail -20 "$out/$mode.log" >&2; }
  mark "end_$mode"
done

mark start_sweep
timeout 240 "$py" train.py -m experiment=quickstart epochs="$epochs" hydra.sweeper.n_trials=4 hydra.sweeper.workers=2 \
  hydra.sweeper.study_name=gpu_check_"$(date +%s)" hydra.sweep.dir="$out/sweep" >"$out/sweep.log" 2>&1 \
  || { echo "2-worker sweep failed, see $out/sweep.log" >&2; tail -20 "$out/sweep.log" >&2; }
mark end_sweep
kill $smi 2>/dev/null || true

"$py" tools/bench/gpu_report.py "$out" "$epochs"
