#!/usr/bin/env bash
# containers-stop.sh -- stop the dockerd that containers-start.sh started (by its pid file only;
# its containerd child exits with it). podman has no daemon: nothing to stop for it.
#
# Options:   --purge-state   also delete the dockerd's data (/var/lib/maestro-dockerd) and the podman
#                            image localhost/maestro-bash:test; containers.conf is kept
set -uo pipefail
# shellcheck source=scripts/backends/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DOCKERD_RUN=/run/maestro-dockerd
DOCKERD_DATA=/var/lib/maestro-dockerd
IMAGE=localhost/maestro-bash:test
PURGE=0
for arg in "$@"; do
    case "$arg" in
        --purge-state) PURGE=1 ;;
        -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "containers-stop.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done
[[ $(id -u) == 0 ]] || { echo "containers-stop.sh: ERROR: must run as root" >&2; exit 1; }

# running PID [NAME]: the process exists, is not a zombie (this machine's PID 1 reaps late) and,
# when NAME is given, is called NAME (a pid file may outlive its process and the pid be reused).

pf="$DOCKERD_RUN/dockerd.pid"
if [[ -s "$pf" ]] && running "$(cat "$pf")" dockerd; then
    pid=$(cat "$pf")
    echo "[containers-stop] stopping dockerd (pid $pid)" >&2
    kill -TERM "$pid"
    # dockerd gives running containers 15 s to stop before it exits itself.
    for _ in $(seq 250); do running "$pid" || break; sleep 0.1; done
    if running "$pid"; then
        echo "[containers-stop] ERROR: dockerd (pid $pid) did not exit within 25 s" >&2
        exit 1
    fi
else
    echo "[containers-stop] dockerd is not running (no live pid in $pf)" >&2
fi
rm -f "$pf" "$DOCKERD_RUN/docker.sock"

if ((PURGE)); then
    echo "[containers-stop] purging $DOCKERD_DATA and the podman image $IMAGE" >&2
    # Unmount anything dockerd left mounted below its data root (deepest first) before deleting.
    awk -v d="$DOCKERD_DATA/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$DOCKERD_DATA" "$DOCKERD_RUN"
    if command -v podman >/dev/null; then podman image rm -f "$IMAGE" >/dev/null 2>&1 || true; fi
fi
exit 0
