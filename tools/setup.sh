#!/usr/bin/env bash
# Idempotent set-up on Debian 12: the C toolchains and QEMU from apt, the pinned Python
# packages from pip. Safe to run again: it installs only what is missing.
set -euo pipefail

# Xtensa LX7 (ESP32-S3 and its emulated stand-in): clang-22/llvm-22 compile and assemble
# (Debian 12 has them in bookworm-security, 1:22.1.8-1~deb12u1), binutils-xtensa-lx106's GNU
# ld/nm/size link and inspect, qemu-system-misc has qemu-system-xtensa (the de233_fpu core).
APT_PACKAGES=(
  gcc clang make
  gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi
  qemu-system-arm
  clang-22 llvm-22 binutils-xtensa-lx106 gcc-xtensa-lx106 picolibc-xtensa-lx106-elf qemu-system-misc
  device-tree-compiler cpp
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
# Pinned: apache-tvm 0.27 with ffi 0.1.14 (0.1.15 segfaults in save_json); torch 2.13.0 is the
# local CPU build (a bare `torch` would pull a multi-GB CUDA build).
# transformers: Hugging Face MambaMixer models are compiled and tested; onnxruntime/onnxscript:
# the ONNX route (export and the self-check of .onnx models); rich: progress and summaries;
# matplotlib: `analyze` plots; xgboost-cpu: MetaSchedule's cost model (the plain `xgboost`
# wheel drags in a 200 MB CUDA NCCL); tornado and psutil: TVM's RPC tracker and servers
# (`mamba_tvm.tune --tracker`); wheel: `pip install --no-build-isolation .` (setuptools 65's
# bdist_wheel, for the `mamba-tvm` command, tests/test_install.py).
PIP_PACKAGES=(
  "apache-tvm==0.27.0.post1" "apache-tvm-ffi==0.1.14.post1" "torch==2.13.0"
  numpy onnx pyserial pytest
  "transformers==5.24.0" "onnxruntime==1.32.0" "onnxscript==0.7.2" "rich==15.0.0" "matplotlib==3.11.2"
  "xgboost-cpu==3.2.0" "tornado==6.6.1" "psutil==7.2.2" "wheel==0.48.0"
)
if ! "$PYTHON" - "${PIP_PACKAGES[@]}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
for req in sys.argv[1:]:
    name, _, pin = req.partition("==")
    v = version(name)
    if pin and v.split("+")[0] != pin:
        sys.exit(1)
PY
then
  echo "setup: installing Python packages" >&2
  "$PYTHON" -m pip install -q --disable-pip-version-check "${PIP_PACKAGES[@]}"
fi
