#!/usr/bin/env bash
# Coverage-guided fuzzing of what ctfw reads from others: afl-fuzz (afl++) drives tests/Ctfw.Fuzz,
# whose assemblies SharpFuzz instruments, from the seeds in tests/Ctfw.Fuzz/corpus/TARGET.
#   tests/fuzz.sh TARGET|all SECONDS      targets: packet capture rules control sync track
# Installs afl++ (apt, as root) and the sharpfuzz tool (dotnet tool, into the work directory) when
# missing. Exits non-zero when afl found a crash (an exception escaping a parser): the inputs are
# kept under $CTFW_FUZZ_DIR/out/TARGET/default/crashes, with the command that reproduces them.
# Work directory: $CTFW_FUZZ_DIR, default /tmp/ctfw-fuzz-PATH-OF-THE-CHECKOUT. docs/FUZZING.md has the long run.
set -uo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
targets=(packet capture rules control sync track)
[[ $# -eq 2 && $2 =~ ^[0-9]+$ ]] || { echo "usage: $0 TARGET|all SECONDS  (targets: ${targets[*]})"; exit 2; }
if [[ $1 != all ]]; then
    [[ " ${targets[*]} " == *" $1 "* ]] || { echo "unknown target '$1' (targets: ${targets[*]})"; exit 2; }
    targets=("$1")
fi
seconds=$2
work="${CTFW_FUZZ_DIR:-/tmp/ctfw-fuzz${root//\//-}}"  # one per checkout: parallel runs of two clones do not collide
mkdir -p "$work"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

if ! command -v afl-fuzz >/dev/null 2>&1; then
    [[ $(id -u) -eq 0 ]] || { echo "fuzz: afl-fuzz missing and not root to install afl++"; exit 1; }
    echo "== fuzz: installing afl++"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq afl++) >"$work/apt.log" 2>&1 \
        || { echo "fuzz: apt-get install afl++ failed; see $work/apt.log"; tail -5 "$work/apt.log"; exit 1; }
fi
sharpfuzz="$work/tool/sharpfuzz"
if [[ ! -x $sharpfuzz ]]; then
    dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path "$work/tool" >"$work/tool.log" 2>&1 \
        || { echo "fuzz: installing the sharpfuzz tool failed; see $work/tool.log"; tail -5 "$work/tool.log"; exit 1; }
fi

# Own artifacts root: the instrumented copies must never be the assemblies the tests run.
echo "== fuzz: build and instrument"
CTFW_ARTIFACTS="$work/artifacts" dotnet build "$root/tests/Ctfw.Fuzz" -c Release -nologo -v q >"$work/build.log" 2>&1 \
    || { echo "fuzz: build failed; see $work/build.log"; grep -E "error" "$work/build.log" | sort -u | head -5; exit 1; }
bin="$work/bin"
rm -rf "$bin" && cp -r "$work/artifacts/bin/Ctfw.Fuzz/release" "$bin"
for assembly in Ctfw.Packets.dll Ctfw.Capture.dll Ctfw.Conntrack.dll Ctfw.Rules.dll Ctfw.Linux.dll ctfw.dll; do
    "$sharpfuzz" "$bin/$assembly" >>"$work/instrument.log" 2>&1 \
        || { echo "fuzz: sharpfuzz could not instrument $assembly; see $work/instrument.log"; tail -3 "$work/instrument.log"; exit 1; }
done

# dotnet itself is not instrumented (SharpFuzz speaks afl's fork-server protocol from managed code);
# no UI, and no core-pattern or CPU-governor tuning demanded of the machine.
export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1
status=0
for target in "${targets[@]}"; do
    out="$work/out/$target"
    rm -rf "$out" && mkdir -p "$work/out"
    afl-fuzz -V "$seconds" -t 5000 -m none -i "$root/tests/Ctfw.Fuzz/corpus/$target" -o "$out" \
        -- dotnet "$bin/Ctfw.Fuzz.dll" "$target" >"$work/afl-$target.log" 2>&1
    rc=$?
    stats="$out/default/fuzzer_stats"
    if [[ ! -f $stats ]]; then
        echo "fuzz $target: afl-fuzz did not run (exit $rc); see $work/afl-$target.log"
        grep -E "PROGRAM ABORT|Location|\[-\]" "$work/afl-$target.log" | head -5
        status=1
        continue
    fi
    field() { sed -nE "s/^$1 *: *([0-9]+).*/\1/p" "$stats"; }
    crashes=$(find "$out/default/crashes" -type f -name 'id:*' 2>/dev/null | wc -l)
    hangs=$(find "$out/default/hangs" -type f -name 'id:*' 2>/dev/null | wc -l)
    echo "fuzz $target: ${seconds}s, $(field execs_done) executions, $(field corpus_count) paths, $crashes crashes, $hangs hangs (over 5 s)"
    if [[ $crashes -gt 0 ]]; then
        status=1
        echo "  crashing inputs in $out/default/crashes; reproduce with:"
        find "$out/default/crashes" -type f -name 'id:*' | head -3 | while read -r input; do
            echo "    dotnet $work/artifacts/bin/Ctfw.Fuzz/release/Ctfw.Fuzz.dll $target '$input'"
        done
    fi
done
exit $status
