# mpbench's plain capnp-rpc baseline (the `capnp` scenario): `ping` carries
# no Context, and the child's hand-written server answers it in place on its
# event-loop thread. `construct` is the handshake every connection of the
# runtime starts with.

@0xc9d1f2a3b4e5f607;

using Proxy = import "/mp/proxy.capnp";

interface Bench {
    construct @0 (threadMap :Proxy.ThreadMap) -> (threadMap :Proxy.ThreadMap);
    ping @1 (value :UInt64) -> (value :UInt64);
}
