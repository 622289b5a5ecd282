# Interfaces cppbench calls across its two processes: the calls of mpbench's
# `capnp` (Bench.ping), `call` (add with a Context), `callback` (callFn) and
# `nested` (recurse) scenarios.

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
    callFn @3 (context :Proxy.Context, fn :IntFn, arg :Int32) -> (result :Int32);
    # Calls fn(arg) once from the worker thread and returns its result.
    callFnNoDestroy @4 (context :Proxy.Context, fn :IntFnNoDestroy, arg :Int32) -> (result :Int32);
    # The same, with a function interface that has no `destroy` method.
    recurse @5 (context :Proxy.Context, fn :IntFn, depth :Int32) -> (result :Int32);
    # Calls fn(depth) from the worker thread; fn may call recurse again.
}

interface IntFn $Proxy.wrap("ProxyCallback<std::function<int(int)>>") {
    # A std::function<int(int)> passed by capability, shaped as Bitcoin Core
    # declares its function interfaces: the client that received it calls
    # `destroy` when it lets go of it, so the function is destroyed on the
    # thread that passed it (blocked in its call), before the call returns.
    destroy @0 (context :Proxy.Context) -> ();
    call @1 (context :Proxy.Context, arg :Int32) -> (result :Int32);
}

interface IntFnNoDestroy $Proxy.wrap("ProxyCallback<std::function<int(int)>>") {
    # The same function without `destroy`: letting go of it only releases the
    # capability, and the passing side's event loop hands the function to its
    # cleanup thread to destroy. Shaped as the Rust runtime's `IntFn`
    # (testkit/schema/probe.capnp), which mpbench's `callback` passes.
    call @0 (context :Proxy.Context, arg :Int32) -> (result :Int32);
}
