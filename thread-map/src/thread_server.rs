//! The servers behind `Thread` and `ThreadMap` capabilities.
//!
//! A `ThreadServer` stands for one thread that can run requests:
//! - a **worker** this process started for a peer's client thread
//!   (`ThreadMap.makeThread`), which it owns and ends when released;
//! - a **caller**: an application thread of this process, sent to the peer
//!   as `Context.callbackThread`, whose requests run while it waits in a call.

use std::cell::Cell;
use std::rc::Rc;

use multiprocess_event_loop::mailbox::Job;
use multiprocess_event_loop::{Error, LoopPoster, Waiter};

use crate::connection::ConnState;
use crate::names::PeerName;
use crate::proxy_capnp::{thread, thread_map};
use crate::sync::Arc;
use crate::sync::global::{AtomicUsize, Ordering};
use crate::worker::Worker;
use crate::{loop_state, names};

pub(crate) enum Target {
    Worker(Worker),
    Caller(Arc<Waiter>),
}

/// The server object behind one `Thread` capability.
pub(crate) struct ThreadServer {
    /// The thread's descriptive name: for a worker, shared with its Waiter
    /// and its thread (stored once).
    pub(crate) name: Arc<str>,
    pub(crate) conn_id: u64,
    target: Target,
    /// Requests in flight on this thread, from their arrival until both
    /// the answer is sent (or the call cancelled) and the job has run: what
    /// pool dispatch compares. Shared with the requests that count in it.
    pub(crate) depth: Arc<AtomicUsize>,
    /// The last `Context.callbackThread` a request for this thread carried.
    /// A worker serves one client thread, and an application thread is
    /// called back by the peer worker serving it, so this is almost always
    /// the same handle; keeping it saves a `Release` message (and the
    /// peer's re-export) after every call.
    callback_thread: std::cell::RefCell<Option<thread::Client>>,
    /// The peer thread that sends this thread its requests, for tracing:
    /// for a worker, the client thread named in `makeThread` (unknown for
    /// a pooled worker, which serves anyone); for a caller, the peer's
    /// worker for it, once learned.
    pub(crate) peer: PeerName,
    /// Requests received so far, for tracing. The peer thread numbers the
    /// requests it sends this thread the same way, so the `req` of a
    /// client's line and of the server's line for one request match.
    received: Cell<u64>,
}

impl ThreadServer {
    pub(crate) fn worker(name: Arc<str>, conn_id: u64, worker: Worker, peer: PeerName) -> Self {
        Self::new(name, conn_id, Target::Worker(worker), peer)
    }

    pub(crate) fn caller(
        name: Arc<str>,
        conn_id: u64,
        waiter: Arc<Waiter>,
        peer: PeerName,
    ) -> Self {
        Self::new(name, conn_id, Target::Caller(waiter), peer)
    }

    fn new(name: Arc<str>, conn_id: u64, target: Target, peer: PeerName) -> Self {
        Self {
            name,
            conn_id,
            target,
            depth: Default::default(),
            callback_thread: Default::default(),
            peer,
            received: Cell::new(0),
        }
    }

    /// Numbers a request that arrived for this thread (for tracing).
    pub(crate) fn next_request(&self) -> u64 {
        let n = self.received.get() + 1;
        self.received.set(n);
        n
    }

    /// Queues `job` to run on this thread.
    pub(crate) fn post(&self, job: Job) -> Result<(), Error> {
        let posted = match &self.target {
            Target::Worker(worker) => worker.post(job),
            Target::Caller(waiter) => waiter.post(job),
        };
        // A refused job is dropped here: what it carries that must not be
        // dropped on the loop thread takes care of itself (`OffLoop`).
        posted.map_err(|_refused| Error::InvalidThread(format!("thread {} has exited", self.name)))
    }

    /// Ends the worker behind this thread, if it owns one (the connection
    /// died: capnp-rpc may keep the server object itself alive for a while).
    pub(crate) fn shutdown(&self) {
        if let Target::Worker(worker) = &self.target {
            worker.shutdown();
        }
    }

    /// Keeps `callback` (the caller's thread handle) alive between requests.
    pub(crate) fn keep_callback_thread(&self, callback: &thread::Client) {
        use capnp::capability::FromClientHook;
        let mut kept = self.callback_thread.borrow_mut();
        let same = kept
            .as_ref()
            .is_some_and(|k| k.as_client_hook().get_ptr() == callback.as_client_hook().get_ptr());
        if !same {
            *kept = Some(callback.clone());
        }
    }

    /// How busy the thread is, for pool dispatch: its requests in flight
    /// (queued ones included, as they count from their arrival).
    pub(crate) fn load(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }
}

impl thread::Server for ThreadServer {
    async fn get_name(
        self: Rc<Self>,
        _: thread::GetNameParams,
        mut results: thread::GetNameResults,
    ) -> capnp::Result<()> {
        tracing::debug!(target: "multiprocess", method = "Thread.getName", thread = %self.name, client = %self.peer, "IPC server recv");
        results.get().set_result(&*self.name);
        tracing::debug!(target: "multiprocess", method = "Thread.getName", thread = %self.name, "IPC server send");
        Ok(())
    }
}

/// The most pooled workers one `makePool` may ask for.
const MAX_POOL: u32 = 256;

/// The server behind the `ThreadMap` a process gives its peer.
pub(crate) struct ThreadMapServer {
    pub(crate) conn_id: u64,
    pub(crate) poster: LoopPoster,
}

impl ThreadMapServer {
    /// Starts a worker for the peer: for its thread `client`, or, for
    /// `None`, one of its pool.
    fn start_worker(
        &self,
        conn: &ConnState,
        client: Option<&str>,
        label: &str,
    ) -> Result<Rc<ThreadServer>, capnp::Error> {
        let (name, os_name) = names::worker_name(label);
        let reaper = crate::worker::loop_reaper(self.poster.clone());
        let threads = Some(conn.worker_threads.clone());
        let worker = Worker::spawn(name.clone(), os_name, reaper, threads)
            .map_err(|e| capnp::Error::failed(format!("cannot start a worker thread: {e}")))?;
        let peer = client.map(PeerName::known).unwrap_or_default();
        Ok(Rc::new(ThreadServer::worker(
            name,
            self.conn_id,
            worker,
            peer,
        )))
    }

    /// Starts a worker for the peer's thread `client` (`makeThread`).
    fn start_thread_for(&self, client: &str) -> capnp::Result<Rc<ThreadServer>> {
        let conn = loop_state::with(|state| state.conn(self.conn_id))
            .ok_or_else(|| capnp::Error::disconnected("connection closed".to_string()))?;
        conn.check_worker_room(&format!("makeThread({client})"), 1)?;
        let server = self.start_worker(&conn, Some(client), client)?;
        conn.track_worker(&server);
        Ok(server)
    }

    /// Starts a pool of `count` workers, which serve requests that name no
    /// thread (`makePool`).
    fn start_pool(&self, count: u32) -> capnp::Result<()> {
        // The count comes from the peer: without a bound, one message
        // (`makePool(4294967295)`) has the loop thread start threads until
        // the OS refuses, stalling every connection meanwhile and leaving
        // the process (and its user) without threads to start.
        if count > MAX_POOL {
            return Err(capnp::Error::failed(format!(
                "makePool({count}) refused: at most {MAX_POOL} pooled workers per connection"
            )));
        }
        let Some(conn) = loop_state::with(|state| state.conn(self.conn_id)) else {
            return Err(capnp::Error::disconnected("connection closed".to_string()));
        };
        if !conn.pool.borrow().is_empty() {
            return Err(capnp::Error::failed(
                "makePool called on a connection that already has a pool".to_string(),
            ));
        }
        conn.check_worker_room(&format!("makePool({count})"), count as usize)?;
        for i in 0..count {
            let server = self.start_worker(&conn, None, &format!("pool/{i}"))?;
            conn.pool.borrow_mut().push(server);
        }
        Ok(())
    }
}

impl thread_map::Server for ThreadMapServer {
    async fn make_thread(
        self: Rc<Self>,
        params: thread_map::MakeThreadParams,
        mut results: thread_map::MakeThreadResults,
    ) -> capnp::Result<()> {
        // The name only labels the worker: cut to a bound, and kept once
        // (in the worker's name, which traces and dumps show).
        let name = multiprocess_event_loop::bounded::text_from_peer(
            params.get()?.get_name()?.as_bytes(),
            crate::names::MAX_THREAD_NAME,
        );
        tracing::debug!(target: "multiprocess", method = "ThreadMap.makeThread", client = %name, "IPC server recv");
        let server = match self.start_thread_for(&name) {
            Ok(server) => server,
            Err(e) => {
                tracing::debug!(target: "multiprocess", method = "ThreadMap.makeThread", client = %name, "IPC server send error: {}", e.extra);
                return Err(e);
            }
        };
        tracing::debug!(target: "multiprocess", method = "ThreadMap.makeThread", client = %name, thread = %server.name, "IPC server send");
        let client = loop_state::with(|state| state.add_thread(server));
        results.get().set_result(client);
        Ok(())
    }

    async fn make_pool(
        self: Rc<Self>,
        params: thread_map::MakePoolParams,
        _: thread_map::MakePoolResults,
    ) -> capnp::Result<()> {
        let count = params.get()?.get_count();
        tracing::debug!(target: "multiprocess", method = "ThreadMap.makePool", count, "IPC server recv");
        let made = self.start_pool(count);
        match &made {
            Ok(()) => {
                tracing::debug!(target: "multiprocess", method = "ThreadMap.makePool", count, "IPC server send")
            }
            Err(e) => {
                tracing::debug!(target: "multiprocess", method = "ThreadMap.makePool", count, "IPC server send error: {}", e.extra)
            }
        }
        made
    }
}
