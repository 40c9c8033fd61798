#!/usr/bin/env bash
# Builds the block-streaming test with ThreadSanitizer in build-tsan/ (only the layers it needs:
# core, io, kernels, quant, nn) and runs it. The prefetch thread packs and quantizes weights
# while the caller's thread runs GEMMs; OpenMP stays at one thread per caller because libgomp is
# not instrumented (its barriers would read as races).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${QDIT_BUILD_JOBS:-$(nproc)}
LAUNCHER=()
if command -v ccache >/dev/null; then
  LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(dirname "$PWD")}
fi
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQDIT_SANITIZE_THREAD=ON -DQDIT_BUILD_BENCH=OFF \
  "${LAUNCHER[@]}" >/dev/null
ninja -C build-tsan -j"$JOBS" test_block_stream
OMP_NUM_THREADS=1 TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" build-tsan/tests/nn/test_block_stream
