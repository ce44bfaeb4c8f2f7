#!/usr/bin/env bash
# The README's test command (.ci/run calls exactly this). For each TorchX distribution users run
# today (torchx 0.7.0 from the `torchx` extra, torchx-nightly from the `nightly` extra) it
# installs the project with the dev extra into its own venv (.venv and .venv-nightly; kept, so a
# second run only checks what is installed), then runs ruff, mypy and the whole test suite in it.
# Both runs always happen; the script fails if either did. Arguments go to pytest.
#
#   TORCHX_FLAVOURS="release nightly"   which TorchX to test (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
FLAVOURS=${TORCHX_FLAVOURS:-release nightly}
bash scripts/system_deps.sh
rm -rf .test-results && mkdir -p .test-results
status=0
summary=()

for flavour in $FLAVOURS; do
    case "$flavour" in
        release) venv=.venv extra=torchx ;;
        nightly) venv=.venv-nightly extra=nightly ;;
        *) echo "TORCHX_FLAVOURS: unknown '$flavour' (expected release and/or nightly)" >&2; exit 2 ;;
    esac
    echo "=== torchx $flavour: installing .[dev,$extra] into $venv"
    [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[dev,$extra]" 2>&1 |
        grep -v "^WARNING: Location" || true
    version=$("$venv/bin/python" -c "import torchx; print(torchx.__version__)")
    echo "=== torchx $flavour ($version): ruff, mypy, pytest"
    "$venv/bin/ruff" check .
    "$venv/bin/mypy"
    # The e2e tests launch `torchx` jobs whose `python` comes from PATH.
    rc=0
    PATH="$PWD/$venv/bin:$PATH" "$venv/bin/pytest" -q -p no:cacheprovider -rs \
        --junitxml ".test-results/$flavour.xml" "$@" || rc=$?
    [ "$rc" -eq 0 ] || status=1
    summary+=("$("$venv/bin/python" scripts/junit_counts.py "torchx-$version" ".test-results/$flavour.xml" ||
        echo "torchx-$version: no test results")")
done

echo "=== summary"
printf '%s\n' "${summary[@]}"
"$PYTHON" scripts/junit_counts.py --total .test-results/*.xml || true
exit "$status"
