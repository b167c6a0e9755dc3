#!/usr/bin/env bash
# Set up, lint and run the whole test suite (what CI runs). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest -m "not deploy" --ignore-glob="tests/test_deploy_*.py" "$@"
if [ -f requirements-deploy.txt ]; then
  DEPLOY=1 bash scripts/setup.sh
  .venv-deploy/bin/python -m pytest -m deploy "$@"
fi
