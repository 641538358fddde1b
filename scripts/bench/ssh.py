"""Benchmark: maestro over SSH against plain OpenSSH floors, on the test sshd on loopback.

Needs the test sshd (scripts/backends/sshd-start.sh): user maestro-remote on 127.0.0.1:2222,
client config /var/lib/maestro-sshd/ssh_config with the Host alias `maestro-test` (key login).
maestro reads ~/.ssh/config, so every maestro program here runs with a temporary HOME whose
~/.ssh/config is a copy of that file (as tests/integration/test_ssh.py does), and with
MAESTRO_HOME in a temporary directory (the run history never touches the user's store).
Two measurements, in one run:

  per-process overhead   N trivial processes (`echo x > "$out"`, default N = 100), 2 at a time,
                         each case a whole program started from scratch (best of --repeat after
                         a warm-up round, cases interleaved):
                           local floor    a plain Python program: ThreadPoolExecutor(2) +
                                          subprocess.run per item, on this machine
                           local maestro  a workflow (@maestro.main, ThreadPoolExecutor(2)) on a
                                          Local executor
                           ssh each       the floor with `ssh maestro-test 'echo x > f'` per item,
                                          a new SSH connection each (for reference; at most
                                          20 processes, as a login costs a few hundred ms)
                           ssh + master   the same over one OpenSSH ControlMaster connection
                                          (-o ControlMaster=auto -o ControlPersist=60), opened
                                          and closed inside the program: the SSH floor
                           SSH maestro    the same workflow on an executor with
                                          `ssh = maestro-test` and max_parallel = 2
  transfers              a --size MB random file (default 64; MB = 2^20 bytes) copied to the
                         host and back (best and median of --repeat rounds, at least 7;
                         each copy back checked against the original):
                           maestro SFTP   libmaestro.remote.workspace.push / fetch, called in
                                          this process with SshTarget(host="maestro-test"),
                                          over a connection made before the clock starts
                           scp            `scp -p -F ssh_config`, a new connection each (OpenSSH 9
                                          scp speaks SFTP too: 32 KiB blocks, 64 in flight)
                           scp + master   scp over an already open ControlMaster connection
                         and a workflow in which a local step consumes a remote step's --size MB
                         output (the copy happens inside the run), against a floor program:
                         ssh (head -c SIZE /dev/urandom > f) + scp back + wc -c, over one
                         ControlMaster connection opened inside the program.

Everything the benchmark creates on the host is under ~maestro-remote/maestro-bench-ssh-PID/,
removed at the end (maestro's sessions go there too, through `remote_workdir`).

    .venv/bin/python scripts/bench/ssh.py                      # N = 100, 64 MB
    .venv/bin/python scripts/bench/ssh.py -n 200 --size 128 --repeat 2
    .venv/bin/python scripts/bench/ssh.py --markdown           # tables for docs/benchmarks.md

With the defaults a run takes about 1.5 minutes on the development VM.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

SSH_DIR = Path(os.environ.get("SSH_TEST_DIR", "/var/lib/maestro-sshd"))
SSH_CONFIG = SSH_DIR / "ssh_config"
REMOTE = "maestro-test"
MB = 1 << 20
# `ssh each` (a new connection per process) runs at most this many: a login costs a few hundred ms.
EACH = 20
# Copies take well under a second but vary a lot from one to the next: at least this many rounds.
COPY_ROUNDS = 7

LOCAL_FLOOR = """
import subprocess, sys
from concurrent.futures import ThreadPoolExecutor
n = int(sys.argv[1])
def one(i):
    subprocess.run(["bash", "-c", 'echo x > "$1"', "bash", f"out_{i}.txt"], check=True)
with ThreadPoolExecutor(2) as pool:
    list(pool.map(one, range(n)))
"""

# argv: N, remote directory, then the ssh command line (its options and the host).
SSH_FLOOR = """
import shlex, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
n, directory, ssh = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
master = "ControlMaster=auto" in ssh
# The first command opens the master connection (when there is one), alone: two at once
# would race to become the master.
subprocess.run([*ssh, f"mkdir -p {shlex.quote(directory)}"], check=True)
def one(i):
    subprocess.run([*ssh, f"echo x > {shlex.quote(directory)}/out_{i}.txt"], check=True)
with ThreadPoolExecutor(2) as pool:
    list(pool.map(one, range(n)))
if master:
    subprocess.run([*ssh[:-1], "-O", "exit", ssh[-1]], check=True, capture_output=True)
"""

WORKFLOW = """
import sys
from concurrent.futures import ThreadPoolExecutor
import libmaestro as maestro

def one(i):
    return maestro.process(
        name=f"p{i}", executor=EXECUTOR, outputs={"out": "out.txt"}, script='echo x > "$out"'
    )

@maestro.main
def main():
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, range(int(sys.argv[1]))))

if __name__ == "__main__":
    main()
"""

# A remote step writes SIZE MB; a local step consumes it (maestro copies it here for that step).
TRANSFER_WORKFLOW = """
import sys
import libmaestro as maestro

@maestro.main
def main():
    size = int(sys.argv[1])
    made = maestro.process(
        name="make", executor="remote", args={"bytes": str(size)}, outputs={"big": "big.bin"},
        script='head -c "$bytes" /dev/urandom > "$big"',
    )
    counted = maestro.process(
        name="count", executor="local", inputs={"big": made.big}, outputs={"n": "n.txt"},
        script='wc -c < "$big" > "$n"',
    )
    assert int(counted.n.read_text()) == size

if __name__ == "__main__":
    main()
"""

# argv: bytes, remote directory, control path, ssh config, host.
TRANSFER_FLOOR = """
import shlex, subprocess, sys
size, directory, control, config, host = sys.argv[1:6]
options = ["-F", config, "-o", "ControlMaster=auto", "-o", f"ControlPath={control}",
           "-o", "ControlPersist=60"]
remote = f"{directory}/floor-big.bin"
subprocess.run(["ssh", *options, host,
                f"mkdir -p {shlex.quote(directory)} && head -c {size} /dev/urandom > {shlex.quote(remote)}"],
               check=True)
subprocess.run(["scp", "-q", "-p", *options, f"{host}:{remote}", "big.bin"], check=True)
counted = subprocess.run(["bash", "-c", "wc -c < big.bin"], check=True, capture_output=True, text=True)
assert int(counted.stdout) == int(size)
subprocess.run(["ssh", "-F", config, "-o", f"ControlPath={control}", "-O", "exit", host],
               check=True, capture_output=True)
"""


def maestro_toml(remote_workdir: str) -> str:
    return f"""
[executor.local]
type = "Local"

[executor.remote]
type = "Local"
ssh = {{ host = "{REMOTE}", remote_workdir = "{remote_workdir}" }}
max_parallel = 2
"""


def run(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, check=False, capture_output=True, timeout=600)
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace")[-2000:]
        raise SystemExit(f"{shlex.join(argv)} failed with exit code {done.returncode}:\n{tail}")
    return done.stdout.decode(errors="replace")


def timed(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    run(argv, cwd, env)
    return time.perf_counter() - start


def fresh(base: Path, name: str) -> Path:
    path = base / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    return path


def ssh_options(control: Path | None) -> list[str]:
    options = ["-F", str(SSH_CONFIG)]
    if control is not None:
        options += ["-o", "ControlMaster=auto", "-o", f"ControlPath={control}"]
        options += ["-o", "ControlPersist=60"]
    return options


def remote(command: str, control: Path | None = None) -> str:
    return run(["ssh", *ssh_options(control), REMOTE, command])


def close_master(control: Path) -> None:
    subprocess.run(
        ["ssh", "-F", str(SSH_CONFIG), "-o", f"ControlPath={control}", "-O", "exit", REMOTE],
        capture_output=True, check=False, timeout=30,
    )  # fmt: skip


def rounds(cases: dict[str, Callable[[], float]], repeat: int, what: str) -> dict[str, list[float]]:
    """Every time of each case: one warm-up round first (not kept), then `repeat` rounds with
    the cases interleaved, so drift hits every case alike."""
    for case in cases.values():
        case()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(repeat):
        for name, case in cases.items():
            elapsed = case()
            times[name].append(elapsed)
            print(f"{what} round {round_ + 1}: {name} {elapsed:.2f}s", file=sys.stderr)
    return times


def best_of(cases: dict[str, Callable[[], float]], repeat: int, what: str) -> dict[str, float]:
    return {name: min(times) for name, times in rounds(cases, repeat, what).items()}


# ------------------------------------------------------------------------------ measurements
def measure_processes(
    n: int, repeat: int, base: Path, env: dict[str, str], remote_dir: str
) -> dict[str, float]:
    (base / "floor.py").write_text(LOCAL_FLOOR)
    (base / "ssh_floor.py").write_text(SSH_FLOOR)
    for executor in ("local", "remote"):
        (base / f"workflow_{executor}.py").write_text(WORKFLOW.replace("EXECUTOR", repr(executor)))
    py = sys.executable
    control = base / "cm-floor"
    floor_dir = f"{remote_dir}/floor"
    each = min(n, EACH)

    def program(argv: list[str]) -> Callable[[], float]:
        return lambda: timed(argv, fresh(base, "run"), env)

    def ssh_floor(count: int, control_path: Path | None) -> Callable[[], float]:
        script = str(base / "ssh_floor.py")
        return program(
            [py, script, str(count), floor_dir, "ssh", *ssh_options(control_path), REMOTE]
        )

    cases = {
        "local floor": program([py, str(base / "floor.py"), str(n)]),
        "local maestro": program([py, str(base / "workflow_local.py"), str(n)]),
        "ssh each": ssh_floor(each, None),
        "ssh + master": ssh_floor(n, control),
        "SSH maestro": program([py, str(base / "workflow_remote.py"), str(n)]),
    }
    try:
        return best_of(cases, repeat, f"N={n}")
    finally:
        close_master(control)


def measure_transfers(
    size: int, repeat: int, base: Path, remote_dir: str
) -> tuple[dict[str, list[float]], float]:
    """Seconds of each copy (`<way> up`, `<way> down`), and how long maestro's connect took."""
    # maestro's connection reads ~/.ssh/config: HOME is the temporary one (set by main).
    from libmaestro.config.model import SshTarget
    from libmaestro.remote.connection import hosts
    from libmaestro.remote.paths import RemotePath
    from libmaestro.remote.workspace import fetch, push

    source = base / "big.bin"
    with source.open("wb") as handle:
        for _ in range(size // MB):
            handle.write(os.urandom(MB))
        handle.write(os.urandom(size % MB))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    back = base / "back.bin"
    target = SshTarget(host=REMOTE)
    host = hosts().get(target)
    started = time.perf_counter()
    host.connect()  # as a workflow does at startup, before the clock of any copy starts
    connect = time.perf_counter() - started
    assert host.home
    absolute = f"{host.home}/{remote_dir}"
    host.run(f"mkdir -p {shlex.quote(absolute)}")
    remote_file = f"{absolute}/big.bin"
    control = base / "cm-scp"
    remote("true", control)  # opens the master; every `scp + master` copy goes over it

    def check() -> None:
        if hashlib.sha256(back.read_bytes()).hexdigest() != digest:
            raise SystemExit("the file copied back differs from the original")

    def copy(action: Callable[[], object], *, down: bool) -> float:
        if down:
            back.unlink(missing_ok=True)
        else:
            remote(f"rm -f {shlex.quote(remote_file)}")
        start = time.perf_counter()
        action()
        elapsed = time.perf_counter() - start
        if down:
            check()
        return elapsed

    def scp(control_path: Path | None, *, down: bool) -> Callable[[], float]:
        ends = (
            [f"{REMOTE}:{remote_file}", str(back)]
            if down
            else [str(source), f"{REMOTE}:{remote_file}"]
        )
        argv = ["scp", "-q", "-p", *ssh_options(control_path), *ends]
        return lambda: copy(lambda: run(argv), down=down)

    cases = {
        "maestro SFTP up": lambda: copy(lambda: push(source, target, remote_file), down=False),
        "maestro SFTP down": lambda: copy(
            lambda: fetch(RemotePath(target, PurePosixPath(remote_file)), back), down=True
        ),
        "scp up": scp(None, down=False),
        "scp down": scp(None, down=True),
        "scp + master up": scp(control, down=False),
        "scp + master down": scp(control, down=True),
    }
    try:
        return rounds(cases, repeat, f"{size // MB} MB"), connect
    finally:
        close_master(control)
        host.close()


def measure_transfer_workflow(
    size: int, repeat: int, base: Path, env: dict[str, str], remote_dir: str
) -> dict[str, float]:
    (base / "transfer_workflow.py").write_text(TRANSFER_WORKFLOW)
    (base / "transfer_floor.py").write_text(TRANSFER_FLOOR)
    py = sys.executable
    control = base / "cm-flow"
    floor = [py, str(base / "transfer_floor.py"), str(size), f"{remote_dir}/flow", str(control),
             str(SSH_CONFIG), REMOTE]  # fmt: skip
    cases = {
        "floor": lambda: timed(floor, fresh(base, "run"), env),
        "maestro": lambda: timed(
            [py, str(base / "transfer_workflow.py"), str(size)], fresh(base, "run"), env
        ),
    }
    try:
        return best_of(cases, repeat, f"workflow {size // MB} MB")
    finally:
        close_master(control)


# ------------------------------------------------------------------------------------ report
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=100, help="processes (default 100)")
    parser.add_argument("--size", type=int, default=64, help="file size in MB (default 64)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each case; best is kept")
    parser.add_argument(
        "--markdown", action="store_true", help="print tables for docs/benchmarks.md"
    )
    options = parser.parse_args()
    n, size, repeat = options.n, options.size * MB, options.repeat

    if not SSH_CONFIG.is_file() or subprocess.run(
        ["ssh", "-F", str(SSH_CONFIG), REMOTE, "true"], capture_output=True, timeout=30,
        check=False,
    ).returncode != 0:  # fmt: skip
        raise SystemExit(
            "the test sshd is not running; start it with scripts/backends/sshd-start.sh"
        )
    # Relative to the remote home (ssh commands, scp and SFTP all start there); nothing is
    # shell-quoted with a ~ in it.
    remote_dir = f"maestro-bench-ssh-{os.getpid()}"
    # A short path: a ControlPath socket name must fit in 108 bytes.
    base = Path(tempfile.mkdtemp(prefix="mb-ssh-", dir="/tmp"))
    try:
        home = base / "home"
        (home / ".ssh").mkdir(parents=True, mode=0o700)
        (home / ".ssh" / "config").write_text(SSH_CONFIG.read_text())
        (base / "Maestro.toml").write_text(maestro_toml(f"~/{remote_dir}/maestro_work"))
        os.environ["HOME"] = str(home)  # for maestro's connection in this process, too
        os.environ["MAESTRO_HOME"] = str(base / "maestro-home")
        env = {**os.environ, "MAESTRO_PLAIN": "1"}
        env.pop("MAESTRO_STORE", None)
        # Bytecode caching as installed (see scripts/bench/overhead.py).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        remote(f"mkdir -p {shlex.quote(remote_dir)}")
        procs = measure_processes(n, repeat, base, env, remote_dir)
        copies, connect = measure_transfers(size, max(repeat, COPY_ROUNDS), base, remote_dir)
        flow = measure_transfer_workflow(size, repeat, base, env, remote_dir)
    finally:
        subprocess.run(
            ["ssh", "-F", str(SSH_CONFIG), REMOTE, f"rm -rf {shlex.quote(remote_dir)}"],
            capture_output=True, check=False, timeout=120,
        )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)
    report(options, n, size, procs, copies, connect, flow)


def report(
    options: argparse.Namespace,
    n: int,
    size: int,
    procs: dict[str, float],
    copies: dict[str, list[float]],
    connect: float,
    flow: dict[str, float],
) -> None:
    each = min(n, EACH)
    per = {
        name: elapsed / (each if name == "ssh each" else n) * 1000
        for name, elapsed in procs.items()
    }
    ssh_vs_floor = procs["SSH maestro"] / procs["ssh + master"]
    ssh_vs_local = procs["SSH maestro"] / procs["local maestro"]
    mb = size / MB
    copy_rounds = len(next(iter(copies.values())))
    best = {name: min(times) for name, times in copies.items()}
    median = {name: statistics.median(times) for name, times in copies.items()}

    def rate(name: str) -> str:
        return f"{mb / best[name]:.0f} MB/s ({mb / median[name]:.0f})"

    def ratio(direction: str) -> str:
        ours, floor = f"maestro SFTP {direction}", f"scp + master {direction}"
        return f"{best[ours] / best[floor]:.2f}× ({median[ours] / median[floor]:.2f}×)"

    if not options.markdown:
        print(f"N={n}, 2 at a time, best of {options.repeat}:")
        for name, elapsed in procs.items():
            count = each if name == "ssh each" else n
            print(f"  {name:<14} {elapsed:6.2f}s for {count:>4}  {per[name]:6.1f} ms per process")
        print(f"  SSH maestro / ssh + master = {ssh_vs_floor:.2f}x, "
              f"SSH maestro / local maestro = {ssh_vs_local:.2f}x")  # fmt: skip
        print(
            f"{mb:.0f} MB copies, best (median) of {copy_rounds}; maestro's connect "
            f"({connect:.2f}s) not counted:"
        )
        for direction in ("up", "down"):
            print(
                f"  {direction:<4} maestro SFTP {rate(f'maestro SFTP {direction}')}, "
                f"scp {rate(f'scp {direction}')}, scp + master {rate(f'scp + master {direction}')}"
                f"; maestro / scp + master = {ratio(direction)} (time)"
            )
        print(
            f"workflow remote {mb:.0f} MB -> local step: maestro {flow['maestro']:.2f}s, floor "
            f"{flow['floor']:.2f}s; maestro / floor = {flow['maestro'] / flow['floor']:.2f}x"
        )
        return
    today = datetime.date.today().isoformat()
    print(
        f"Machine: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}; {today}; {ssh_version()}; sshd on 127.0.0.1 "
        f"(loopback)."
    )
    print()
    print(
        f"Per-process overhead: N = {n}, 2 at a time, each a whole program, best of "
        f"{options.repeat}."
    )
    print()
    print(
        "| N | local floor | local maestro | ssh + ControlMaster (floor) | SSH maestro "
        "| per process: local floor / local maestro / ssh + ControlMaster / SSH maestro "
        "| SSH maestro ÷ ssh + ControlMaster | SSH maestro ÷ local maestro |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {n} | {procs['local floor']:.2f} s | {procs['local maestro']:.2f} s | "
        f"{procs['ssh + master']:.2f} s | {procs['SSH maestro']:.2f} s | "
        f"{per['local floor']:.1f} / {per['local maestro']:.1f} / {per['ssh + master']:.1f} / "
        f"{per['SSH maestro']:.1f} ms | {ssh_vs_floor:.2f}× | {ssh_vs_local:.2f}× |"
    )
    print()
    print(
        f"For reference, `ssh` with a new connection per process (no ControlMaster): "
        f"{per['ssh each']:.0f} ms per process ({each} processes, 2 at a time, "
        f"{procs['ssh each']:.2f} s)."
    )
    print()
    print(
        f"Copies of a {mb:.0f} MB file: best (median) of {copy_rounds}; maestro's connection is "
        f"made before the clock starts ({connect:.2f} s), plain scp opens one per copy."
    )
    print()
    print(
        "| copy | maestro SFTP (push / fetch) | scp | scp + ControlMaster "
        "| maestro ÷ scp + ControlMaster (time) |"
    )
    print("|---|---:|---:|---:|---:|")
    for direction, label in (("up", "to the host"), ("down", "back from the host")):
        print(
            f"| {label} | {rate(f'maestro SFTP {direction}')} | {rate(f'scp {direction}')} | "
            f"{rate(f'scp + master {direction}')} | {ratio(direction)} |"
        )
    print()
    print(
        f"A remote step's output consumed by a local step, whole programs, best of "
        f"{options.repeat}."
    )
    print()
    print("| workflow | floor (ssh + scp over ControlMaster + wc) | maestro | maestro ÷ floor |")
    print("|---|---:|---:|---:|")
    print(
        f"| remote step writes {mb:.0f} MB → local step reads it | {flow['floor']:.2f} s | "
        f"{flow['maestro']:.2f} s | {flow['maestro'] / flow['floor']:.2f}× |"
    )


def ssh_version() -> str:
    done = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False)
    import asyncssh

    return f"{done.stderr.strip().split(',')[0]}, asyncssh {asyncssh.__version__}"


if __name__ == "__main__":
    main()
