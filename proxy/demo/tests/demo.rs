//! The seeds' architecture with the real binaries (issue 15, item 5): GUIs
//! attach to a node at once and see the same chain; a GUI killed leaves the
//! node and its wallet serving; a node killed makes its wallet and every
//! GUI say so and exit with 0 (the documented outcome); `demo` runs the
//! whole set and shuts it down cleanly.

use std::time::Duration;

use mp_testkit::line_process::{LineProcess, TempDir};
use mp_testkit::watchdog::guard;
use multiprocess::Address;
use multiprocess_demo::REWARD;
use multiprocess_demo::demo::Node;

const BOUND: Duration = Duration::from_secs(90);

/// A data directory of its own for one test, removed when dropped.
fn temp_dir(label: &str) -> TempDir {
    TempDir::new("mp-demo", label)
}

/// The `-datadir=` argument for `dir`.
fn datadir(dir: &TempDir) -> String {
    format!("-datadir={}", dir.path().display())
}

/// A node with its wallet, mining only when asked (`-blocktime=0`).
fn start_node(dir: &TempDir) -> (LineProcess, u32, Address) {
    let mut node = LineProcess::start(
        env!("CARGO_BIN_EXE_node"),
        &[datadir(dir), "-blocktime=0".into()],
    );
    let wallet: u32 = node.until("node: wallet pid ").parse().expect("a pid");
    let address: Address = node
        .until("node: listening ")
        .parse()
        .expect("the node's address");
    assert_eq!(
        address,
        Address::parse("unix", dir.path(), "node").expect("address"),
        "the node listens on <datadir>/node.sock"
    );
    (node, wallet, address)
}

/// A GUI on `dir`'s node, connected: returns it with the height and
/// balance it first showed.
fn start_gui(dir: &TempDir) -> (LineProcess, i32, i64) {
    let mut gui = LineProcess::start(env!("CARGO_BIN_EXE_gui"), &[datadir(dir)]);
    let shown = gui.until("gui: connected to ");
    (gui, height_in(&shown), balance_in(&shown))
}

fn height_in(line: &str) -> i32 {
    let rest = line.split_once("height ").expect("a height").1;
    rest.split_whitespace()
        .next()
        .and_then(|h| h.parse().ok())
        .expect("a number")
}

fn balance_in(line: &str) -> i64 {
    let rest = line.split_once("balance ").expect("a balance").1;
    rest.split_whitespace()
        .next()
        .and_then(|b| b.parse().ok())
        .expect("a number")
}

/// Asks `gui` for the status: (height, balance).
fn status(gui: &mut LineProcess) -> (i32, i64) {
    gui.send("status");
    let line = gui.until("gui: height ");
    let line = format!("height {line}");
    (height_in(&line), balance_in(&line))
}

/// Whether process `pid` still runs (it exists and is no zombie).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

#[test]
fn guis_attached_at_once_see_the_same_chain() {
    guard("guis_attached_at_once_see_the_same_chain", BOUND, || {
        let dir = temp_dir("same");
        let (mut node, _wallet, _) = start_node(&dir);
        let (mut one, h1, b1) = start_gui(&dir);
        let (mut two, h2, b2) = start_gui(&dir);
        assert_eq!((h1, b1, h2, b2), (0, 0, 0, 0));

        // The node tells every subscriber of a block before `generate`
        // returns: once the first GUI has mined, both see the new chain.
        one.send("mine 3");
        assert_eq!(one.until("gui: mined, height "), "3");
        for gui in [&mut one, &mut two] {
            assert_eq!(status(gui), (3, 3 * REWARD), "every GUI sees the same");
        }
        // The second GUI was told of each block, in order.
        two.send("mine 1");
        assert_eq!(two.until("gui: mined, height "), "4");
        one.send("status");
        let mut told = Vec::new();
        while let Some(line) = one.next_line() {
            if line.starts_with("gui: height ") {
                break;
            }
            told.push(line);
        }
        assert_eq!(
            told.last().map(String::as_str),
            Some("gui: block 4"),
            "{told:?}"
        );

        // Each GUI's application threads are served by node workers of
        // their own.
        one.send("threads 2");
        let a = one.until("gui: thread ");
        let b = one.until("gui: thread ");
        two.send("threads 2");
        let c = two.until("gui: thread ");
        let _d = two.until("gui: thread ");
        let node_threads: Vec<&str> = [&a, &b, &c]
            .iter()
            .map(|l| {
                l.split_once(" -> node ")
                    .and_then(|(_, r)| r.split_once(" -> wallet "))
                    .map(|(n, _)| n)
                    .expect("node thread")
            })
            .collect();
        assert!(
            node_threads.iter().all(|n| n.contains("/worker-")),
            "{node_threads:?}"
        );
        assert_ne!(node_threads[0], node_threads[1]);
        assert_ne!(node_threads[0], node_threads[2]);
        assert_ne!(node_threads[1], node_threads[2]);

        for gui in [&mut one, &mut two] {
            gui.send("quit");
            assert_eq!(gui.until("gui: "), "bye");
            let status = gui.child().wait().expect("wait for a gui");
            assert!(status.success(), "a GUI that quits exits with 0: {status}");
        }
        // The node shuts down cleanly on SIGTERM, its wallet with it.
        // SAFETY: a signal to our own child.
        assert_eq!(unsafe { libc::kill(node.pid() as i32, libc::SIGTERM) }, 0);
        assert!(node.until("node: shutting down").contains("a signal"));
        assert!(
            node.until("wallet: ")
                .starts_with("disconnected from the node")
        );
        assert_eq!(
            node.until("node: the wallet "),
            "exited with exit status: 0"
        );
        node.until("node: stopped");
        let status = node.child().wait().expect("wait for the node");
        assert!(status.success(), "{status}");
    });
}

#[test]
fn killing_a_gui_leaves_the_node_and_wallet_serving() {
    guard(
        "killing_a_gui_leaves_the_node_and_wallet_serving",
        BOUND,
        || {
            let dir = temp_dir("kill-gui");
            let (mut node, wallet, address) = start_node(&dir);
            let (mut one, _, _) = start_gui(&dir);
            let (mut two, _, _) = start_gui(&dir);
            one.send("mine 2");
            assert_eq!(one.until("gui: mined, height "), "2");

            two.child().kill().expect("SIGKILL a gui");
            two.child().wait().expect("reap it");
            // The next block finds its subscription dead and drops it; the
            // node, its wallet and the other GUI carry on.
            one.send("mine 1");
            assert_eq!(one.until("gui: mined, height "), "3");
            node.until("node: a subscriber went away at block 3");
            assert_eq!(status(&mut one), (3, 3 * REWARD));
            assert!(running(node.pid()) && running(wallet));
            // A new GUI attaches as before.
            let (mut three, h, b) = start_gui(&dir);
            assert_eq!((h, b), (3, 3 * REWARD));
            // So does this process, on the same socket.
            let (_connection, remote) =
                multiprocess::connect_to::<dyn Node>(&address).expect("connect to the node");
            let status = remote.status().expect("the node answers");
            assert_eq!((status.height, status.balance), (3, 3 * REWARD));
            assert!(status.wallet_thread.contains("/worker-"), "{status:?}");
            drop(remote);

            // Asked to stop by a GUI, the node drains: the GUIs are told.
            three.send("stop");
            assert_eq!(three.until("gui: asked the node to stop"), "");
            for gui in [&mut one, &mut three] {
                assert!(
                    gui.until("gui: disconnected from the node")
                        .contains("exiting")
                );
                let status = gui.child().wait().expect("wait for a gui");
                assert!(status.success(), "{status}");
            }
            node.until("node: stopped");
            assert!(node.child().wait().expect("wait for the node").success());
        },
    );
}

/// Makes this process the reaper of orphaned descendants, so that the
/// wallet, orphaned when its node is killed, can be waited for here.
fn become_subreaper() {
    // SAFETY: prctl with these arguments only sets a flag of this process.
    let set = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(set, 0, "PR_SET_CHILD_SUBREAPER");
}

/// Waits for the process `pid` (a child, or an orphan we reap) to exit and
/// returns its wait status (blocks: under the test's watchdog).
fn wait_pid(pid: u32) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: waits for one process; `status` is ours.
        let got = unsafe { libc::waitpid(pid as i32, &mut status, 0) };
        if got == pid as i32 {
            return status;
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::Interrupted,
            "waitpid {pid}: {e}"
        );
    }
}

#[test]
fn killing_the_node_makes_the_wallet_and_every_gui_exit_cleanly() {
    guard("killing_the_node", BOUND, || {
        become_subreaper();
        let dir = temp_dir("kill-node");
        let (mut node, wallet, _) = start_node(&dir);
        let _wallet_registration = mp_testkit::children::register(wallet, "wallet");
        let (mut one, _, _) = start_gui(&dir);
        let (mut two, _, _) = start_gui(&dir);
        one.send("mine 1");
        assert_eq!(one.until("gui: mined, height "), "1");
        assert_eq!(status(&mut two), (1, REWARD));

        node.child().kill().expect("SIGKILL the node");
        node.child().wait().expect("reap the node");
        // Every GUI says so and exits with 0.
        for gui in [&mut one, &mut two] {
            let said = gui.until("gui: disconnected from the node (");
            assert!(said.ends_with("); exiting"), "{said}");
            let status = gui.child().wait().expect("wait for a gui");
            assert_eq!(status.code(), Some(0), "{status}");
        }
        // So does the wallet, on the stdout it shares with the node.
        let said = node.until("wallet: disconnected from the node (");
        assert!(said.ends_with("); exiting"), "{said}");
        let status = wait_pid(wallet);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the wallet's wait status is {status:#x}"
        );
        assert_eq!(node.next_line(), None, "nothing else printed");
    });
}

#[test]
fn the_demo_runs_the_whole_set_and_shuts_it_down() {
    guard("the_demo_runs_the_whole_set", BOUND, || {
        let mut demo = LineProcess::start::<&str>(env!("CARGO_BIN_EXE_demo"), &[]);
        let mut all = Vec::new();
        while let Some(line) = demo.next_line() {
            all.push(line);
        }
        let status = demo.child().wait().expect("wait for the demo");
        let text = all.join("\n");
        assert!(status.success(), "the demo exited with {status}:\n{text}");
        // Two GUIs, two application threads each, each thread served by a
        // node worker of its own, itself served by a wallet worker.
        let served: Vec<&String> = all
            .iter()
            .filter(|l| l.starts_with("  ") && l.contains("gui-") && l.contains("/app-"))
            .filter(|l| !l.contains('['))
            .collect();
        assert_eq!(served.len(), 4, "{text}");
        assert_eq!(text.matches("    -> node-").count(), 4, "{text}");
        assert_eq!(text.matches("    -> wallet-").count(), 4, "{text}");
        for ending in [
            "node (pid",
            "gui 1 (pid",
            "gui 2 (pid",
            "wallet: disconnected from the node",
            "node: the wallet exited with exit status: 0",
        ] {
            assert!(text.contains(ending), "{ending}:\n{text}");
        }
        assert_eq!(
            text.matches("exited with exit status: 0").count(),
            4,
            "{text}"
        );
    });
}
