#!/usr/bin/env bash
# The main job: set up, compile the bundled KWS-10 TinyMamba for the emulated Cortex-M7,
# run it on QEMU mps2-an500 and print the JSON report (logits, arena, instructions, error).
set -euo pipefail
cd "$(dirname "$0")"
bash tools/setup.sh
exec "${PYTHON:-python3}" -m mamba_tvm.build --target qemu/mps2_an500 --run "$@"
