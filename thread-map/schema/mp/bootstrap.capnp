# Runtime-private schema: the shape of a bootstrap interface's method @0.
#
# libmultiprocess applications (Bitcoin Core's `Init`) start every connection
# by calling `construct @0 (threadMap) -> (threadMap)` on the bootstrap
# capability, so that each side gets the other's ThreadMap. The runtime makes
# and answers that call for any bootstrap interface, using the parameter and
# result structs below: they have the same layout as every such method's.

@0xa8b4c0e2f1d7a9c3;

using Proxy = import "proxy.capnp";

interface Bootstrap {
    construct @0 (threadMap :Proxy.ThreadMap) -> (threadMap :Proxy.ThreadMap);
}
