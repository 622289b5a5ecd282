//! The demo: spawns a child process (itself, serving the test kit's `Init`),
//! then four application threads each make calls into it. Every call of one
//! application thread runs on the one server worker thread the child
//! dedicated to it.
//!
//! `cargo run -p mp-testkit --bin mp-demo` (add `RUST_LOG=multiprocess=debug`
//! to see every request and response).

use std::collections::BTreeSet;
use std::process::Command;

use mp_testkit::probe::Init;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiprocess::install_tracing();
    // Started with -ipcfd=N: this is the child; serve until the parent leaves.
    if let Some(stream) = multiprocess::take_ipc_fd()? {
        return Ok(mp_testkit::serve_child(stream)?);
    }
    let (mut child, init) =
        multiprocess::spawn::<dyn Init>(&mut Command::new(std::env::current_exe()?))?;
    let probe = init.make_probe()?;
    println!(
        "parent pid {} spawned child {}; each application thread makes 5 calls:",
        std::process::id(),
        child.id()
    );
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let probe = probe.clone();
            std::thread::Builder::new()
                .name(format!("app-{i}"))
                .spawn(move || {
                    let mut seen = BTreeSet::new();
                    for n in 0..5 {
                        let sum = probe.add(i, n)?;
                        assert_eq!(sum, i + n);
                        let info = probe.whoami()?;
                        seen.insert((info.tid, info.name));
                    }
                    Ok::<_, multiprocess::Error>(seen)
                })
        })
        .collect::<Result<_, _>>()?;
    for (i, thread) in threads.into_iter().enumerate() {
        let seen = thread.join().map_err(|_| "application thread panicked")??;
        for (tid, name) in &seen {
            println!("  app-{i}: all calls ran on server thread {tid} \"{name}\"");
        }
        if seen.len() != 1 {
            return Err(format!("app-{i}'s calls ran on {} server threads", seen.len()).into());
        }
    }
    // Our last handles gone, the connection closes and the child exits.
    drop((probe, init));
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("the child exited with {status}").into());
    }
    Ok(())
}
