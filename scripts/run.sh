#!/usr/bin/env bash
# Sets up (packages + build) and runs a full text-to-image generation with qdit.
#   scripts/run.sh                       -> the built-in tiny PixArt-Sigma pipeline (random weights), out.png
#   scripts/run.sh MODEL_DIR [PROMPT]    -> any supported diffusers pipeline folder or hub cache folder
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
MODEL_ARGS=()
[[ $# -ge 1 ]] && MODEL_ARGS=(--model "$1")
PROMPT=${2:-"A small cafe at the corner of 5th Street, watercolor painting"}
./build/qdit generate "${MODEL_ARGS[@]}" --prompt "$PROMPT" --steps 20 --seed 0 --width 64 --height 64 --out out.png
