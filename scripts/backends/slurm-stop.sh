#!/usr/bin/env bash
# slurm-stop.sh -- stop the slurmd, slurmctld and munged that slurm-start.sh started, using their
# pid files only (never by name). Running jobs are not waited for.
#
# Options:   --purge-state   also delete Slurm's saved state, spool and logs (job ids restart at 1,
#                            the jobcomp file that "sacct -c" reads is emptied)
set -uo pipefail
# shellcheck source=scripts/backends/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUN_DIR=/run/slurm
PURGE=0
for arg in "$@"; do
    case "$arg" in
        --purge-state) PURGE=1 ;;
        -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "slurm-stop.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done
[[ $(id -u) == 0 ]] || { echo "slurm-stop.sh: ERROR: must run as root" >&2; exit 1; }

# running PID [NAME]: the process exists, is not a zombie (this machine's PID 1 reaps late) and,
# when NAME is given, is called NAME (a pid file may outlive its process and the pid be reused).

rc=0
stop_pidfile() {  # name pidfile
    local name=$1 pf=$2 pid
    [[ -s "$pf" ]] || { echo "[slurm-stop] $name: no pid file $pf, nothing to stop" >&2; return 0; }
    pid=$(cat "$pf")
    if running "$pid" "$name"; then
        echo "[slurm-stop] stopping $name (pid $pid)" >&2
        kill -TERM "$pid"
        for _ in $(seq 100); do running "$pid" || break; sleep 0.1; done
        if running "$pid"; then
            echo "[slurm-stop] $name did not exit within 10 s; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null
            sleep 0.2
            running "$pid" && { echo "[slurm-stop] ERROR: $name (pid $pid) still runs" >&2; rc=1; return; }
        fi
    fi
    rm -f "$pf"
}

stop_pidfile slurmd    "$RUN_DIR/slurmd.pid"
stop_pidfile slurmctld "$RUN_DIR/slurmctld.pid"
stop_pidfile munged    /run/munge/munged.pid

if ((PURGE)); then
    echo "[slurm-stop] purging /var/spool/slurmctld, /var/spool/slurmd, /var/log/slurm" >&2
    rm -rf /var/spool/slurmctld/* /var/spool/slurmd/* /var/log/slurm/*
fi
exit "$rc"
