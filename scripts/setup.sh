#!/usr/bin/env bash
# Create .venv with the pinned requirements (idempotent; ~1-2 minutes the first time).
# Set DEPLOY=1 to also create .venv-deploy with requirements-deploy.txt (int8 .tflite export
# and tflite-micro), which is large (~2 GB beyond torch) and only needed for deployment.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
make_venv() {  # make_venv DIR REQUIREMENTS
  local dir=$1 req=$2 stamp="$1/.installed-$(sha1sum "$2" | cut -c1-12)"
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
