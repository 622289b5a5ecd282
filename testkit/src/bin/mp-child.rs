//! The test child: serves `Init` (and through it `Probe`, whose generated
//! server runs [`mp_testkit::probe_server`]) on the socket passed as
//! `-ipcfd=N`, and exits when the parent disconnects.
//!
//! It takes the socket itself and serves with `probe_server::serve` rather
//! than `multiprocess::serve_parent`: `Probe.disconnect` closes its own
//! connection, so the `Init` is made once the connection exists, with its
//! `ServeContext`, which `serve_parent` (given a ready object) cannot pass.
//!
//! `MP_CHILD_MAX_WORKERS=N` in its environment sets how many workers one
//! connection's peer may have (`set_max_workers_per_connection`).
//!
//! It answers `SIGUSR1` with what its threads wait for
//! (`mp_testkit::child_waits`), which the parent's watchdog asks for when it
//! fires.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Before any other thread starts: they must inherit the blocked SIGUSR1.
    if let Err(e) = mp_testkit::child_waits::answer_sigusr1() {
        eprintln!("mp-child: cannot answer SIGUSR1 (the watchdog will not see our waits): {e}");
    }
    multiprocess::install_tracing();
    if let Some(count) = std::env::var("MP_CHILD_MAX_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        multiprocess_thread_map::set_max_workers_per_connection(count);
    }
    match multiprocess_thread_map::take_ipc_fd() {
        Ok(Some(stream)) => match mp_testkit::serve_child(stream) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mp-child: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(None) => {
            eprintln!("usage: mp-child -ipcfd=N (started by a parent process)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("mp-child: {e}");
            ExitCode::FAILURE
        }
    }
}
