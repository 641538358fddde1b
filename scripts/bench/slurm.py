"""Benchmark: the Slurm executor against raw sbatch, and how hard it leans on the scheduler.

Needs a running Slurm (scripts/backends/slurm-start.sh starts the single-node one when
`scontrol ping` fails). Two measurements, in one run:

  per-job overhead   --jobs N trivial jobs (`true`), cpus=1, 64 MB per CPU, each run as a whole
                     program started from scratch (best of --repeat, cases interleaved):
                       floor    a plain Python program: `sbatch --parsable --wrap true` per job
                                (argv lists), then one batched `squeue -h -t all -j IDS -o %i|%T`
                                every 0.5 s until every job is terminal
                       maestro  a workflow project (Maestro.toml + workflow.py) whose
                                `maestro.parallelize` runs the N jobs on a Slurm executor
  scheduler load     a workflow keeping --active jobs (`sleep S`) queued or running, with the
                     executor's default poll interval; every Slurm command goes through logging
                     wrappers first on PATH. Counted over the steady-state window: from the
                     last sbatch for --window seconds; then SIGTERM stops the workflow (maestro
                     scancels its jobs). Reported as commands per minute per 100 active jobs,
                     against naive per-job polling (one squeue per job every 5 s: 1200/min).

At the end no job of the benchmark is left queued: the session's jobs (names `maestro.SESSION.*`)
and the floor's are scancelled as a safety net, and the queue is checked.

    .venv/bin/python scripts/bench/slurm.py                   # N = 40, 100 active, 90 s window
    .venv/bin/python scripts/bench/slurm.py --markdown        # tables for docs/benchmarks.md

With the defaults a run takes about 2.5 minutes on the single-node Slurm.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

SLURM_COMMANDS = ("sbatch", "squeue", "sacct", "scancel", "scontrol")
TERMINAL = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
     "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED"}
)  # fmt: skip
FLOOR_JOB_NAME = "maestro-bench-floor"
MEM_PER_CPU_MB = 64
# The original tool asked squeue about each job separately every 5 s.
NAIVE_PER_MINUTE_PER_100 = 100 * 60 / 5

FLOOR = r"""
import subprocess, sys, time

TERMINAL = set(sys.argv[2].split(","))
argv = ["sbatch", "--parsable", "--job-name=JOB_NAME", "--cpus-per-task=1",
        "--mem-per-cpu=MEMM", "--wrap", "true"]
ids = []
for _ in range(int(sys.argv[1])):
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    ids.append(done.stdout.strip().split(";", 1)[0])
print(",".join(ids), flush=True)
states = {}
while len(states) < len(ids):
    time.sleep(0.5)
    waiting = [i for i in ids if i not in states]
    done = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", ",".join(waiting), "-o", "%i|%T"],
        check=True, capture_output=True, text=True,
    )
    for line in done.stdout.splitlines():
        job_id, state = line.strip().split("|")
        if state in TERMINAL:
            states[job_id] = state
bad = {i: s for i, s in states.items() if s != "COMPLETED"}
assert not bad, bad
""".replace("JOB_NAME", FLOOR_JOB_NAME).replace("MEM", str(MEM_PER_CPU_MB))

WORKFLOW = r"""
import sys
import libmaestro as maestro

SCRIPT = sys.argv[2]


def one(i):
    return maestro.process(name=f"job_{i}", executor="slurm", script=SCRIPT)


@maestro.main
def main():
    maestro.raise_failures(maestro.parallelize(range(int(sys.argv[1])), one))


main()
"""

# No poll_interval: the executor's default. max_parallel lets every job be queued at once (the
# floor submits them all too); without it a Slurm executor has 64 worker threads.
CONFIG = """
[executor.slurm]
type = "Slurm"
cpus = 1
memory = { type = "per_cpu", amount = MEM }
max_parallel = JOBS
""".replace("MEM", str(MEM_PER_CPU_MB))

WRAPPER = """#!/bin/bash
printf '%s\\t%s\\t%s\\n' "$EPOCHREALTIME" {name} "$*" >> '{log}'
exec {real} "$@"
"""


# ----------------------------------------------------------------------------- Slurm helpers
def slurm(*argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """A Slurm command run directly (not through the logging wrappers)."""
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)


def ensure_slurm() -> None:
    if shutil.which("scontrol") and slurm("scontrol", "ping").returncode == 0:
        return
    start = Path(__file__).resolve().parents[1] / "backends" / "slurm-start.sh"
    print(f"scontrol ping failed; starting Slurm with {start}", file=sys.stderr)
    subprocess.run([str(start)], check=True)


def queued_jobs() -> list[tuple[str, str, str]]:
    """(id, name, state) of every job squeue lists as not yet ended."""
    done = slurm("squeue", "-h", "-o", "%i|%j|%T")
    rows = []
    for line in done.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            rows.append((parts[0], parts[1], parts[2]))
    return rows


def session_of(project: Path) -> str | None:
    work = project / "maestro_work"
    sessions = [p.name for p in work.iterdir() if p.is_dir()] if work.is_dir() else []
    return sessions[0] if len(sessions) == 1 else None


def ours(prefixes: list[str]) -> list[tuple[str, str, str]]:
    return [row for row in queued_jobs() if any(row[1].startswith(p) for p in prefixes)]


def clean_up(prefixes: list[str], *, timeout: float = 60) -> bool:
    """scancel every queued job whose name starts with one of `prefixes`; True once none is."""
    deadline = time.monotonic() + timeout
    left = ours(prefixes)
    if left:
        slurm("scancel", *[job_id for job_id, _, _ in left])
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = ours(prefixes)
    return not left


# ----------------------------------------------------------------------------- per-job overhead
def write_project(directory: Path, jobs: int) -> Path:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    (directory / "Maestro.toml").write_text(CONFIG.replace("JOBS", str(jobs)))
    (directory / "workflow.py").write_text(WORKFLOW)
    return directory


def timed(argv: list[str], cwd: Path, env: dict[str, str], what: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{what} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return elapsed


def overhead(n: int, repeat: int, base: Path, env: dict[str, str]) -> dict[str, list[float]]:
    """Wall time of every run of each case."""
    floor = base / "floor.py"
    floor.write_text(FLOOR)
    terminal = ",".join(sorted(TERMINAL))
    times: dict[str, list[float]] = {"floor": [], "maestro": []}
    for round_ in range(repeat):
        for case in ("floor", "maestro"):  # interleaved, so drift hits both alike
            if case == "floor":
                cwd = base / "floor-run"
                shutil.rmtree(cwd, ignore_errors=True)
                cwd.mkdir()
                argv = [sys.executable, str(floor), str(n), terminal]
            else:
                cwd = write_project(base / f"overhead-{round_}", n)
                argv = [sys.executable, "workflow.py", str(n), "true"]
            elapsed = timed(argv, cwd, env, case)
            times[case].append(elapsed)
            print(f"round {round_ + 1}: {n} jobs, {case} {elapsed:.2f}s", file=sys.stderr)
    return times


# ----------------------------------------------------------------------------- scheduler load
def write_wrappers(directory: Path) -> Path:
    directory.mkdir()
    log = directory / "calls.log"
    log.touch()
    for name in SLURM_COMMANDS:
        real = shutil.which(name)
        if real is None:
            raise SystemExit(f"{name} is not on PATH")
        wrapper = directory / name
        wrapper.write_text(WRAPPER.format(name=name, log=log, real=real))
        wrapper.chmod(0o755)
    return log


def read_calls(log: Path) -> list[tuple[float, str, str]]:
    calls = []
    for line in log.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t", 2)
        if len(parts) == 3:
            calls.append((float(parts[0]), parts[1], parts[2]))
    return calls


def active_count(prefix: str) -> int:
    return sum(1 for _, name, _ in queued_jobs() if name.startswith(prefix))


def load(active: int, sleep: int, window: float, base: Path, env: dict[str, str]) -> dict:
    log = write_wrappers(base / "wrappers")
    project = write_project(base / "load", active)
    run_env = {**env, "PATH": f"{log.parent}{os.pathsep}{env['PATH']}"}
    out = (base / "load.out").open("w")
    started = time.time()
    proc = subprocess.Popen(
        [sys.executable, "workflow.py", str(active), f"sleep {sleep}"],
        cwd=project, env=run_env, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    prefix: str | None = None
    result: dict = {}
    try:
        # Wait for every job to be submitted.
        deadline = time.monotonic() + 60 + active
        while True:
            calls = read_calls(log)
            submitted = [c for c in calls if c[1] == "sbatch"]
            if len(submitted) >= active:
                break
            if proc.poll() is not None:
                raise SystemExit(
                    f"the workflow ended early (exit {proc.returncode}):\n"
                    + (base / "load.out").read_text()[-3000:]
                )
            if time.monotonic() > deadline:
                raise SystemExit(f"only {len(submitted)} of {active} jobs submitted in time")
            time.sleep(0.2)
        window_start = max(c[0] for c in submitted)
        session = session_of(project)
        if session is None:
            raise SystemExit(f"no session directory under {project / 'maestro_work'}")
        prefix = f"maestro.{session}."
        active_start = active_count(prefix)
        settle = time.monotonic() + 5  # the last sbatch may still be on its way
        while active_start < active and time.monotonic() < settle:
            time.sleep(0.2)
            active_start = active_count(prefix)
        time.sleep(max(0.0, window_start + window - time.time()))
        window_end = time.time()
        active_end = active_count(prefix)
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        stopped = time.time()
        calls = read_calls(log)
        in_window = [c for c in calls if window_start < c[0] <= window_end]
        squeues = [c for c in in_window if c[1] == "squeue"]
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(squeues)]
        widths = [
            len(arg.removeprefix("--jobs=").split(","))
            for c in squeues
            for arg in c[2].split()
            if arg.startswith("--jobs=")
        ]
        result = {
            "submit": window_start - started,
            "window": window_end - window_start,
            "counts": Counter(c[1] for c in in_window),
            "active_start": active_start,
            "active_end": active_end,
            "gaps": gaps,
            "widths": widths,
            "shutdown": Counter(c[1] for c in calls if c[0] > window_end),
            "shutdown_seconds": stopped - window_end,
            "exit_code": code,
            "before": Counter(c[1] for c in calls if c[0] <= window_start),
        }
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        out.close()
        if prefix is None and (session := session_of(project)) is not None:
            prefix = f"maestro.{session}."
        if prefix is not None:
            result["left_by_maestro"] = len(ours([prefix]))
            clean_up([prefix])
    return result


# ----------------------------------------------------------------------------- report
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=40, help="jobs for the overhead measurement")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each overhead case")
    parser.add_argument("--active", type=int, default=100, help="jobs kept queued or running")
    parser.add_argument("--sleep", type=int, default=60, help="seconds each active job sleeps")
    parser.add_argument("--window", type=float, default=90.0, help="steady-state seconds counted")
    parser.add_argument(
        "--markdown", action="store_true", help="print tables for docs/benchmarks.md"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (command log, projects)"
    )
    options = parser.parse_args()
    ensure_slurm()
    busy = queued_jobs()
    if busy:
        print(f"warning: {len(busy)} job(s) already queued; they slow both cases", file=sys.stderr)

    base = Path(tempfile.mkdtemp(prefix="maestro-bench-slurm-"))
    # A store of its own: benchmark runs must not fill the user's run history.
    env = {**os.environ, "MAESTRO_PLAIN": "1", "MAESTRO_STORE": str(base / "state.db")}
    try:
        times = overhead(options.jobs, options.repeat, base, env)
        print(
            f"steady state: {options.active} jobs of `sleep {options.sleep}`, "
            f"{options.window:.0f} s window ...",
            file=sys.stderr,
        )
        found = load(options.active, options.sleep, options.window, base, env)
    finally:
        sessions = [p.name for p in base.glob("*/maestro_work/*") if p.is_dir()]
        clean = clean_up([FLOOR_JOB_NAME, *(f"maestro.{s}." for s in sessions)])
        if options.keep:
            print(f"kept {base} (wrappers/calls.log: every Slurm command)", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    left = len(queued_jobs())
    report(options, times, found, clean=clean, left=left)


def report(
    options: argparse.Namespace,
    times: dict[str, list[float]],
    found: dict,
    *,
    clean: bool,
    left: int,
) -> None:
    n = options.jobs
    floor, ours_ = min(times["floor"]), min(times["maestro"])
    spread = ", ".join(f"{case} {min(runs):.2f}–{max(runs):.2f} s" for case, runs in times.items())
    ratio = ours_ / floor
    counts: Counter[str] = found["counts"]
    minutes = found["window"] / 60
    mean_active = (found["active_start"] + found["active_end"]) / 2
    scale = 100 / mean_active / minutes if mean_active else float("nan")
    total = sum(counts.values()) * scale
    fewer = NAIVE_PER_MINUTE_PER_100 / total if total else float("inf")
    gaps = found["gaps"]
    gap_text = (
        f"{min(gaps):.2f} / {statistics.median(gaps):.2f} / {max(gaps):.2f} s" if gaps else "–"
    )
    widths = found["widths"]
    width_text = f"{min(widths)}–{max(widths)}" if widths else "–"
    shutdown = found["shutdown"]
    shutdown_text = ", ".join(f"{shutdown[c]} {c}" for c in SLURM_COMMANDS if shutdown[c])
    before = found["before"]
    before_text = ", ".join(f"{before[c]} {c}" for c in SLURM_COMMANDS if before[c])
    today = datetime.date.today().isoformat()
    machine = (
        f"Machine: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}; {today}; {slurm_version()}."
    )

    if options.markdown:
        print(machine)
        print()
        print(
            "| jobs | floor (sbatch loop + batched squeue) | maestro (`parallelize`) "
            "| per job: floor / maestro | maestro ÷ floor |"
        )
        print("|---:|---:|---:|---:|---:|")
        print(
            f"| {n} | {floor:.2f} s | {ours_:.2f} s | {floor / n * 1000:.0f} ms / "
            f"{ours_ / n * 1000:.0f} ms | {ratio:.2f}× |"
        )
        print()
        print(f"| command | calls in {found['window']:.0f} s | per minute per 100 active jobs |")
        print("|---|---:|---:|")
        for command in SLURM_COMMANDS:
            print(f"| {command} | {counts[command]} | {counts[command] * scale:.1f} |")
        print(f"| **all** | {sum(counts.values())} | **{total:.1f}** |")
        print(
            f"| naive per-job polling (one squeue per job every 5 s) | – | "
            f"{NAIVE_PER_MINUTE_PER_100:.0f} ({fewer:.0f}× more) |"
        )
        print()
        print(
            f"How measured: `.venv/bin/python scripts/bench/slurm.py --markdown`; each case is "
            f"a whole program started from scratch, best of {options.repeat}, interleaved. The "
            f"floor is a Python loop of `sbatch --parsable --wrap true` (argv lists, with the same "
            f"`--cpus-per-task=1 --mem-per-cpu={MEM_PER_CPU_MB}M` as maestro's jobs), then one "
            f"`squeue -h -t all -j IDS -o %i|%T` every 0.5 s until all are terminal; maestro runs "
            f"the {n} jobs with `maestro.parallelize` on a Slurm executor (`cpus = 1`, "
            f"`max_parallel = {n}`). On this node jobs start on slurmctld's ~1 s scheduling tick "
            f"and drain at about 4 jobs/s, so both are dominated by Slurm itself. For the load, a "
            f"workflow keeps {options.active} jobs of `sleep {options.sleep}` active (2 run at a "
            f"time here, the rest stay PENDING) with the default poll interval, every Slurm "
            f"command logged by wrappers first on PATH; counted from the last sbatch for "
            f"{found['window']:.0f} s ({found['active_start']} active at the start, "
            f"{found['active_end']} at the end: normalised by the mean), then the workflow is "
            f"stopped with SIGTERM."
        )
        print()
        print(
            f"Observed in this run: all overhead runs: {spread}. Every squeue asked about {width_text} jobs at once; time "
            f"between squeue calls min / median / max {gap_text}. Submitting the "
            f"{options.active} jobs took {found['submit']:.1f} s ({before_text}). On SIGTERM the "
            f"workflow exited {found['exit_code']} after {found['shutdown_seconds']:.1f} s, "
            f"having run {shutdown_text or 'nothing'}; {found.get('left_by_maestro', '?')} job(s) "
            f"were left for the safety-net scancel, and the queue was "
            f"{'empty' if left == 0 and clean else f'NOT empty ({left} jobs)'} afterwards."
        )
        return

    print(machine)
    print(
        f"per-job overhead, {n} jobs: floor {floor:.2f}s, maestro {ours_:.2f}s; "
        f"maestro/floor = {ratio:.2f}x ({ours_ / n * 1000:.0f} ms vs {floor / n * 1000:.0f} ms "
        f"per job; all runs: {spread})"
    )
    print(
        f"scheduler load: {found['window']:.0f} s window, active jobs {found['active_start']} -> "
        f"{found['active_end']}; submitting took {found['submit']:.1f}s ({before_text})"
    )
    print(f"  {'command':<10}{'calls':>7}{'per min per 100 active':>26}")
    for command in SLURM_COMMANDS:
        print(f"  {command:<10}{counts[command]:>7}{counts[command] * scale:>26.1f}")
    print(f"  {'all':<10}{sum(counts.values()):>7}{total:>26.1f}")
    print(
        f"  naive per-job polling: {NAIVE_PER_MINUTE_PER_100:.0f}/min per 100 jobs "
        f"= {fewer:.0f}x maestro's"
    )
    print(f"  squeue: {width_text} jobs per call; gap min/median/max {gap_text}")
    print(
        f"shutdown (SIGTERM): exit {found['exit_code']} after {found['shutdown_seconds']:.1f}s, "
        f"ran {shutdown_text or 'nothing'}; left for the safety net: "
        f"{found.get('left_by_maestro', '?')}; queue afterwards: "
        f"{'empty' if left == 0 and clean else f'{left} job(s)'}"
    )


def slurm_version() -> str:
    done = slurm("sbatch", "--version")
    return done.stdout.strip() or "Slurm (version unknown)"


if __name__ == "__main__":
    main()
