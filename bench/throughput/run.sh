#!/usr/bin/env bash
# Bulk-TCP throughput of ctfw vs plain forwarding vs the plain C NFQUEUE accept-all loop.
# client ── gateway ── server (three netns, veth, IPv4, forwarding in gateway). See docs/THROUGHPUT.md.
#
#   sudo bench/throughput/run.sh            # REPS=2 DURATION=10 by default
#   REPS=3 DURATION=10 QUEUE=7 SETUPS="plain cloop ctfw ctfw-gw" bench/throughput/run.sh
#
# Needs: root, iperf3, iptables, gcc + libnetfilter-queue-dev + libmnl-dev, dotnet, jq.
# ctfw: CTFW_DLL (default /tmp/art-thr/bin/Ctfw.Cli/release/ctfw.dll; built if missing with
#       CTFW_ARTIFACTS=/tmp/art-thr dotnet build src/Ctfw.Cli -c Release).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REPS=${REPS:-2}
DURATION=${DURATION:-10}
QUEUE=${QUEUE:-7}
COPY=${COPY:-65535}          # ctfw's default copy range is "all"; the C loop gets the same
SETUPS=${SETUPS:-"plain cloop ctfw ctfw-gw"}
PIN_DAEMON=${PIN_DAEMON:-}   # e.g. 1: taskset the daemon (C loop or ctfw) onto these CPUs
PIN_IPERF=${PIN_IPERF:-}     # e.g. 0: taskset iperf3 client and server onto these CPUs
CTFW_DLL=${CTFW_DLL:-/tmp/art-thr/bin/Ctfw.Cli/release/ctfw.dll}
P=thr$$
NC=$P-c NG=$P-g NS=$P-s
WORK=$(mktemp -d /tmp/ctfw-thr.XXXXXX)
DAEMON_PID=

log() { echo "[$(date +%T)] $*" >&2; }

cleanup() {
    set +e
    stop_daemon
    for ns in $NC $NG $NS; do
        ip netns pids $ns 2>/dev/null | xargs -r kill 2>/dev/null
        ip netns del $ns 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

# ---- build ---------------------------------------------------------------------------------
gcc -O2 -Wall -o "$WORK/nfq_accept" "$ROOT/bench/nfq-c-loop/nfq_accept.c" -lnetfilter_queue -lmnl
if [ ! -f "$CTFW_DLL" ]; then
    log "building ctfw"
    (cd "$ROOT" && CTFW_ARTIFACTS=/tmp/art-thr dotnet build src/Ctfw.Cli -c Release >/dev/null)
fi

# ---- lab -----------------------------------------------------------------------------------
# Gateway interfaces are named like rules/gateway.rules expects: eth1 = LAN (client), eth0 = uplink (server).
for ns in $NC $NG $NS; do ip netns add $ns; ip -n $ns link set lo up; done
ip netns exec $NG sysctl -qw net.ipv4.ip_forward=1
ip -n $NC link add c0 type veth peer name eth1 netns $NG
ip -n $NS link add s0 type veth peer name eth0 netns $NG
ip -n $NC addr add 10.91.1.2/24 dev c0;  ip -n $NC link set c0 up
ip -n $NG addr add 10.91.1.1/24 dev eth1; ip -n $NG link set eth1 up
ip -n $NG addr add 10.91.2.1/24 dev eth0; ip -n $NG link set eth0 up
ip -n $NS addr add 10.91.2.2/24 dev s0;  ip -n $NS link set s0 up
ip -n $NC route add default via 10.91.1.1
ip -n $NS route add default via 10.91.2.1
ip netns exec $NS ${PIN_IPERF:+taskset -c $PIN_IPERF} iperf3 -s -D -I "$WORK/iperf3.pid" >/dev/null
sleep 0.5
ip netns exec $NC ping -c1 -W2 10.91.2.2 >/dev/null || { echo "lab: no connectivity" >&2; exit 1; }

# ---- set-ups -------------------------------------------------------------------------------
wait_for() { # file pattern seconds
    local i; for ((i = 0; i < $3 * 10; i++)); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1
}

start_setup() { # name
    case $1 in
    plain) ;;
    cloop)
        ip netns exec $NG iptables -A FORWARD -j NFQUEUE --queue-num $QUEUE --queue-bypass
        ip netns exec $NG ${PIN_DAEMON:+taskset -c $PIN_DAEMON} "$WORK/nfq_accept" -q $QUEUE -r $COPY >"$WORK/daemon.out" 2>"$WORK/daemon.err" &
        DAEMON_PID=$!
        wait_for "$WORK/daemon.err" "nfq_accept: queue" 10 || { cat "$WORK/daemon.err" >&2; return 1; } ;;
    ctfw|ctfw-gw)
        local rules=$ROOT/rules/accept-all.rules
        [ $1 = ctfw-gw ] && rules=$ROOT/rules/gateway.rules
        ip netns exec $NG ${PIN_DAEMON:+taskset -c $PIN_DAEMON} dotnet "$CTFW_DLL" run --rules "$rules" --queue $QUEUE --install FORWARD \
            >"$WORK/daemon.out" 2>"$WORK/daemon.err" &
        DAEMON_PID=$!
        wait_for "$WORK/daemon.err" "ctfw: running" 30 || { cat "$WORK/daemon.err" >&2; return 1; } ;;
    esac
    sleep 0.5
}

stop_daemon() {
    if [ -n "$DAEMON_PID" ]; then
        kill -TERM "$DAEMON_PID" 2>/dev/null
        wait "$DAEMON_PID" 2>/dev/null
        DAEMON_PID=
    fi
    ip netns exec $NG iptables -F FORWARD 2>/dev/null || true
}

# CPU ticks per thread of a pid: "tid comm utime stime" lines
thread_ticks() {
    local t
    for t in /proc/$1/task/*; do
        awk -v tid="${t##*/}" '{ sub(/^[0-9]+ \(/, ""); split($0, a, ") "); n = split(a[2], f, " ");
              print tid, a[1], f[12], f[13] }' "$t/stat" 2>/dev/null
    done
}
ctxsw() { cat /proc/$1/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ { v += $2 } /^nonvoluntary_ctxt_switches/ { n += $2 } END { print v + 0, n + 0 }'; }
stat_cpu() { awk '/^cpu / { print $2+$3+$4+$5+$6+$7+$8+$9, $9 }' /proc/stat; } # total, steal

run_once() { # setup rep
    local s=$1 r=$2 before after gbps cpu0 cpu1
    start_setup $s || { echo "$s $r FAILED" >>"$WORK/results"; stop_daemon; return; }
    [ -n "$DAEMON_PID" ] && { thread_ticks $(daemon_main_pid) >"$WORK/t0"; read -r cv0 cn0 <<<"$(ctxsw $DAEMON_PID)"; }
    before=$(stat_cpu)
    ip netns exec $NC ${PIN_IPERF:+taskset -c $PIN_IPERF} iperf3 -c 10.91.2.2 -t $DURATION -J >"$WORK/iperf.json" || true
    after=$(stat_cpu)
    gbps=$(jq -r '.end.sum_received.bits_per_second / 1e9 | . * 100 | round / 100' "$WORK/iperf.json" 2>/dev/null || echo 0)
    local steal dtot
    read -r t0 s0 <<<"$before"; read -r t1 s1 <<<"$after"
    dtot=$((t1 - t0)); steal=$(awk -v a=$((s1 - s0)) -v b=$dtot 'BEGIN { printf "%.1f", (b ? 100 * a / b : 0) }')
    local dcpu="-" detail=""
    if [ -n "$DAEMON_PID" ]; then
        local mp; mp=$(daemon_main_pid)
        thread_ticks $mp >"$WORK/t1"
        read -r cv1 cn1 <<<"$(ctxsw $DAEMON_PID)"
        detail="ctxsw vol $((cv1 - cv0)) invol $((cn1 - cn0)); threads "
        # per-thread CPU % over the iperf run (ticks are 1/100 s)
        detail=$detail$(join <(sort "$WORK/t0") <(sort "$WORK/t1") 2>/dev/null | awk -v d=$DURATION '
            { u = ($6 - $3) / d; k = ($7 - $4) / d; c = u + k; if (c >= 1) printf "%s:%.0f%%(usr %.0f sys %.0f) ", $2, c, u, k; tot += c } END { printf "| total %.0f%%", tot }')
        dcpu=$(echo "$detail" | sed 's/.*total //')
    fi
    stop_daemon
    local extra=""
    [ $s = cloop ] && extra=$(cat "$WORK/daemon.out")
    [ ${s:0:4} = ctfw ] && extra=$(grep -E 'packets|verdicts|queue|batch' "$WORK/daemon.err" | tr '\n' ' ')
    echo "$s $r $gbps $dcpu $steal" >>"$WORK/results"
    log "$s rep $r: $gbps Gbit/s, daemon CPU $dcpu, steal $steal% $detail"
    [ -n "$extra" ] && log "   $extra"
    sleep 1
}
daemon_main_pid() { # the process itself (ip netns exec execs in place)
    echo "$DAEMON_PID"
}

log "kernel $(uname -r), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
log "gateway eth1 offloads: $(ip netns exec $NG ethtool -k eth1 2>/dev/null | grep -E '^(tcp-segmentation-offload|generic-segmentation-offload|generic-receive-offload):' | tr -s ' \n' ' ')"
log "pinning: daemon ${PIN_DAEMON:-none}, iperf3 ${PIN_IPERF:-none}"
log "setups: $SETUPS; reps $REPS; $DURATION s iperf3 TCP client→server; queue $QUEUE; C-loop copy range $COPY"
: >"$WORK/results"
for ((r = 1; r <= REPS; r++)); do
    for s in $SETUPS; do run_once $s $r; done
done

echo
printf '%-9s %-30s %8s %14s\n' setup "Gbit/s per rep" mean "daemon CPU"
for s in $SETUPS; do
    awk -v s=$s '$1 == s { v = v sprintf("%s ", $3); sum += $3; n++; c = c $4 " " }
        END { printf "%-9s %-30s %8.2f %14s\n", s, v, n ? sum / n : 0, c }' "$WORK/results"
done
mean() { awk -v s=$1 '$1 == s { sum += $3; n++ } END { printf "%.3f", n ? sum / n : 0 }' "$WORK/results"; }
ratio() { awk -v a=$(mean $1) -v b=$(mean $2) 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }
echo
for s in $SETUPS; do
    case $s in
    ctfw*) echo "ratio $s ÷ cloop: $(ratio $s cloop)   ($s ÷ plain: $(ratio $s plain))" ;;
    cloop) echo "ratio cloop ÷ plain: $(ratio cloop plain)" ;;
    esac
done
cp "$WORK/results" /tmp/ctfw-thr-last-results.txt
