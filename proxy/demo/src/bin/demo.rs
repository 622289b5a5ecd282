//! The whole set: a node (with its wallet) and two GUIs, in four processes.
//!
//! `cargo run -p multiprocess-demo --bin demo` (add
//! `RUST_LOG=multiprocess=debug` to trace every request and response).
//!
//! Starts `node` on a fresh data directory, waits for its socket, starts
//! two `gui`s, lets a few blocks happen, prints per application thread the
//! thread that served it in the other process, then asks the node to stop:
//! it drains, the GUIs and the wallet see it go and exit. Exits with 0 if
//! every process exited with 0.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use multiprocess::Address;
use multiprocess_demo::demo::Node;
use multiprocess_demo::sibling_exe;

type DynError = Box<dyn std::error::Error>;

/// How long each step may take before the demo gives up.
const STEP: Duration = Duration::from_secs(30);
/// Blocks the demo lets happen before it looks at the threads.
const BLOCKS: i32 = 3;

/// A line one of the processes printed: which process (0 the node, i the
/// GUI i), and the line; `None` when its output ended.
type Line = (usize, Option<String>);

fn label(who: usize) -> String {
    if who == 0 {
        "node".into()
    } else {
        format!("gui {who}")
    }
}

/// Forwards `child`'s stdout, a line at a time, to `lines`.
fn forward(child: &mut Child, who: usize, lines: Sender<Line>) -> Result<(), DynError> {
    let stdout = child.stdout.take().ok_or("a child's stdout is not piped")?;
    std::thread::Builder::new()
        .name(format!("read-{who}"))
        .spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send((who, Some(line))).is_err() {
                    return;
                }
            }
            let _ = lines.send((who, None));
        })?;
    Ok(())
}

/// Prints every line that comes, until `want` accepts one (returns what
/// it made of it) or the step's time runs out.
fn until<T>(
    lines: &Receiver<Line>,
    what: &str,
    mut want: impl FnMut(usize, &str) -> Option<T>,
) -> Result<T, DynError> {
    let deadline = Instant::now() + STEP;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (who, line) = lines
            .recv_timeout(left)
            .map_err(|_| format!("no {what} within {STEP:?}"))?;
        let Some(line) = line else {
            println!("  [{}] (output ended)", label(who));
            continue;
        };
        println!("  [{}] {line}", label(who));
        if let Some(found) = want(who, &line) {
            return Ok(found);
        }
    }
}

/// Retries connecting until the node's socket answers (the node is
/// starting), with a short backoff, for at most `STEP`.
fn wait_for_node(
    address: &Address,
    node: &mut Child,
) -> Result<std::sync::Arc<dyn Node>, DynError> {
    let deadline = Instant::now() + STEP;
    let mut pause = Duration::from_millis(5);
    loop {
        match multiprocess::connect_to::<dyn Node>(address) {
            Ok((_connection, node)) => return Ok(node),
            Err(multiprocess::Error::Io { kind, .. })
                if matches!(
                    kind,
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) && Instant::now() < deadline =>
            {
                if let Some(status) = node.try_wait()? {
                    return Err(format!("the node exited with {status} before listening").into());
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(e) => return Err(format!("cannot connect to the node at {address}: {e}").into()),
        }
    }
}

/// Waits for `child` to exit, for at most `STEP`.
fn wait_exit(child: &mut Child) -> Result<ExitStatus, DynError> {
    let deadline = Instant::now() + STEP;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "process {} did not exit within {STEP:?}: killed",
                child.id()
            )
            .into());
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

struct Gui {
    child: Running,
    stdin: ChildStdin,
}

impl Gui {
    fn send(&mut self, command: &str) -> Result<(), DynError> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        Ok(())
    }
}

/// A process that is killed if the demo gives up before it exited.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The demo's data directory, removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(datadir: &Path) -> Result<bool, DynError> {
    let address = Address::parse("unix", datadir, "node")?;
    let (lines_tx, lines) = channel();
    println!("starting the node (it spawns its wallet); a block every 300 ms");
    let mut node = Running(
        Command::new(sibling_exe("node")?)
            .arg(format!("-datadir={}", datadir.display()))
            .arg("-blocktime=300")
            .stdout(Stdio::piped())
            .spawn()?,
    );
    forward(&mut node.0, 0, lines_tx.clone())?;
    let control = wait_for_node(&address, &mut node.0)?;
    let wallet_pid: u32 = until(&lines, "wallet pid", |_, line| {
        line.strip_prefix("node: wallet pid ")?.parse().ok()
    })?;

    println!("starting two GUIs on {address}");
    let mut guis = Vec::new();
    for who in 1..=2 {
        let mut child = Command::new(sibling_exe("gui")?)
            .arg(format!("-datadir={}", datadir.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        forward(&mut child, who, lines_tx.clone())?;
        let stdin = child.stdin.take().ok_or("a GUI's stdin is not piped")?;
        guis.push(Gui {
            child: Running(child),
            stdin,
        });
        until(&lines, "GUI connected", |from, line| {
            (from == who && line.starts_with("gui: connected")).then_some(())
        })?;
    }
    drop(lines_tx);

    println!("letting {BLOCKS} blocks happen");
    let mut seen = [false; 2];
    until(&lines, "blocks", |who, line| {
        let height: i32 = line.strip_prefix("gui: block ")?.parse().ok()?;
        if who >= 1 && height >= BLOCKS {
            seen[who - 1] = true;
        }
        seen.iter().all(|s| *s).then_some(())
    })?;

    println!("two application threads in each GUI ask the node for its status");
    let mut served = BTreeMap::new();
    for (i, gui) in guis.iter_mut().enumerate() {
        gui.send("threads 2")?;
        let who = i + 1;
        for _ in 0..2 {
            let (thread, rest) = until(&lines, "thread lines", |from, line| {
                let rest = line.strip_prefix("gui: thread ")?;
                let (thread, rest) = rest.split_once(" -> node ")?;
                (from == who).then(|| (thread.to_string(), rest.to_string()))
            })?;
            served.insert(thread, rest);
        }
    }

    println!("asking the node to stop: it drains, the GUIs and the wallet see it go");
    control.stop()?;
    drop(control);
    let mut ended = 0;
    let mut node_stopped = false;
    until(&lines, "every process's end", |who, line| {
        node_stopped |= line == "node: stopped";
        if who >= 1 && line.starts_with("gui: disconnected") {
            ended += 1;
        }
        (ended == 2 && node_stopped).then_some(())
    })?;
    let mut clean = true;
    let status = wait_exit(&mut node.0)?;
    println!("node (pid {}) exited with {status}", node.0.id());
    clean &= status.success();
    for (i, gui) in guis.iter_mut().enumerate() {
        let status = wait_exit(&mut gui.child.0)?;
        println!(
            "gui {} (pid {}) exited with {status}",
            i + 1,
            gui.child.0.id()
        );
        clean &= status.success();
    }
    // The node reaped its wallet and printed how it exited.
    println!("wallet (pid {wallet_pid}): see the node's line above");

    println!();
    println!("Who served whom: each application thread, the node thread that served it,");
    println!("and the wallet thread that served that node thread:");
    for (thread, rest) in &served {
        let (node_thread, wallet_thread) = rest.split_once(" -> wallet ").unwrap_or((rest, "?"));
        println!("  {thread}\n    -> {node_thread}\n    -> {wallet_thread}");
    }
    Ok(clean)
}

fn main() {
    multiprocess::install_tracing();
    let datadir =
        TempDir(std::env::temp_dir().join(format!("multiprocess-demo-{}", std::process::id())));
    let result = std::fs::create_dir_all(&datadir.0)
        .map_err(DynError::from)
        .and_then(|()| run(&datadir.0));
    drop(datadir);
    match result {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("demo: a process did not exit cleanly");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("demo: {e}");
            std::process::exit(1);
        }
    }
}
