#!/usr/bin/env bash
# Set up everything the test suite needs (scripts/setup.sh), then run lint, types and the tests.
# Extra arguments go to pytest: scripts/test.sh -k staging -x
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh

echo "== lint (ruff)"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

echo "== types (mypy --strict)"
.venv/bin/mypy

echo "== tests (pytest)"
status=0
.venv/bin/pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure here" >&2
    exit 1
fi
exit "$status"
