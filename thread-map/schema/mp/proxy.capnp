# The wire schema of the multiprocess runtime.
#
# This file must stay wire-identical to libmultiprocess's `mp/proxy.capnp`:
# the same file id, the same type and annotation names (Cap'n Proto derives
# their ids from the file id and the name), and the same ordinals. A C++
# libmultiprocess process and a Rust multiprocess process exchange these types.
# Change nothing here without checking it against the C++ library.

@0xcc316e3f71a040fb;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("mp");

# Annotations used by interface files written for libmultiprocess. The C++ code
# generator reads them; the Rust runtime accepts them so that such files
# (Bitcoin Core's init.capnp, mining.capnp, ...) compile unchanged.

annotation include(file): Text;
# A header the generated C++ code includes.

annotation includeTypes(file): Text;
# A header with type conversions the generated C++ code includes.

annotation wrap(interface, struct): Text;
# The name of the native interface (or struct) this capnp type stands for.

annotation count(param, struct, interface): Int32;
# How many native arguments one capnp parameter carries. 0 means the parameter
# is filled in by the runtime, not by the caller (Context is one).

annotation exception(param): Text;
# A result field that carries a native exception of the named type.

annotation name(field, method): Text;
# The native name of a field or method, when it differs from the capnp name.

annotation skip(field): Void;
# Same as count(0).

interface ThreadMap $count(0) {
    # Lets a client ask the server for threads. Each side of a connection
    # gives the other one of these.

    makeThread @0 (name :Text) -> (result :Thread);
    # Starts a server worker thread for the client thread called `name` and
    # returns its handle. Calls whose Context.thread is that handle run on it.
    # Releasing the last reference to the handle ends the worker.

    makePool @1 (count :UInt32) -> ();
    # Starts `count` pooled workers that serve calls arriving with no
    # Context.thread.
}

interface Thread {
    # A handle to one thread: a server worker, or a client thread that is
    # waiting in a call and can run callbacks.

    getName @0 () -> (result: Text);
    # The thread's descriptive name.
}

struct Context $count(0) {
    # Passed with every call by the runtime, never by application code.

    thread @0 : Thread;
    # The thread the call must run on (a handle from the callee's makeThread).

    callbackThread @1 : Thread;
    # The calling thread, on which the callee's calls back to the caller
    # (callbacks) must run while the call is in progress.
}
