#!/usr/bin/env bash
# Create .venv with the pinned requirements (idempotent; ~1-2 minutes the first time).
# Set DEPLOY=1 to also create .venv-deploy with requirements-deploy.txt (int8 .tflite export
# and tflite-micro), which is large (~2 GB beyond torch) and only needed for deployment.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
make_venv() {  # make_venv DIR REQUIREMENTS (reinstalled when they or pyproject.toml's packages change)
  local dir=$1 req=$2 stamp="$1/.installed-$(cat "$2" pyproject.toml | sha1sum | cut -c1-12)"
  [ -f "$stamp" ] && return 0
  [ -x "$dir/bin/python" ] || "$PY" -m venv "$dir"
  "$dir/bin/python" -m pip install -q --upgrade pip
  "$dir/bin/python" -m pip install -q -r "$req"
  "$dir/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
  rm -f "$dir"/.installed-* && touch "$stamp"
}
make_venv .venv requirements.txt
if [ "${DEPLOY:-0}" = "1" ] && [ -f requirements-deploy.txt ]; then
  make_venv .venv-deploy requirements-deploy.txt
fi
# Cortex-M7 toolchain and emulator for deploy/mcu (board build, QEMU run): apt, as root, when missing.
MCU_PKGS="gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
if ! command -v arm-none-eabi-gcc >/dev/null || ! command -v qemu-system-arm >/dev/null \
    || ! dpkg -s libnewlib-arm-none-eabi >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $MCU_PKGS
  else
    echo "note: the board build of deploy/mcu needs $MCU_PKGS (run this script as root to install them)" >&2
  fi
fi
