#!/usr/bin/env bash
# compare.sh: mpbench (the Rust runtime) and cppbench (libmultiprocess) in
# alternating sittings on one machine, then a table of their medians.
#
#   stress/cppbench/compare.sh MPBENCH CPPBENCH [SITTINGS]
#
# MPBENCH and CPPBENCH are the two binaries (target/release/mpbench and
# target/cppbench/cppbench, say); SITTINGS defaults to 3. Each sitting runs, one
# after the other:
#
#   MPBENCH capnp,call,callback,nested --json
#   CPPBENCH capnp,call,callback,callback-nodestroy,nested
#   MULTIPROCESS_WAIT_SPIN_US=0 MPBENCH capnp,call,callback,nested --json   (rows "(spin off)")
#
# It prints every JSON line under a heading naming its run, then a markdown
# table: per scenario the median over the sittings of each run's median_us,
# p99_us, cpu_us_per_call and ctx_switches_per_call, with the range of the
# medians. The environment variables CALLS and WARMUP, if set, are passed to
# both as --calls and --warmup (for a quick try; the defaults are those of the
# binaries: 20000 and 2000). Each run is stopped after TIMEOUT seconds
# (default 1800), which fails the comparison.

set -euo pipefail

usage() {
    echo "usage: $0 MPBENCH CPPBENCH [SITTINGS]" >&2
    exit 2
}

[[ $# -ge 2 && $# -le 3 ]] || usage
mpbench=$1
cppbench=$2
sittings=${3:-3}
[[ -x $mpbench ]] || { echo "$0: $mpbench is not an executable" >&2; exit 2; }
[[ -x $cppbench ]] || { echo "$0: $cppbench is not an executable" >&2; exit 2; }
[[ $sittings =~ ^[1-9][0-9]*$ ]] || { echo "$0: SITTINGS must be a positive number" >&2; exit 2; }
command -v python3 >/dev/null || { echo "$0: needs python3 for the table" >&2; exit 2; }
command -v timeout >/dev/null || { echo "$0: needs timeout (coreutils)" >&2; exit 2; }
limit=${TIMEOUT:-1800}

# Expanded as ${common[@]+"${common[@]}"}: under `set -u`, bash before 4.4
# calls an empty array unbound.
common=()
[[ -n ${CALLS:-} ]] && common+=(--calls "$CALLS")
[[ -n ${WARMUP:-} ]] && common+=(--warmup "$WARMUP")

rust_scenarios=capnp,call,callback,nested
cpp_scenarios=capnp,call,callback,callback-nodestroy,nested

lines=$(mktemp)
trap 'rm -f "$lines"' EXIT

# run TAG COMMAND...: runs it, prints its heading and JSON lines, and keeps
# each JSON line, tagged, for the table.
run() {
    local tag=$1 out
    shift
    echo "## sitting $sitting: $*"
    if ! out=$(timeout "$limit" "$@"); then
        echo "$0: failed or timed out after ${limit} s: $*" >&2
        exit 1
    fi
    local line
    while IFS= read -r line; do
        [[ $line == "{"* ]] || continue
        echo "$line"
        printf '%s\t%s\n' "$tag" "$line" >>"$lines"
    done <<<"$out"
}

echo "# compare.sh: $sittings sittings, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for ((sitting = 1; sitting <= sittings; sitting++)); do
    run rust "$mpbench" "$rust_scenarios" --json ${common[@]+"${common[@]}"}
    run cpp "$cppbench" "$cpp_scenarios" ${common[@]+"${common[@]}"}
    run rust-spin-off env MULTIPROCESS_WAIT_SPIN_US=0 "$mpbench" "$rust_scenarios" --json ${common[@]+"${common[@]}"}
done
echo

python3 - "$lines" <<'EOF'
import json
import statistics
import sys

runs = {}  # (row label) -> list of JSON objects, one per sitting
for raw in open(sys.argv[1]):
    tag, text = raw.rstrip("\n").split("\t", 1)
    obj = json.loads(text)
    label = obj["scenario"] + (" (spin off)" if tag == "rust-spin-off" else "")
    runs.setdefault(label, []).append(obj)

# Each Rust scenario, its spin-off run, then libmultiprocess's counterparts.
groups = [
    ("capnp", ["cpp-capnp"]),
    ("call", ["cpp-call"]),
    ("callback", ["cpp-callback", "cpp-callback-nodestroy"]),
    ("nested", ["cpp-nested"]),
]

def median_of(label, field):
    values = [o[field] for o in runs.get(label, []) if o.get(field) is not None]
    return (statistics.median(values), min(values), max(values)) if values else None

def cell(stat, digits):
    return "n/a" if stat is None else f"{stat[0]:.{digits}f}"

def spread(stat, digits):
    return "n/a" if stat is None else f"{stat[1]:.{digits}f}–{stat[2]:.{digits}f}"

print("| scenario | runs | median_us (median of runs) | range of medians | p99_us | cpu_us_per_call | ctx_switches_per_call | median ÷ Rust's | median ÷ Rust's (spin off) |")
print("|---|---|---|---|---|---|---|---|---|")
for rust, cpps in groups:
    rust_median = median_of(rust, "median_us")
    spin_off_median = median_of(rust + " (spin off)", "median_us")
    for label in [rust, rust + " (spin off)"] + cpps:
        if label not in runs:
            continue
        med = median_of(label, "median_us")
        ratios = ["", ""]
        if label.startswith("cpp-") and med:
            for i, base in enumerate([rust_median, spin_off_median]):
                if base and base[0] > 0:
                    ratios[i] = f"{med[0] / base[0]:.2f}"
        print(f"| {label} | {len(runs[label])} | {cell(med, 1)} | {spread(med, 1)} "
              f"| {cell(median_of(label, 'p99_us'), 1)} | {cell(median_of(label, 'cpu_us_per_call'), 1)} "
              f"| {cell(median_of(label, 'ctx_switches_per_call'), 1)} | {ratios[0]} | {ratios[1]} |")
print()
print("Each figure is the median over the sittings of one run's value; the ratios are of those")
print("medians, a cpp- row's over its Rust scenario's (spin on, spin off). nested and cpp-nested:")
print("median_us and p99_us are per level (a tree over its 9 levels); cpu_us_per_call and")
print("ctx_switches_per_call are per tree.")
EOF
