#!/usr/bin/env bash
# Try maestro end to end: set up .venv, create a project from the default scaffold in a fresh
# temporary directory, run its workflow, and show where the results are.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

"$repo/scripts/setup.sh"
export PATH="$repo/.venv/bin:$PATH"

where=$(mktemp -d "${TMPDIR:-/tmp}/maestro-try.XXXXXX")
cd "$where"
echo "== maestro init demo   (in $where)"
maestro init demo
cd demo
echo "== maestro run"
maestro run
echo "== results"
find maestro_work -maxdepth 3 -type f -name '*.tsv' | sort  # outputs, not staged inputs
echo "The project is in $where/demo; run 'maestro run' there again for a second session."
