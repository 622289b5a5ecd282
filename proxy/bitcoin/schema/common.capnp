# Types shared by the other schemas of this directory.
#
# Written for multiprocess to be wire-identical to Bitcoin Core's
# src/ipc/capnp/common.capnp on master (checked against the state of
# bitcoin/bitcoin at commit 0015848792e447c16ccd9326a19345b6094e86f8, the
# v32 mining interface): same file id, names, ordinals, types and
# annotations, so a bitcoin-node and a Rust process read each other's
# messages. Our own text, not a copy of theirs.

@0xcd2c6232cb484a28;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ipc::capnp::messages");

using Proxy = import "/mp/proxy.capnp";
$Proxy.includeTypes("ipc/capnp/common-types.h");

# A block: its 32-byte hash and its height in the chain.
struct BlockRef $Proxy.wrap("interfaces::BlockRef") {
    hash @0 :Data;
    height @1 :Int32;
}
