#!/usr/bin/env bash
# Set up everything the test suite needs (scripts/setup.sh), then run lint, types and the tests.
# Extra arguments go to pytest: scripts/test.sh -k staging -x
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MAESTRO_SETUP_TESTS=1 scripts/setup.sh

# The integration tests run against a real single-node Slurm and real Podman/Docker. Setting
# them up needs root (apt-get, daemons); without it those tests are skipped, or fail under CI.
start_backends() {
    local run=()
    if [ "$(id -u)" -ne 0 ]; then
        if sudo -n true 2>/dev/null; then run=(sudo -n); else return 1; fi
    fi
    echo "== backends (Slurm, Podman, Docker, sshd)"
    "${run[@]}" scripts/backends/slurm-start.sh || return 1
    local exports
    exports=$("${run[@]}" scripts/backends/containers-start.sh) || return 1
    eval "$exports"
    "${run[@]}" scripts/backends/sshd-start.sh || return 1
}
if [ "${MAESTRO_TEST_BACKENDS:-1}" = 1 ] && ! start_backends; then
    echo "== backends: not all started (they need root or passwordless sudo); the Slurm and" \
         "container tests will be skipped (under CI=true they fail)" >&2
fi

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
