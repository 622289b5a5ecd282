# The README's first program: one interface, served by a child process.
@0xb3c6f1d2e4a59788;

using Proxy = import "/mp/proxy.capnp";

interface Calc {
    construct @0 (threadMap :Proxy.ThreadMap) -> (threadMap :Proxy.ThreadMap);
    add @1 (context :Proxy.Context, a :Int32, b :Int32) -> (result :Int32);
    whereAmI @2 (context :Proxy.Context) -> (result :Text);
}
