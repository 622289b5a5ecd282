# The printer object of the libmultiprocess example, declared again for the
# Rust interop checks. File id, names and ordinals must match the C++
# example's schema exactly (type ids derive from them).

@0x893db95f456ed0e3;

using Proxy = import "/mp/proxy.capnp";

$Proxy.include("printer.h");
$Proxy.includeTypes("types.h");

interface PrinterInterface $Proxy.wrap("Printer") {
    destroy @0 (context :Proxy.Context) -> ();
    # Ends the object; its destructor runs on the caller's worker thread.

    print @1 (context :Proxy.Context, text :Text) -> ();
    # Outputs `text`.
}
