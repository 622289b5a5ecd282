# Bootstrap interface of the libmultiprocess example programs (mpexample,
# mpcalculator, mpprinter), declared again for the Rust interop checks.
#
# Wire identity is what matters here: the file id below and the interface
# names decide the type ids (a method's parameter and result structs take
# theirs from the interface and the method's ordinal), and the ordinals and
# parameter types decide the message layout, so none of them may differ
# from the C++ example's schema. Comments and layout are our own.

@0xba5a7448664901b1;

using Proxy = import "/mp/proxy.capnp";
using Calculator = import "calculator.capnp";
using Printer = import "printer.capnp";

# C++ code generation hints (headers of the example); the Rust side ignores
# them, but keeping them keeps the file usable by libmultiprocess's mpgen.
$Proxy.include("calculator.h");
$Proxy.include("init.h");
$Proxy.include("printer.h");
$Proxy.includeTypes("types.h");

interface InitInterface $Proxy.wrap("Init") {
    construct @0 (threadMap :Proxy.ThreadMap) -> (threadMap :Proxy.ThreadMap);
    # Handshake: the caller hands over its ThreadMap and gets the callee's.

    makeCalculator @1 (context :Proxy.Context, print :Printer.PrinterInterface) -> (result :Calculator.CalculatorInterface);
    # A calculator that reports every solved equation to `print`.

    makePrinter @2 (context :Proxy.Context) -> (result :Printer.PrinterInterface);
    # A printer living in the callee's process.
}
