# The interfaces the cross-process tests, the demo and mpbench call.
#
# `Init` is the bootstrap interface, shaped as Bitcoin Core's: method @0 is
# `construct`, which exchanges ThreadMaps, and the other methods hand out the
# interfaces to call. (Ordinal @2 of `Init` was `makeBench`, mpbench's plain
# capnp-rpc baseline, which now has a schema of its own in `stress/`.)

@0x83ffbee7799c73d0;

using Proxy = import "/mp/proxy.capnp";

interface Init $Proxy.wrap("mptest::Init") {
    construct @0 (threadMap :Proxy.ThreadMap) -> (threadMap :Proxy.ThreadMap);
    makeProbe @1 (context :Proxy.Context) -> (result :Probe);
}

struct ThreadInfo {
    tid @0 :Int64;
    # The OS thread id (gettid) of the thread that ran the call.
    name @1 :Text;
    # That thread's full name.
}

interface Probe $Proxy.wrap("mptest::Probe") {
    add @0 (context :Proxy.Context, a :Int32, b :Int32) -> (result :Int32);
    whoami @1 (context :Proxy.Context) -> (result :ThreadInfo);
    # Which server thread ran this call.
    block @2 (context :Proxy.Context, gate :Text) -> ();
    # Blocks the serving thread until `open` is called for the same gate.
    open @3 (context :Proxy.Context, gate :Text) -> ();
    # Releases every call blocked on `gate`, now and later.
    waitBlocked @4 (context :Proxy.Context, gate :Text, count :UInt32) -> ();
    # Returns once `count` calls are blocked on `gate`.
    fail @5 (context :Proxy.Context, message :Text, panic :Bool) -> ();
    # Fails with `message`: by returning an error, or by panicking.
    stats @6 (context :Proxy.Context) -> (workers :UInt32, osThreads :UInt32);
    # Live worker threads of this process's thread maps, and its OS threads.
    echo @7 (context :Proxy.Context, data :Data) -> (result :Data);
    callFn @8 (context :Proxy.Context, fn :IntFn, arg :Int32) -> (result :Int32, tid :Int64);
    # Calls `fn(arg)` from the serving worker; returns the result and the
    # worker's thread id.
    saveFn @9 (context :Proxy.Context, fn :IntFn, hasFn :Bool) -> ();
    # Keeps `fn` (or, without one, drops the kept one).
    callSaved @10 (context :Proxy.Context, arg :Int32) -> (result :Int32);
    # Calls the kept `fn(arg)` from the serving worker.
    callSavedFromNotifier @11 (context :Proxy.Context, arg :Int32) -> (result :Int32, tid :Int64);
    # Has the server's notifier thread (a thread serving no call) call the
    # kept `fn(arg)`; returns the result and the notifier's thread id.
    stopNotifier @12 (context :Proxy.Context) -> ();
    # Ends the notifier thread.
    savedFnCount @13 (context :Proxy.Context) -> (count :UInt32);
    # How many IntFn capabilities the server holds.
    recurse @14 (context :Proxy.Context, fn :IntFn, depth :Int32) -> (result :Int32, tid :Int64);
    # Calls `fn(depth)` from the serving worker (which may call `recurse`
    # again, nested); returns fn's result and the worker's thread id.
    disconnect @15 (context :Proxy.Context, thenBlockOn :Text) -> ();
    # Closes the server's end of this connection from inside the call, then,
    # if `thenBlockOn` is not empty, blocks on that gate.
    makeCounter @16 (context :Proxy.Context) -> (result :Counter);
    # A new Counter (its `id` names it in `counterDrops`).
    counterDrops @17 (context :Proxy.Context) -> (tids :List(Int64), ids :List(UInt64));
    # The thread ids on which this process's Counters were destroyed, in
    # order, and the ids of those Counters (`ids[i]` was destroyed on
    # `tids[i]`).
}

interface Counter $Proxy.wrap("mptest::Counter") {
    # An object with a `destroy` method: dropping the client destroys the
    # object on the worker thread mapped to the dropping thread.
    destroy @0 (context :Proxy.Context) -> ();
    increment @1 (context :Proxy.Context) -> (value :Int32);
    id @2 (context :Proxy.Context) -> (result :UInt64);
    # Unique in the serving process: names the Counter in `counterDrops`.
}

interface IntFn $Proxy.wrap("ProxyCallback<std::function<int(int)>>") {
    # A closure `int(int)`, passed by capability.
    call @0 (context :Proxy.Context, arg :Int32) -> (result :Int32);
}
