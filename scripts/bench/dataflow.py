"""Benchmark: maestro's `parallelize` and `Dag` against plain floors, 2 processes at a time.

Three workloads of N trivial processes (default N = 1000), each run as a whole program started
from scratch, so interpreter start-up counts for the floors and for maestro alike:

  fan-out         N independent processes, each writing a file
  chain           N processes, each reading the previous one's output and writing its own
  scatter-gather  1 split process writing N files -> N processes -> 1 gather reading all N

and these programs for each:

  maestro         a workflow program (@maestro.main, LocalExecutor, MAESTRO_JOBS=2):
                  `parallelize` for the fan-out, a `Dag` for the chain and the scatter-gather
  Python floor    a plain Python program: ThreadPoolExecutor(2) + subprocess.run per process
                  (a sequential subprocess.run loop for the chain)
  xargs -P2       the fan-out as `seq N | xargs -P2 bash -c ...`
  bash loop       the chain as a plain bash `for` loop

The measured programs run with bytecode caching as a user has it: PYTHONDONTWRITEBYTECODE is
removed from their environment (an installed maestro has its .pyc files; without them every
start compiles libmaestro again), and every case first runs once as a warm-up with N = 20, so
those caches exist and the disk cache is warm. The warm-up is small on purpose: on a disk where
creating files is slower after many were deleted (this project's VM, see docs/benchmarks.md), a
full-size warm-up would slow the measured runs that follow it.

Every program checks its own result. Reported: wall time (best of --repeat, cases interleaved
so drift hits them alike), time per process, and maestro ÷ Python floor (target: at most 1.5x).

    .venv/bin/python scripts/bench/dataflow.py                 # N = 1000
    .venv/bin/python scripts/bench/dataflow.py -n 200 --repeat 1
    .venv/bin/python scripts/bench/dataflow.py --markdown      # a table for docs/benchmarks.md
    .venv/bin/python scripts/bench/dataflow.py --keep          # leave the files (see --help)
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

WORKLOADS = ("fan-out", "chain", "scatter-gather")
WARM_UP_N = 20  # processes per workload in the warm-up run (see the module docstring)

FLOOR = r"""
import subprocess, sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

workload, n = sys.argv[1], int(sys.argv[2])


def sh(script, *args):
    subprocess.run(["bash", "-c", script, "bash", *map(str, args)], check=True)


if workload == "fan-out":
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda i: sh('echo x > "$1"', f"out_{i}.txt"), range(n)))
    assert len(list(Path().glob("out_*.txt"))) == n
elif workload == "chain":
    sh('echo 0 > "$1"', "n_0.txt")
    for i in range(1, n):
        sh('read -r v < "$1"; echo $((v + 1)) > "$2"', f"n_{i - 1}.txt", f"n_{i}.txt")
    assert int(Path(f"n_{n - 1}.txt").read_text()) == n - 1
else:
    sh('mkdir parts; for ((i = 0; i < $1; i++)); do echo "$i" > "parts/$i.txt"; done', n)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(
            lambda i: sh('read -r v < "$1"; echo $((v * 2)) > "$2"', f"parts/{i}.txt", f"out_{i}.txt"),
            range(n),
        ))
    sh('s=0; for ((i = 0; i < $1; i++)); do read -r x < "out_$i.txt"; s=$((s + x)); done; '
       'echo "$s" > total.txt', n)
    assert int(Path("total.txt").read_text()) == n * (n - 1)
"""

MAESTRO = r"""
import sys
import libmaestro as maestro

local = maestro.LocalExecutor()
retried = []


def run(**fields):
    # Older runners could fail to start a script with ETXTBSY ("Text file busy") when another
    # thread forked while that script was being written; the runner now starts a local
    # script's interpreter itself, so this should never trigger. Kept to count it if it does.
    try:
        return maestro.process(executor=local, **fields)
    except maestro.ProcessError as exc:
        if "Text file busy" not in str(exc):
            raise
        retried.append(fields["name"])
        return maestro.process(executor=local, **{**fields, "name": fields["name"] + "_retry"})


def write(i):
    return run(name=f"p{i}", outputs={"out": "out.txt"}, script='echo x > "$out"')


def first():
    return run(name="c0", outputs={"out": "n.txt"}, script='echo 0 > "$out"').out


def increment(previous, i):
    return run(
        name=f"c{i}",
        inputs={"previous": previous},
        outputs={"out": "n.txt"},
        script='read -r v < "$previous"; echo $((v + 1)) > "$out"',
    ).out


def split(n):
    return run(
        name="split",
        args={"n": n},
        outputs={"parts": "parts"},
        script='mkdir "$parts"; for ((i = 0; i < n; i++)); do echo "$i" > "$parts/$i.txt"; done',
    ).parts


def double(parts, i):
    return run(
        name=f"w{i}",
        inputs={"part": parts / f"{i}.txt"},
        outputs={"out": "out.txt"},
        script='read -r v < "$part"; echo $((v * 2)) > "$out"',
    ).out


def gather(outs):
    return run(
        name="gather",
        inputs={f"in_{i}": path for i, path in enumerate(outs)},
        args={"n": len(outs)},
        outputs={"total": "total.txt"},
        script='''
            s=0
            for ((i = 0; i < n; i++)); do v="in_$i"; read -r x < "${!v}"; s=$((s + x)); done
            echo "$s" > "$total"
        ''',
    ).total


@maestro.main
def main():
    workload, n = sys.argv[1], int(sys.argv[2])
    if workload == "fan-out":
        results = maestro.parallelize(range(n), write)
        maestro.raise_failures(results)
    elif workload == "chain":
        dag = maestro.Dag()
        previous = dag.node("c0", first)
        for i in range(1, n):
            previous = dag.node(f"c{i}", increment, previous, i)
        done = dag.run()
        done.raise_failures()
        assert int(done[f"c{n - 1}"].read_text()) == n - 1
    else:
        dag = maestro.Dag()
        parts = dag.node("split", split, n)
        outs = [dag.node(f"w{i}", double, parts, i) for i in range(n)]
        dag.node("gather", gather, outs)
        done = dag.run()
        done.raise_failures()
        assert int(done["gather"].read_text()) == n * (n - 1)
    print(f"retried={len(retried)}")


main()
"""

XARGS_FAN_OUT = "seq {n} | xargs -P2 -n1 bash -c 'echo x > out_$0.txt'"
BASH_CHAIN = (
    "echo 0 > n_0.txt; for ((i = 1; i < {n}; i++)); do "
    'bash -c \'read -r v < "$1"; echo $((v + 1)) > "$2"\' bash "n_$((i - 1)).txt" "n_$i.txt"; '
    'done; [ "$(cat n_$(({n} - 1)).txt)" = $(({n} - 1)) ]'
)


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, check=False, capture_output=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace")[-2000:]
        raise SystemExit(f"{' '.join(argv)} failed with exit code {done.returncode}:\n{tail}")
    return elapsed, done.stdout.decode(errors="replace")


def fresh(base: Path, name: str) -> Path:
    """A new, empty directory for one run.

    Earlier runs' files stay until the whole benchmark ends (its temporary directory goes then):
    deleting thousands of files right before a run makes that run's file creation slower on
    some file systems (ext4 without a journal skips recently freed inodes), which a user's run
    does not meet, and it hits maestro (four entries per process) more than the floors (one).
    """
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))


Case = Callable[[Path], tuple[float, str]]


def cases(n: int, base: Path) -> dict[tuple[str, str], Case]:
    # A store of its own: benchmark runs must not fill the user's run history.
    env = {
        **os.environ,
        "MAESTRO_PLAIN": "1",
        "MAESTRO_JOBS": "2",
        "MAESTRO_STORE": str(base / "state.db"),
    }
    # Bytecode caching as installed (see the module docstring).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    (base / "floor.py").write_text(FLOOR)
    (base / "workflow.py").write_text(MAESTRO)
    found: dict[tuple[str, str], Case] = {}

    def program(path: Path, workload: str) -> Case:
        return lambda cwd: timed([sys.executable, str(path), workload, str(n)], cwd, env)

    for workload in WORKLOADS:
        found[(workload, "floor")] = program(base / "floor.py", workload)
        found[(workload, "maestro")] = program(base / "workflow.py", workload)
    found[("fan-out", "shell")] = lambda d: timed(["bash", "-c", XARGS_FAN_OUT.format(n=n)], d, env)
    found[("chain", "shell")] = lambda d: timed(["bash", "-c", BASH_CHAIN.format(n=n)], d, env)
    return found


def measure(n: int, repeat: int, base: Path) -> tuple[dict[tuple[str, str], float], int]:
    """Best wall time of each case, and how many ETXTBSY retries the maestro runs needed."""
    best: dict[tuple[str, str], float] = {}
    retries = 0
    for case in cases(min(n, WARM_UP_N), base).values():  # .pyc files written, caches warm
        case(fresh(base, "run"))
    todo = cases(n, base)
    for round_ in range(repeat):
        for key, case in todo.items():  # interleaved, so drift hits every case alike
            elapsed, stdout = case(fresh(base, "run"))
            best[key] = min(best.get(key, float("inf")), elapsed)
            if match := re.search(r"retried=(\d+)", stdout):
                retries += int(match[1])
            print(f"round {round_ + 1}: {key[0]} {key[1]} {elapsed:.2f}s", file=sys.stderr)
    return best, retries


SHELL_NAME = {"fan-out": "xargs -P2", "chain": "bash loop"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=1000, help="processes per workload")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each case; best is kept")
    parser.add_argument(
        "--markdown", action="store_true", help="print a table for docs/benchmarks.md"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the runs' files (their directory is printed) for several runs in a row: "
        "deleting 50,000 files slows file creation on this VM's disk for minutes after",
    )
    options = parser.parse_args()
    n = options.n
    if options.keep:
        tmp = tempfile.mkdtemp(prefix="maestro-bench-dataflow-")
        print(f"the runs' files stay in {tmp}", file=sys.stderr)
        best, retries = measure(n, options.repeat, Path(tmp))
    else:
        with tempfile.TemporaryDirectory(prefix="maestro-bench-dataflow-") as tmp:
            best, retries = measure(n, options.repeat, Path(tmp))

    if options.markdown:
        today = datetime.date.today().isoformat()
        print(
            f"Machine: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}, "
            f"Python {platform.python_version()}; {today}; N = {n}, 2 processes at a time "
            f"(MAESTRO_JOBS=2), best of {options.repeat}."
        )
        print()
        print(
            "| workload | shell floor | Python floor | maestro | per process: floor / maestro "
            "| maestro ÷ Python floor |"
        )
        print("|---|---:|---:|---:|---:|---:|")
    for workload in WORKLOADS:
        floor, ours = best[(workload, "floor")], best[(workload, "maestro")]
        shell = best.get((workload, "shell"))
        ratio = ours / floor
        per_floor, per_ours = floor / n * 1000, ours / n * 1000
        if options.markdown:
            shell_text = f"{shell:.2f} s ({SHELL_NAME[workload]})" if shell is not None else "–"
            print(
                f"| {workload} | {shell_text} | {floor:.2f} s | {ours:.2f} s | "
                f"{per_floor:.2f} ms / {per_ours:.2f} ms | {ratio:.2f}× |"
            )
        else:
            shell_text = f", {SHELL_NAME[workload]} {shell:.2f}s" if shell is not None else ""
            print(
                f"{workload:<15} N={n}: maestro {ours:.2f}s, Python floor {floor:.2f}s"
                f"{shell_text}; maestro/floor = {ratio:.2f}x "
                f"({per_ours:.2f} ms vs {per_floor:.2f} ms per process)"
            )
    if retries:
        print(
            f"\nNote: the maestro runs retried {retries} process start(s) that failed with "
            "ETXTBSY (a script-write/fork race, which the runner should prevent); their cost "
            "is included."
        )


if __name__ == "__main__":
    main()
