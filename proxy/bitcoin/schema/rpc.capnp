# JSON-RPC requests carried over IPC.
#
# Written for multiprocess to be wire-identical to Bitcoin Core's
# src/ipc/capnp/rpc.capnp on master (checked against the state of
# bitcoin/bitcoin at commit 0015848792e447c16ccd9326a19345b6094e86f8).
# Our own text, not a copy of theirs.

@0x9c3505dc45e146ac;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ipc::capnp::messages");

using Common = import "common.capnp";
using Proxy = import "/mp/proxy.capnp";
$Proxy.include("interfaces/rpc.h");
$Proxy.includeTypes("ipc/capnp/rpc-types.h");

# Runs one JSON-RPC request as the node's HTTP server would.
interface Rpc $Proxy.wrap("interfaces::Rpc") {
    executeRpc @0 (context :Proxy.Context, request :Text, uri :Text, user :Text) -> (result :Text);
}
