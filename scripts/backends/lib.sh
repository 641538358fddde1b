# shellcheck shell=bash
# lib.sh -- helpers shared by the scripts in scripts/backends/ (sourced, not run).
# The caller defines log() and die() first: their messages carry the caller's own name.

# running PID [COMM]: true if PID is a live process (not a zombie: this machine's PID 1 reaps
# slowly), and, given COMM, if that is its name.
running() {
    local stat
    [[ "$1" =~ ^[0-9]+$ ]] && stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }; [[ "${stat%% *}" != Z ]] || return 1
    [[ -z "${2:-}" || "$(cat "/proc/$1/comm" 2>/dev/null)" == "$2" ]]
}

# apt_install PACKAGE...: install the missing ones. The packages' own init scripts must not
# start services (the callers start their own daemons), so a policy-rc.d forbids it meanwhile.
apt_install() {
    local missing=() p added_policy=0 rc=0
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]}"
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; added_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
        log "apt-get install failed; running apt-get update and retrying"
        apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    } || rc=$?
    ((added_policy)) && rm -f /usr/sbin/policy-rc.d
    ((rc == 0)) || die "could not install ${missing[*]} with apt-get"
}
