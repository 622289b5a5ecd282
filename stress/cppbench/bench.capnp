# Interfaces cppbench calls across its two processes, the same two calls as
# mpbench's `capnp` (Bench.ping) and `call` (add with a Context) scenarios.

@0x8bd2f5ce04cf6e70;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("cppbench::messages");

using Proxy = import "/mp/proxy.capnp";
$Proxy.include("bench.h");
$Proxy.includeTypes("bench-types.h");

interface InitInterface $Proxy.wrap("cppbench::Init") {
    construct @0 (threadMap :Proxy.ThreadMap) -> (threadMap :Proxy.ThreadMap);
    makeBench @1 (context :Proxy.Context) -> (result :BenchInterface);
}

interface BenchInterface $Proxy.wrap("cppbench::Bench") {
    destroy @0 (context :Proxy.Context) -> ();
    # Lets the client destroy the server object on its worker thread.
    add @1 (context :Proxy.Context, a :Int32, b :Int32) -> (result :Int32);
    # With a Context: runs on the worker thread of the calling thread.
    ping @2 (value :UInt64) -> (value :UInt64);
    # Without a Context: answered on the server's event-loop thread.
}
