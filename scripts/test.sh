#!/usr/bin/env bash
# Sets up (packages + build) and runs the whole test suite through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Tests run in parallel processes: idle OpenMP workers must sleep, not spin, or they starve each other.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
ctest --test-dir build --output-on-failure -j"$(nproc)"
