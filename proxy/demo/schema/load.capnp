# The many-clients test's server: answers that only the right caller can
# recognise, and a call that stays in the middle of running.
@0xa7d25c41e08b3f96;

using Proxy = import "/mp/proxy.capnp";

interface Load $Proxy.wrap("load::Load") {
    construct @0 (threadMap :Proxy.ThreadMap) -> (threadMap :Proxy.ThreadMap);
    echo @1 (context :Proxy.Context, caller :Text, seq :UInt32) -> (answer :Text, worker :Text);
    # `answer` is `"{caller}#{seq}"` (computed here); `worker` is the thread
    # that served the call.
    hold @2 (context :Proxy.Context, during :Holding) -> ();
    # Calls `during` with the serving thread's name and returns once it
    # has: the call is in the middle of running while `during` runs.
}

interface Holding $Proxy.wrap("ProxyCallback<std::function<void(std::string)>>") {
    call @0 (context :Proxy.Context, worker :Text) -> ();
}
