#!/usr/bin/env bash
# Prepare this clone for use on a fresh Debian machine: system packages the tests and the example
# need, and a virtual environment in .venv with maestro installed in editable mode.
# Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '== %s\n' "$*"; }

apt_install() {
    # Install Debian packages when missing; root runs apt-get itself, others go through sudo.
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    say "installing Debian packages: ${missing[*]}"
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "maestro needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
    exit 2
fi

if command -v apt-get >/dev/null 2>&1; then
    # tree: the seed example; procps: ps for process checks; graphviz: `maestro dag` through dot.
    pkgs=(tree procps graphviz)
    # chromium: the UI's browser tests (Playwright drives Debian's Chromium; nothing downloads);
    # only scripts/test.sh asks for it.
    [ "${MAESTRO_SETUP_TESTS:-0}" = 1 ] && pkgs+=(chromium)
    "$PYTHON" -m venv --help >/dev/null 2>&1 || pkgs+=(python3-venv)
    apt_install "${pkgs[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    say "creating .venv with $("$PYTHON" --version)"
    "$PYTHON" -m venv .venv
fi
say "installing maestro and its development tools into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade "pip>=25.1"
.venv/bin/python -m pip install -q --disable-pip-version-check -e . --group dev
say "ready: $(.venv/bin/maestro --version)"
