//! `mp-interop-printer <fd>`: the Rust stand-in for libmultiprocess's
//! `mpprinter`. Serves `InitInterface` on the socket `<fd>`; its printers
//! write `mp-interop-printer: <text>` lines to stdout. Exits 0 when the
//! parent hangs up.

fn main() -> std::process::ExitCode {
    mp_interop::process::child_main(mp_interop::roles::Role::Printer)
}
