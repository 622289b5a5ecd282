# The test interface a node hands out to check that IPC works.
#
# Written for multiprocess to be wire-identical to Bitcoin Core's
# src/ipc/capnp/echo.capnp on master (checked against the state of
# bitcoin/bitcoin at commit 0015848792e447c16ccd9326a19345b6094e86f8).
# Our own text, not a copy of theirs.

@0x888b4f7f51e691f7;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ipc::capnp::messages");

using Proxy = import "/mp/proxy.capnp";
$Proxy.include("interfaces/echo.h");
$Proxy.includeTypes("ipc/capnp/echo-types.h");

# Answers with what it was sent.
interface Echo $Proxy.wrap("interfaces::Echo") {
    destroy @0 (context :Proxy.Context) -> ();
    echo @1 (context :Proxy.Context, echo :Text) -> (result :Text);
}
