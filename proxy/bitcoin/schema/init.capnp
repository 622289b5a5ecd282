# The interface a node process serves first (its bootstrap).
#
# Written for multiprocess to be wire-identical to Bitcoin Core's
# src/ipc/capnp/init.capnp on master (checked against the state of
# bitcoin/bitcoin at commit 0015848792e447c16ccd9326a19345b6094e86f8):
# same file id, names, ordinals (ordinal 2 is the retired first
# `makeMining`, kept so that no later method takes its number) and
# annotations. Our own text, not a copy of theirs.

@0xf2c5cfa319406aa6;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ipc::capnp::messages");

using Proxy = import "/mp/proxy.capnp";
$Proxy.include("interfaces/echo.h");
$Proxy.include("interfaces/init.h");
$Proxy.include("interfaces/mining.h");
$Proxy.includeTypes("ipc/capnp/init-types.h");

using Echo = import "echo.capnp";
using Mining = import "mining.capnp";
using Rpc = import "rpc.capnp";

# Hands out the node's other interfaces.
interface Init $Proxy.wrap("interfaces::Init") {
    construct @0 (threadMap :Proxy.ThreadMap) -> (threadMap :Proxy.ThreadMap);
    makeEcho @1 (context :Proxy.Context) -> (result :Echo.Echo);
    makeMining @3 (context :Proxy.Context) -> (result :Mining.Mining);
    makeRpc @4 (context :Proxy.Context) -> (result :Rpc.Rpc);

    # Retired: a current node refuses it.
    makeMiningOld2 @2 () -> ();
}
