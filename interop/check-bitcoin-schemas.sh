#!/usr/bin/env bash
# Compiles Bitcoin Core's IPC schemas, unchanged, against our
# `thread-map/schema/mp/proxy.capnp` instead of libmultiprocess's: they
# import `/mp/proxy.capnp` and use its `ThreadMap`, `Context` and
# annotations, so they compile only if ours declares the same names with
# the same ids and targets. Prints OK or FAIL per file.
#
#   interop/check-bitcoin-schemas.sh BITCOIN_SRC
#
# BITCOIN_SRC is a Bitcoin Core checkout (its src/ipc/capnp/*.capnp are
# compiled). Needs the `capnp` compiler (apt-get install capnproto), which
# also provides `/capnp/c++.capnp`. Exit status: 0 if every file compiled,
# 1 otherwise, 2 on bad usage.

set -u

if [ $# -ne 1 ]; then
    echo "usage: $0 BITCOIN_SRC" >&2
    exit 2
fi
schema_dir="$1/src/ipc/capnp"
if ! ls "$schema_dir"/*.capnp >/dev/null 2>&1; then
    echo "no $schema_dir/*.capnp: is $1 a Bitcoin Core checkout?" >&2
    exit 2
fi
command -v capnp >/dev/null || { echo "capnp compiler not found" >&2; exit 2; }
ours=$(cd "$(dirname "$0")/../thread-map/schema" && pwd)

status=0
for file in "$schema_dir"/*.capnp; do
    # `-o-` writes the compiled CodeGeneratorRequest, which is discarded:
    # compiling is the check.
    if errors=$(capnp compile -o- -I "$ours" --src-prefix="$schema_dir" "$file" 2>&1 >/dev/null); then
        echo "OK   $(basename "$file")"
    else
        echo "FAIL $(basename "$file")"
        echo "$errors" | sed 's/^/     /'
        status=1
    fi
done
exit $status
