#!/usr/bin/env bash
# Sets up (packages + build) and runs qdit's main job on the model given as $1, or on the small
# built-in default pipeline (tests/golden/pipeline_pixart_sigma_text/pipeline, tiny random weights).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
MODEL=${1:-tests/golden/pipeline_pixart_sigma_text/pipeline}
./build/qdit inspect "$MODEL"
