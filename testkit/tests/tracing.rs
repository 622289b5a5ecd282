//! Every request and response is traced at `debug` under the `multiprocess`
//! target, with the method, the request number and the thread names on both
//! ends: `RUST_LOG=multiprocess=debug` is the equivalent of Bitcoin Core's
//! `-debug=ipc`. (Alone in this file: it installs the global subscriber.)

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mp_testkit::peer::Peer;
use mp_testkit::watchdog::guard;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn requests_and_responses_are_traced_with_thread_names() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("multiprocess=debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    guard("tracing", Duration::from_secs(60), || {
        let peer = Peer::in_process().expect("peer");
        let probe = peer.init.make_probe().expect("makeProbe");
        std::thread::Builder::new()
            .name("traced-app".into())
            .spawn(move || assert_eq!(probe.add(1, 2).expect("add"), 3))
            .expect("spawn")
            .join()
            .expect("join");
    });
    let log =
        String::from_utf8_lossy(&captured.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle) && l.contains("Probe.add"))
            .unwrap_or_else(|| panic!("no `{needle}` line for Probe.add in:\n{log}"))
            .to_string()
    };
    let sent = line("IPC client send");
    assert!(sent.contains("req="), "{sent}");
    assert!(sent.contains("traced-app"), "client thread named: {sent}");
    let received = line("IPC server recv");
    assert!(
        received.contains("worker-")
            && received.contains("(from ")
            && received.contains("traced-app"),
        "{received}"
    );
    line("IPC server send");
    line("IPC client recv");
}
