#!/usr/bin/env bash
# The takeover gap at a given table size, measured on a live daemon (root; network namespace of its own):
#   bench/takeover-gap.sh [FLOWS ...]      (default: 1000 100000 1000000)
# For each size: a state file of FLOWS synthetic flows (Ctfw.Bench --make-state), a ctfw restored
# from it, then `ctfw run --takeover`; prints the takeover line (gap, restore time, queue counters).
# Everything it creates (namespace, files, processes) is removed at the end.
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
sizes=("${@:-1000 100000 1000000}")
[[ $(id -u) == 0 ]] || { echo "takeover-gap: needs root (network namespace, NFQUEUE)" >&2; exit 1; }
art="${CTFW_ARTIFACTS:-/tmp/ctfw-takeover-gap}"
work="$(mktemp -d /tmp/ctfw-takeover-gap.XXXXXX)"
ns="ctfw-tkgap-$$"
cleanup() {
    pkill -f -- "--control $work/" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
export CTFW_ARTIFACTS="$art"
dotnet build "$root/bench/Ctfw.Bench" -c Release -nologo -v q >/dev/null
dotnet build "$root/src/Ctfw.Cli" -c Release -nologo -v q >/dev/null
bench="$(find "$art/bin" -path '*Ctfw.Bench*' -name Ctfw.Bench.dll -path '*release*' | head -1)"
ctfw="$(find "$art/bin" -path '*Ctfw.Cli*' -name ctfw.dll -path '*release*' | head -1)"
printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n' >"$work/rules"
ip netns add "$ns"
ip -n "$ns" link set lo up
for flows in ${sizes[*]}; do
    dotnet "$bench" --make-state "$work/state" "$flows" >/dev/null
    max=$((flows + 100000))
    ip netns exec "$ns" dotnet "$ctfw" run --rules "$work/rules" --queue 7 --install INPUT --state-file "$work/state" \
        --set nf_conntrack_max=$max --control "$work/old.sock" 2>"$work/old.err" &
    for _ in $(seq 600); do grep -q "ctfw: running" "$work/old.err" && break; sleep 0.1; done
    ip netns exec "$ns" dotnet "$ctfw" run --rules "$work/rules" --queue 7 --install INPUT --takeover-from "$work/old.sock" \
        --set nf_conntrack_max=$max --control "$work/new.sock" 2>"$work/new.err" &
    new=$!
    for _ in $(seq 600); do grep -q "ctfw: running\|ctfw: --takeover" "$work/new.err" && break; sleep 0.1; done
    echo "$flows flows: $(grep -h 'took over queue\|--takeover' "$work/new.err")"
    kill "$new"; wait "$new" || true
    wait || true
    rm -f "$work/state"
done
