# The calculator object of the libmultiprocess example, declared again for
# the Rust interop checks. File id, names and ordinals must match the C++
# example's schema exactly (type ids derive from them).

@0xb67dbf34061180a9;

using Proxy = import "/mp/proxy.capnp";

$Proxy.include("calculator.h");
$Proxy.includeTypes("types.h");

interface CalculatorInterface $Proxy.wrap("Calculator") {
    destroy @0 (context :Proxy.Context) -> ();
    # Ends the object; its destructor runs on the caller's worker thread.

    solveEquation @1 (context :Proxy.Context, eqn :Text) -> ();
    # Works on `eqn` and sends a line about it to the calculator's printer,
    # before returning.
}
