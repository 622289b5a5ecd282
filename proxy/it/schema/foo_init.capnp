# The bootstrap our tests serve beside foo.capnp: libmultiprocess's
# FooInterface has no `construct @0`, so a child hands one out from here.
@0xa9f3b1c2d4e5f607;

using Proxy = import "/mp/proxy.capnp";
using Foo = import "foo.capnp";

interface FooInit {
    construct @0 (threadMap :Proxy.ThreadMap) -> (threadMap :Proxy.ThreadMap);
    makeFoo @1 (context :Proxy.Context) -> (result :Foo.FooInterface);
}
