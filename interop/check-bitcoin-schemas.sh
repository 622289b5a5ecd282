#!/usr/bin/env bash
# Checks Bitcoin Core's IPC schemas, unchanged, against this repository, in
# two steps. Prints one line per file and step: OK, FAIL (with the errors,
# indented) or SKIP.
#
#   interop/check-bitcoin-schemas.sh [--compile-only | --generate-only | --compare-only] BITCOIN_SRC
#
# BITCOIN_SRC is a Bitcoin Core checkout: its src/ipc/capnp/*.capnp are
# checked (any directory with that layout will do, for instance one where
# the schemas of a pull request's branch were copied).
#
# Step 1, `compile`: compiles each schema against our
# `thread-map/schema/mp/proxy.capnp` instead of libmultiprocess's. They
# import `/mp/proxy.capnp` and use its `ThreadMap`, `Context` and
# annotations, so they compile only if ours declares the same names with
# the same ids and targets. Needs the `capnp` compiler (apt-get install
# capnproto), which also provides `/capnp/c++.capnp`; skipped without it.
#
# Step 2, `generate`: runs our generator (`mpgen`, with the embedded capnp
# compiler: no `capnp` binary needed) on each schema alone (`gen` lines),
# then on all those that generated together, into a throwaway crate in a
# temporary directory that depends on `multiprocess` and `capnp` by path
# and version, and builds it (`build` lines: a file whose generated Rust
# has errors fails). The crate builds in `target/check-bitcoin-schemas` of
# this repository (or $CARGO_TARGET_DIR), apart from the workspace's own
# build. A file whose Rust only fails for want of a schema that did not
# generate, or that had no error before rustc gave up on another file's,
# is SKIPped, not passed. Set KEEP=1 to keep the temporary directory and
# look at the code.
#
# Step 3, `compare`: for each schema of ours in proxy/bitcoin/schema/
# (init, echo, rpc, common, mining), prints the facts that reach the wire
# for it and for the checkout's file of the same name
# (proxy/bitcoin/tools/schema-facts.rs: ids, names, ordinals, layouts,
# types, defaults, annotations; no comments or positions) and diffs them:
# OK when they are wire-identical, FAIL with the differing lines.
#
# Exit status: 0 if every step passed for every file, 1 otherwise, 2 on
# bad usage.

set -u

steps="compile generate compare"
case "${1:-}" in
    --compile-only) steps="compile"; shift ;;
    --generate-only) steps="generate"; shift ;;
    --compare-only) steps="compare"; shift ;;
esac
if [ $# -ne 1 ]; then
    echo "usage: $0 [--compile-only | --generate-only | --compare-only] BITCOIN_SRC" >&2
    exit 2
fi
schema_dir=$(cd "$1/src/ipc/capnp" 2>/dev/null && pwd)
if [ -z "$schema_dir" ] || ! ls "$schema_dir"/*.capnp >/dev/null 2>&1; then
    echo "no $1/src/ipc/capnp/*.capnp: is $1 a Bitcoin Core checkout?" >&2
    exit 2
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
ours="$repo/thread-map/schema"
status=0

# Prints "$1 $2" and, indented, the text on stdin if any.
report() {
    printf '%-5s %-9s %s\n' "$1" "$2" "$3"
    sed 's/^/      /'
}

compile_step() {
    if ! command -v capnp >/dev/null; then
        echo "SKIP  compile   (no capnp compiler: apt-get install capnproto)"
        return
    fi
    for file in "$schema_dir"/*.capnp; do
        # `-o-` writes the compiled CodeGeneratorRequest, which is
        # discarded: compiling is the check.
        if errors=$(capnp compile -o- -I "$ours" --src-prefix="$schema_dir" "$file" 2>&1 >/dev/null); then
            report OK compile "$(basename "$file")" </dev/null
        else
            echo "$errors" | report FAIL compile "$(basename "$file")"
            status=1
        fi
    done
}

generate_step() {
    local generated=() failed=() stem errors log own needs
    local work="$work_root/generate"
    mkdir -p "$work"
    if ! errors=$(cd "$repo" && cargo build --quiet -p multiprocess-proxy-build --bin mpgen 2>&1); then
        echo "$errors" | report FAIL generate "(building mpgen)"
        status=1
        return
    fi
    local mpgen
    mpgen="$(cd "$repo" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug/mpgen"
    [ -x "$mpgen" ] || mpgen="$repo/target/debug/mpgen"

    # Each file alone: the generator's verdict on it (its imports are
    # compiled, not generated).
    for file in "$schema_dir"/*.capnp; do
        stem=$(basename "$file" .capnp)
        if errors=$("$mpgen" --out "$work/alone/$stem" -I "$schema_dir" "$file" 2>&1); then
            report OK gen "$stem.capnp" </dev/null
            generated+=("$file")
        else
            echo "$errors" | grep -v '^cargo:' | report FAIL gen "$stem.capnp"
            failed+=("$stem")
            status=1
        fi
    done
    [ ${#generated[@]} -gt 0 ] || return
    # An error naming the module of a schema that did not generate.
    local missing_pattern='^$'
    if [ ${#failed[@]} -gt 0 ]; then
        missing_pattern="could not find \`($(IFS='|'; echo "${failed[*]}"))(_capnp)?\` in \`generated\`"
    fi

    # Those together, in one crate, since they name each other's types.
    local crate="$work/crate"
    mkdir -p "$crate/src"
    cat >"$crate/Cargo.toml" <<EOF
[package]
name = "check-bitcoin-schemas"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
multiprocess = { path = "$repo/multiprocess" }
capnp = "0.27"

[workspace]
EOF
    # The workspace's versions, so that nothing new is downloaded.
    cp "$repo/Cargo.lock" "$crate/Cargo.lock"
    printf '%s\n' '//! Generated from Bitcoin Core'"'"'s schemas, to see that it compiles.' \
        '#![allow(warnings)]' 'pub mod generated;' >"$crate/src/lib.rs"
    if ! errors=$("$mpgen" --out "$crate/src/generated" --parent generated -I "$schema_dir" "${generated[@]}" 2>&1); then
        echo "$errors" | grep -v "^cargo:" | report FAIL gen "(all together)"
        status=1
        return
    fi
    log="$work/build.log"
    (cd "$crate" && CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target/check-bitcoin-schemas}" \
        cargo build --offline --message-format short 2>&1) >"$log"
    local built=$?
    for file in "${generated[@]}"; do
        stem=$(basename "$file" .capnp)
        # Errors point into src/generated/STEM.rs or STEM_capnp.rs. Those
        # that name a module of a schema that did not generate are that
        # schema's failure, not this one's.
        errors=$(grep -E "src/generated/${stem}(_capnp)?\.rs:[0-9]+:[0-9]+: error" "$log")
        own=$(printf '%s\n' "$errors" | grep -vE "$missing_pattern" | grep .)
        if [ -z "$errors" ] && [ $built -eq 0 ]; then
            report OK build "$stem.capnp" </dev/null
        elif [ -z "$errors" ]; then
            # rustc stops at a syntax error before it checks the rest.
            report SKIP build "$stem.capnp (no error of its own before the build stopped)" </dev/null
        elif [ -z "$own" ]; then
            needs=$(printf '%s\n' "$errors" | sed -nE 's/.*could not find `([a-z0-9_]+)` in `generated`.*/\1/p' |
                sed 's/_capnp$//' | sort -u | sed 's/$/.capnp/' | paste -sd, -)
            report SKIP build "$stem.capnp (needs $needs, which did not generate)" </dev/null
        else
            printf '%s\n' "$own" | sed 's|.*src/generated/||' | head -15 |
                report FAIL build "$stem.capnp ($(printf '%s\n' "$own" | wc -l) errors)"
            status=1
        fi
    done
    if [ $built -ne 0 ] && ! grep -qE "src/generated/.*: error" "$log"; then
        grep -E "error" "$log" | head -20 | report FAIL build "(the crate, outside the generated files)"
        status=1
    fi
}

compare_step() {
    local tool="$work_root/facts" facts errors diffs ours file
    mkdir -p "$tool"
    cat >"$tool/Cargo.toml" <<EOF
[package]
name = "schema-facts"
version = "0.0.0"
edition = "2024"
publish = false

[[bin]]
name = "schema-facts"
path = "$repo/proxy/bitcoin/tools/schema-facts.rs"

[dependencies]
multiprocess-proxy-build = { path = "$repo/proxy/build" }
capnp = "0.27"

[workspace]
EOF
    cp "$repo/Cargo.lock" "$tool/Cargo.lock"
    local target="${CARGO_TARGET_DIR:-$repo/target/check-bitcoin-schemas}"
    if ! errors=$(cd "$tool" && CARGO_TARGET_DIR="$target" cargo build --quiet --offline 2>&1); then
        echo "$errors" | report FAIL compare "(building schema-facts)"
        status=1
        return
    fi
    facts="$target/debug/schema-facts"
    for ours in "$repo"/proxy/bitcoin/schema/*.capnp; do
        file="$schema_dir/$(basename "$ours")"
        if [ ! -f "$file" ]; then
            report SKIP compare "$(basename "$ours") (not in the checkout)" </dev/null
            continue
        fi
        # The builder announces its inputs for cargo on stdout.
        if ! diffs=$(diff <("$facts" "$file" 2>&1 | grep -v '^cargo:') \
            <("$facts" "$ours" 2>&1 | grep -v '^cargo:')); then
            printf '%s\n' "$diffs" | head -30 |
                report FAIL compare "$(basename "$ours") (theirs <, ours >)"
            status=1
        else
            report OK compare "$(basename "$ours") (wire-identical to ours)" </dev/null
        fi
    done
}

# Scratch space for the steps, removed on exit unless KEEP=1.
work_root=$(mktemp -d "${TMPDIR:-/tmp}/check-bitcoin-schemas.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then
    echo "keeping $work_root"
else
    trap 'rm -rf "$work_root"' EXIT
fi

for step in $steps; do
    "${step}_step"
done
exit $status
