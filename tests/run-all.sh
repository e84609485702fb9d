#!/usr/bin/env bash
# Runs every test tier on a fresh machine of this kind (Debian + .NET SDK):
#   1. installs what the tests need (apt: iproute2, iputils-ping, iptables, nftables, tcpdump, conntrack, conntrackd, keepalived, ethtool, gcc,
#      and for the lab's real traffic nginx, wrk, iperf3; for the FTP/TFTP helper tests vsftpd and tftpd-hpa,
#      installed with their services held back so nothing listens in the host namespace),
#   2. builds the solution (warnings are errors),
#   3. unit tier: packet parsing, capture files, conntrack core, CLI/replay of kernel recordings,
#      then the functional tier: the firewall pipeline in process behind an in-memory queue (no root),
#   4. fuzzing: afl++ over SharpFuzz-instrumented parsers, 20 s per target (tests/fuzz.sh; installs afl++),
#   5. privileged tier (root only): live-kernel scenarios in network namespaces.
# Prints a closing line "tests: N passed, M failed" and exits non-zero on any failure.
set -uo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
cd "$root"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
unset CTFW_ARTIFACTS

need_apt=()
for tool in ip:iproute2 ping:iputils-ping iptables:iptables nft:nftables tcpdump:tcpdump conntrack:conntrack ethtool:ethtool cc:gcc nsenter:util-linux \
            iperf3:iperf3 nginx:nginx wrk:wrk setpriv:util-linux conntrackd:conntrackd keepalived:keepalived \
            vsftpd:vsftpd in.tftpd:tftpd-hpa; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || need_apt+=("${tool#*:}")
done
# Headers the C NFQUEUE loop of `ctfw bench` (bench/nfq-c-loop) compiles against.
for header in libnetfilter_queue/libnetfilter_queue.h:libnetfilter-queue-dev libmnl/libmnl.h:libmnl-dev; do
    [[ -f "/usr/include/${header%%:*}" ]] || need_apt+=("${header#*:}")
done
if [[ ${#need_apt[@]} -gt 0 ]]; then
    if [[ $(id -u) -eq 0 ]]; then
        echo "== installing: ${need_apt[*]}"
        # Servers (vsftpd, tftpd-hpa, nginx…) are for tests that start them inside namespaces: a
        # policy-rc.d that refuses keeps their packages from starting them in the host namespace.
        policy=""
        [[ -e /usr/sbin/policy-rc.d ]] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy=1; }
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}") >/tmp/ctfw-apt.log 2>&1
        apt_rc=$?
        [[ -n "$policy" ]] && rm -f /usr/sbin/policy-rc.d
        [[ $apt_rc -eq 0 ]] || { echo "apt-get install failed; see /tmp/ctfw-apt.log"; tail -5 /tmp/ctfw-apt.log; exit 1; }
    else
        echo "== not root: cannot install ${need_apt[*]}; the privileged tier will be skipped"
    fi
fi
command -v dotnet >/dev/null || { echo "the .NET SDK (dotnet) is required"; exit 1; }

echo "== build"
dotnet build Firewall.sln -c Release -nologo -v q 2>&1 | tail -3
[[ ${PIPESTATUS[0]} -eq 0 ]] || { echo "tests: 0 passed, 1 failed"; exit 1; }

passed=0; failed=0; status=0
run_tier() {  # project [filter]
    local project=$1 log
    log=$(mktemp)
    echo "== test $project"
    dotnet test "$project" -c Release --no-build -nologo ${2:+--filter "$2"} 2>&1 | tee "$log" | grep -E "^(Passed!|Failed!)|^\s+Failed |Error Message|Assert|Expected|Actual" | head -80
    local rc=${PIPESTATUS[0]}
    local line
    line=$(grep -E "(Passed|Failed)!\s+-" "$log" | tail -1)
    local p f
    p=$(sed -nE 's/.*Passed:\s+([0-9]+).*/\1/p' <<<"$line"); f=$(sed -nE 's/.*Failed:\s+([0-9]+).*/\1/p' <<<"$line")
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
    if [[ $rc -ne 0 ]]; then
        status=1
        [[ -z "$f" || "$f" == 0 ]] && failed=$((failed + 1))
    fi
    rm -f "$log"
}

run_tier tests/Ctfw.Packets.Tests
run_tier tests/Ctfw.Capture.Tests
run_tier tests/Ctfw.Conntrack.Tests
run_tier tests/Ctfw.Cli.Tests
[[ -d tests/Ctfw.Rules.Tests ]] && run_tier tests/Ctfw.Rules.Tests
run_tier tests/Ctfw.Firewall.Tests
# Coverage-guided fuzzing (afl++ and SharpFuzz, docs/FUZZING.md): 20 s per target, each target one test.
if command -v afl-fuzz >/dev/null 2>&1 || [[ $(id -u) -eq 0 ]]; then
    echo "== fuzz (20 s per target)"
    fuzz_log=$(mktemp)
    bash tests/fuzz.sh all 20 2>&1 | tee "$fuzz_log"
    fuzz_rc=${PIPESTATUS[0]}
    fuzz_ok=$(grep -cE "^fuzz [a-z]+: .*, 0 crashes" "$fuzz_log")
    passed=$((passed + fuzz_ok))
    if [[ $fuzz_rc -ne 0 ]]; then
        status=1
        failed=$((failed + $(grep -cE "^fuzz [a-z]+: " "$fuzz_log") - fuzz_ok))
        [[ $(grep -cE "^fuzz [a-z]+: " "$fuzz_log") -eq $fuzz_ok ]] && failed=$((failed + 1))
    fi
    rm -f "$fuzz_log"
else
    echo "== fuzz skipped: afl-fuzz missing and not root to install afl++"
fi
if [[ $(id -u) -eq 0 ]]; then
    run_tier tests/Ctfw.Linux.Tests
    run_tier tests/Ctfw.Kernel.Tests
    [[ -d tests/Ctfw.Lab.Tests ]] && run_tier tests/Ctfw.Lab.Tests
    run_tier tests/Ctfw.Daemon.Tests
else
    echo "== privileged tier skipped: run as root to test against the live kernel and NFQUEUE"
    run_tier tests/Ctfw.Linux.Tests "Tier!=Privileged"
    run_tier tests/Ctfw.Kernel.Tests "Tier!=Privileged"
    [[ -d tests/Ctfw.Lab.Tests ]] && run_tier tests/Ctfw.Lab.Tests "Tier!=Privileged"
    run_tier tests/Ctfw.Daemon.Tests "Tier!=Privileged"
fi

echo "tests: $passed passed, $failed failed"
exit $status
