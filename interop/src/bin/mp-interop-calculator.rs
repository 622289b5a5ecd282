//! `mp-interop-calculator <fd>`: the Rust stand-in for libmultiprocess's
//! `mpcalculator`. Serves `InitInterface` on the socket `<fd>`; its
//! calculators solve `a+b`, `a-b`, `a*b` and report `<eqn> = <value>` to
//! their printer. Exits 0 when the parent hangs up.

fn main() -> std::process::ExitCode {
    mp_interop::process::child_main(mp_interop::roles::Role::Calculator)
}
