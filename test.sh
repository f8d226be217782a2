#!/usr/bin/env bash
# Set up, then run the whole test suite (host builds, cross-compiles and QEMU runs).
set -euo pipefail
cd "$(dirname "$0")"
bash tools/setup.sh
exec "${PYTHON:-python3}" -m pytest -q "$@"
