#!/usr/bin/env bash
# Installs the project with torchx 0.7.0 into ./.venv and runs the three-step example pipeline on local_cwd,
# tracked into the embedded default store ./torchx-runs, then prints its lineage.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[torchx]'

PATH="$PWD/.venv/bin:$PATH" .venv/bin/python examples/pipeline/run_pipeline.py "$@"
