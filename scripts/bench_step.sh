#!/usr/bin/env bash
# Regenerates the table of docs/speed.md: one transformer forward of each real-size architecture
# (make-model's random weights, generated in memory) at 512x512 with CFG batch 2, per dtype and
# quantization scheme, on one thread. Not part of the tests; takes ~15-30 min on this machine.
# Usage: scripts/bench_step.sh [THREADS] > rows.md
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-1}
QDIT=build/qdit
echo "| model (dtype, quant, depth) | threads | TFLOP | median s | GFLOP/s | % of guide peak | % of this machine's GEMM rate |"
echo "|---|---:|---:|---:|---:|---:|---|"
run() { "$QDIT" bench-step "$@" --threads "$THREADS" --repeat 2 --warmup 1 --markdown | tail -n 1; }
# PixArt-Sigma-XL at full depth (0.6 B parameters): every dtype and scheme of the issue.
for q in "--dtype f32" "--dtype bf16" "--quant int8dq" "--quant int8wo" "--quant int4wo" "--quant nf4"; do
  # shellcheck disable=SC2086
  run --arch pixart-sigma $q
done
# SD3-medium at full depth; Flux-dev at reduced depth (its 12 B parameters do not fit in bf16 here):
# the report extrapolates the full-depth time at the same rate.
for q in "--dtype bf16" "--quant int8dq"; do
  # shellcheck disable=SC2086
  run --arch sd3-medium $q
  # shellcheck disable=SC2086
  run --arch flux-dev --layers 2,4 $q
done
