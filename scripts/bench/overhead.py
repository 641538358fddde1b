"""Benchmark: per-process overhead of maestro's Local executor against plain floors.

N trivial processes (each writes one small file), 2 at a time, run five ways in the same run:

  xargs        `seq N | xargs -P2 bash -c 'echo x > out_$0.txt'`
  floor        a plain Python program: ThreadPoolExecutor(2) + subprocess.run per item
  maestro      a workflow program (@maestro.main, LocalExecutor, ThreadPoolExecutor(2)): the
               floor's program with maestro.process in place of subprocess.run
  maestro-cli  the same workflow started through `maestro run`
  parallelize  the workflow as a maestro user writes a fan-out: maestro.parallelize, with
               MAESTRO_JOBS=2

Each is a whole program started from scratch, so interpreter start-up counts for the floor and
for maestro alike. Reported: wall time (best of --repeat), per-process time, ratio to the floor.

The measured programs run with bytecode caching as a user has it: PYTHONDONTWRITEBYTECODE is
removed from their environment (an installed maestro has its .pyc files; without them every
start compiles libmaestro again), and every case first runs once as a warm-up with N = 20, so
those caches exist and the disk cache is warm. The warm-up is small on purpose: on a disk where
creating files is slower after many were deleted (this project's VM, see docs/benchmarks.md), a
full-size warm-up would slow the measured runs that follow it.

    .venv/bin/python scripts/bench/overhead.py            # N = 100, 1000, 5000
    .venv/bin/python scripts/bench/overhead.py -n 1000 --repeat 5 --markdown
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

FLOOR = """
import subprocess, sys
from concurrent.futures import ThreadPoolExecutor
n = int(sys.argv[1])
def one(i):
    subprocess.run(["bash", "-c", 'echo x > "$1"', "bash", f"out_{i}.txt"], check=True)
with ThreadPoolExecutor(2) as pool:
    list(pool.map(one, range(n)))
"""

# Both maestro programs: the same process per item, run by a different `main` (IMPORTS, MAIN).
_MAESTRO_PROGRAM = """
import sys
IMPORTS
import libmaestro as maestro

local = maestro.LocalExecutor()

def one(i):
    return maestro.process(
        name=f"p{i}", executor=local, outputs={"out": "out.txt"}, script='echo x > "$out"'
    )

@maestro.main
def main():
    MAIN

if __name__ == "__main__":
    main()
"""

# The floor's own program, with `maestro.process` in place of `subprocess.run`.
MAESTRO = _MAESTRO_PROGRAM.replace(
    "IMPORTS", "from concurrent.futures import ThreadPoolExecutor"
).replace(
    "MAIN",
    """with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, range(int(sys.argv[1]))))""",
)

# The same workflow as a maestro user writes a fan-out: `parallelize`, 2 at a time (MAESTRO_JOBS).
MAESTRO_PARALLELIZE = _MAESTRO_PROGRAM.replace("IMPORTS\n", "").replace(
    "MAIN", "maestro.raise_failures(maestro.parallelize(range(int(sys.argv[1])), one))"
)


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def fresh(base: Path, name: str) -> Path:
    """A new, empty directory for one run.

    Earlier runs' files stay until the whole benchmark ends (its temporary directory goes then):
    deleting thousands of files right before a run makes that run's file creation slower on
    some file systems (ext4 without a journal skips recently freed inodes), which a user's run
    does not meet, and it hits maestro (four entries per process) more than the floors (one).
    """
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))


WARM_UP_N = 20  # processes per program in the warm-up run (see the module docstring)


def measure(n: int, repeat: int, base: Path) -> dict[str, float]:
    # A store of its own: benchmark runs must not fill the user's run history.
    env = {**os.environ, "MAESTRO_PLAIN": "1", "MAESTRO_STORE": str(base / "state.db")}
    # Bytecode caching as installed (see the module docstring).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    (base / "floor.py").write_text(FLOOR)
    (base / "workflow.py").write_text(MAESTRO)
    (base / "parallelize.py").write_text(MAESTRO_PARALLELIZE)
    maestro = [str(Path(sys.executable).parent / "maestro")]

    def cases_of(n: int) -> dict[str, Callable[[Path], float]]:
        return {
            "xargs": lambda d: timed(
                ["bash", "-c", f"seq {n} | xargs -P2 -n1 bash -c 'echo x > out_$0.txt'"], d, env
            ),
            "floor": lambda d: timed([sys.executable, str(base / "floor.py"), str(n)], d, env),
            "maestro": lambda d: timed([sys.executable, str(base / "workflow.py"), str(n)], d, env),
            "maestro-cli": lambda d: timed(
                [*maestro, "run", str(base / "workflow.py"), "--", str(n)], d, env
            ),
            "parallelize": lambda d: timed(
                [sys.executable, str(base / "parallelize.py"), str(n)],
                d,
                {**env, "MAESTRO_JOBS": "2"},
            ),
        }

    for name, case in cases_of(min(n, WARM_UP_N)).items():  # .pyc files written, caches warm
        case(fresh(base, f"run-{name}"))
    cases = cases_of(n)
    best: dict[str, float] = {}
    for _ in range(repeat):
        for name, case in cases.items():  # interleaved, so drift hits every case alike
            elapsed = case(fresh(base, f"run-{name}"))
            best[name] = min(best.get(name, float("inf")), elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, action="append", help="number of processes (repeatable)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--markdown", action="store_true", help="print a table for docs/benchmarks.md"
    )
    options = parser.parse_args()
    sizes = options.n or [100, 1000, 5000]
    rows = []
    with tempfile.TemporaryDirectory(prefix="maestro-bench-") as tmp:
        for n in sizes:
            best = measure(n, options.repeat, Path(tmp))
            rows.append((n, best))
            print(f"N={n}: " + ", ".join(f"{k} {v:.2f}s" for k, v in best.items()), file=sys.stderr)
    if options.markdown:
        print(
            f"Machine: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}"
        )
        print()
        print(
            "| N | xargs -P2 | Python floor | maestro (python workflow.py) | maestro run "
            "| maestro, parallelize | per process: floor / maestro | maestro ÷ floor "
            "| parallelize ÷ floor |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, best in rows:
        ratio = best["maestro"] / best["floor"]
        fan_out = best["parallelize"] / best["floor"]
        per_floor = best["floor"] / n * 1000
        per_maestro = best["maestro"] / n * 1000
        if options.markdown:
            print(
                f"| {n} | {best['xargs']:.2f} s | {best['floor']:.2f} s | {best['maestro']:.2f} s | "
                f"{best['maestro-cli']:.2f} s | {best['parallelize']:.2f} s | "
                f"{per_floor:.2f} ms / {per_maestro:.2f} ms | {ratio:.2f}× | {fan_out:.2f}× |"
            )
        else:
            print(
                f"N={n}: maestro/floor = {ratio:.2f}x  ({per_maestro:.2f} ms vs {per_floor:.2f} ms "
                f"per process); parallelize/floor = {fan_out:.2f}x"
            )


if __name__ == "__main__":
    main()
