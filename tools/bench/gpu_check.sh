#!/usr/bin/env bash
# GPU check (issue 14 item 5), at most ~8 minutes on one lent GPU: s/epoch fp32 vs AMP at 96^3 crops, the
# GPU-resident cache's memory, multi_gpu=true on one GPU, a 2-worker sweep on GPU 0 (gpus="0:0") with
# nvidia-smi utilisation, a deliberate CUDA out-of-memory trial (FAIL "out of memory", the worker goes on), and a
# DDP trial on every GPU (skipped with one GPU). Each step has its own timeout inside one budget; the figures go
# to OUT_DIR/gpu_check.json and gpu_check.md. See tools/bench/gpu_check.py for the steps and sizes.
# Usage: bash tools/bench/gpu_check.sh [--dry-run] [--budget S] [--steps a,b] [OUT_DIR]
#        (OUT_DIR defaults to $OUT on the device machine, else runs/gpu_check/<time>; --dry-run: CPU, tiny sizes)
set -euo pipefail
cd "$(dirname "$0")/../.."
exec "${PYTHON:-$(command -v python || command -v python3)}" tools/bench/gpu_check.py "$@"
