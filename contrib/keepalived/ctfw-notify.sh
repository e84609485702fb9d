#!/bin/sh
# keepalived notify script for a pair of ctfw gateways kept in step by `ctfw run --sync ftfw`
# (docs/HA.md). The same steps as conntrackd's primary-backup.sh, for ctfw or, with --conntrackd,
# for conntrackd itself (a pair that mixes the two runs this script on both boxes).
#
#   ctfw-notify.sh [--conntrackd] [--control SOCKET] [--config FILE] primary|backup|fault
#   ctfw-notify.sh [options] INSTANCE|GROUP NAME MASTER|BACKUP|FAULT|STOP   (keepalived's `notify`)
#
# primary: commit the external cache (the peer's connections) into the live table, flush the caches,
#          (conntrackd: re-read the kernel table,) send a bulk update to the peer.
#          ctfw:       ctfw sync commit flush bulk (one call)
#          conntrackd: conntrackd -c; -f; -R; -B
# backup:  ask the new primary for a full resync.
#          ctfw:       ctfw sync resync
#          conntrackd: conntrackd -t (shorten kernel timers of entries no longer ours); -n
# fault:   ctfw: as backup.  conntrackd: -t (as primary-backup.sh).
#
# Environment (options win): CTFW (the ctfw command, default "ctfw"; may be "dotnet /opt/ctfw/ctfw.dll"),
# CTFW_CONTROL (ctfw's control socket; ctfw's default when unset), CONNTRACKD (default
# /usr/sbin/conntrackd), CONNTRACKD_CONF (default /etc/conntrackd/conntrackd.conf).
# Every step runs even when an earlier one failed (a half-done promotion beats none); failures are
# logged (syslog and stderr) and make the exit status 1, which keepalived ignores but a test reads.

set -u

mode=ctfw
CTFW=${CTFW:-ctfw}
CTFW_CONTROL=${CTFW_CONTROL:-}
CONNTRACKD=${CONNTRACKD:-/usr/sbin/conntrackd}
CONNTRACKD_CONF=${CONNTRACKD_CONF:-/etc/conntrackd/conntrackd.conf}

usage() {
    echo "usage: ctfw-notify.sh [--conntrackd] [--control SOCKET] [--config FILE] primary|backup|fault" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --conntrackd) mode=conntrackd; shift ;;
        --control) [ $# -ge 2 ] || usage; CTFW_CONTROL=$2; shift 2 ;;
        --config) [ $# -ge 2 ] || usage; CONNTRACKD_CONF=$2; shift 2 ;;
        --) shift; break ;;
        -*) usage ;;
        *) break ;;
    esac
done

# keepalived's generic `notify` passes TYPE NAME STATE; notify_master etc. pass what the config says.
if [ $# -ge 3 ] && { [ "$1" = INSTANCE ] || [ "$1" = GROUP ]; }; then
    case "$3" in
        MASTER) set -- primary ;;
        BACKUP) set -- backup ;;
        FAULT) set -- fault ;;
        STOP) exit 0 ;;
        *) usage ;;
    esac
fi
[ $# -eq 1 ] || usage

failed=0

log() {
    echo "ctfw-notify: $*" >&2
    command -v logger >/dev/null 2>&1 && logger -t ctfw-notify -- "$*"
    return 0
}

# Runs one step; a failure is logged and remembered, and the next step runs anyway.
step() {
    "$@" || { log "ERROR: '$*' failed (exit $?)"; failed=1; }
}

ctfw() {
    # $CTFW is split into words on purpose: it may be "dotnet /path/ctfw.dll".
    if [ -n "$CTFW_CONTROL" ]; then
        $CTFW sync "$@" --control "$CTFW_CONTROL"
    else
        $CTFW sync "$@"
    fi
}

conntrackd() {
    "$CONNTRACKD" -C "$CONNTRACKD_CONF" "$@"
}

case "$mode:$1" in
    ctfw:primary)
        # One call (one .NET start): commit, then flush and bulk, stopping at the first failure.
        step ctfw commit flush bulk
        ;;
    ctfw:backup | ctfw:fault)
        step ctfw resync
        ;;
    conntrackd:primary)
        step conntrackd -c
        step conntrackd -f
        step conntrackd -R
        step conntrackd -B
        ;;
    conntrackd:backup)
        step conntrackd -t
        step conntrackd -n
        ;;
    conntrackd:fault)
        step conntrackd -t
        ;;
    *)
        usage
        ;;
esac

exit $failed
