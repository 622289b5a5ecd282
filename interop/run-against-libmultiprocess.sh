#!/usr/bin/env bash
# Runs the Rust stand-ins for libmultiprocess's example programs against the
# C++ originals, in mixed combinations, and prints PASS or FAIL per line.
#
#   interop/run-against-libmultiprocess.sh BUILD_DIR
#
# BUILD_DIR is a libmultiprocess build tree in which `make mpexamples` has
# run (it holds example/mpexample, example/mpcalculator, example/mpprinter).
# The Rust binaries are built with cargo first, unless MP_INTEROP_BIN_DIR
# names a directory that already holds them. Each combination runs in its
# own directory under a temporary one (output, and the C++ side's
# debug.log); that directory is kept when something fails, or when
# KEEP_LOGS=1. Set RUST_LOG=multiprocess=debug to trace the Rust side's
# messages there too. TIMEOUT (seconds, default 60) bounds each run.
# Exit status: 0 if every combination passed, 1 otherwise, 2 on bad usage.

set -u

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
build_dir=$(cd "$1" 2>/dev/null && pwd) || { echo "no such directory: $1" >&2; exit 2; }
cpp_dir="$build_dir/example"
for exe in mpexample mpcalculator mpprinter; do
    if [ ! -x "$cpp_dir/$exe" ]; then
        echo "missing $cpp_dir/$exe: build it with \`make multiprocess mpgen mpexamples\`" >&2
        exit 2
    fi
done

here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${MP_INTEROP_BIN_DIR:-}" ]; then
    rust_dir=$(cd "$MP_INTEROP_BIN_DIR" && pwd) || exit 2
else
    (cd "$here" && cargo build --quiet -p mp-interop --bins) || { echo "cargo build failed" >&2; exit 2; }
    target_dir=$(cd "$here" && cargo metadata --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    rust_dir="$target_dir/debug"
fi
for exe in mp-interop-client mp-interop-calculator mp-interop-printer; do
    if [ ! -x "$rust_dir/$exe" ]; then
        echo "missing $rust_dir/$exe" >&2
        exit 2
    fi
done

timeout_secs=${TIMEOUT:-60}
work=$(mktemp -d "${TMPDIR:-/tmp}/mp-interop.XXXXXX")
failed=0

# report NAME DIR STATUS: prints the verdict line, and on failure the tail
# of what the run printed and of the C++ side's debug.log.
report() {
    local name=$1 dir=$2 status=$3
    if [ "$status" = PASS ]; then
        echo "PASS  $name"
    else
        failed=1
        echo "FAIL  $name ($status; logs in $dir)"
        sed 's/^/      | /' "$dir/output" | tail -n 20
        if [ -f "$dir/debug.log" ]; then
            echo "      C++ debug.log (last lines):"
            sed 's/^/      | /' "$dir/debug.log" | tail -n 20
        fi
    fi
}

# rust_client NAME CALCULATOR PRINTER: our mpexample stand-in, whose own
# checks decide.
rust_client() {
    local name=$1 calculator=$2 printer=$3
    local dir="$work/$name"
    mkdir -p "$dir"
    (cd "$dir" && MP_INTEROP_TIMEOUT_SECS=$timeout_secs timeout -k 5 $((timeout_secs + 10)) \
        "$rust_dir/mp-interop-client" "$calculator" "$printer") >"$dir/output" 2>&1
    local code=$?
    if [ $code -eq 0 ] && grep -q '^mp-interop-client: OK' "$dir/output"; then
        report "$name" "$dir" PASS
    else
        report "$name" "$dir" "exit status $code"
    fi
}

# cpp_example NAME CALCULATOR PRINTER EXPECTED...: the C++ mpexample, copied
# next to links named mpcalculator and mpprinter (it starts the programs
# found next to itself), fed two equations; its output must hold every
# EXPECTED line and "Bye!".
cpp_example() {
    local name=$1 calculator=$2 printer=$3
    shift 3
    local dir="$work/$name"
    mkdir -p "$dir"
    cp "$cpp_dir/mpexample" "$dir/mpexample"
    ln -s "$calculator" "$dir/mpcalculator"
    ln -s "$printer" "$dir/mpprinter"
    (cd "$dir" && printf '1+2\n3*4\nexit\n' | timeout -k 5 "$timeout_secs" ./mpexample) >"$dir/output" 2>&1
    local code=$?
    local status=PASS
    if [ $code -ne 0 ]; then
        status="exit status $code"
    else
        for expected in "$@" "Bye!"; do
            if ! grep -qF -- "$expected" "$dir/output"; then
                status="no \"$expected\" in the output"
                break
            fi
        done
    fi
    report "$name" "$dir" "$status"
}

rust_client "a-rust-client+cpp-calculator+cpp-printer" "$cpp_dir/mpcalculator" "$cpp_dir/mpprinter"
rust_client "b-rust-client+cpp-calculator+rust-printer" "$cpp_dir/mpcalculator" "$rust_dir/mp-interop-printer"
cpp_example "c-cpp-mpexample+rust-calculator+rust-printer" \
    "$rust_dir/mp-interop-calculator" "$rust_dir/mp-interop-printer" \
    "mp-interop-printer: 1+2 = 3" "mp-interop-printer: 3*4 = 12"
cpp_example "d-cpp-mpexample+cpp-calculator+rust-printer" \
    "$cpp_dir/mpcalculator" "$rust_dir/mp-interop-printer" \
    "mp-interop-printer: Wow 1+2, that's a tough one." "mp-interop-printer: Wow 3*4, that's a tough one."
# Beyond the four required: the remaining mixes.
rust_client "e-rust-client+rust-calculator+cpp-printer" "$rust_dir/mp-interop-calculator" "$cpp_dir/mpprinter"
rust_client "f-rust-client+rust-calculator+rust-printer" "$rust_dir/mp-interop-calculator" "$rust_dir/mp-interop-printer"
cpp_example "g-cpp-mpexample+rust-calculator+cpp-printer" \
    "$rust_dir/mp-interop-calculator" "$cpp_dir/mpprinter" \
    "mpprinter: 1+2 = 3" "mpprinter: 3*4 = 12"

if [ $failed -eq 0 ] && [ "${KEEP_LOGS:-0}" != 1 ]; then
    rm -rf "$work"
else
    echo "logs: $work"
fi
exit $failed
