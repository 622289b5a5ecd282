# mpbench's plain capnp-rpc baselines (the `capnp` and `capnp-callback`
# scenarios): no method carries a Context, and the child's hand-written
# server answers in place on its event-loop thread. `construct` is the
# handshake every connection of the runtime starts with.

@0xc9d1f2a3b4e5f607;

using Proxy = import "/mp/proxy.capnp";

interface Bench {
    construct @0 (threadMap :Proxy.ThreadMap) -> (threadMap :Proxy.ThreadMap);
    ping @1 (value :UInt64) -> (value :UInt64);
    # Calls `fn` back with `value` and answers with what it returned.
    pingBack @2 (value :UInt64, fn :PingFn) -> (value :UInt64);
    # Keeps `fn` for `pingSaved`.
    saveFn @3 (fn :PingFn) -> ();
    # `pingBack` with the function `saveFn` kept.
    pingSaved @4 (value :UInt64) -> (value :UInt64);
}

# The function `pingBack` calls: served by the parent, in place on its loop.
interface PingFn {
    call @0 (value :UInt64) -> (value :UInt64);
}
