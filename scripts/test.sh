#!/usr/bin/env bash
# Installs the project with every extra needed by the tests into ./.venv and runs lint, types
# and the whole test suite. The README's test command; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'

.venv/bin/ruff check .
.venv/bin/mypy
# The e2e tests launch `torchx` jobs whose `python` comes from PATH.
PATH="$PWD/.venv/bin:$PATH" .venv/bin/pytest -q -p no:cacheprovider "$@"
