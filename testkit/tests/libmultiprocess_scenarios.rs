//! Ports of the scenarios of libmultiprocess's own test suite
//! (`test/mp/test/test.cpp`), each named after its scenario and written
//! anew for this runtime. Each runs under a watchdog.

use std::sync::Arc;
use std::time::Duration;

use mp_testkit::peer::Server;
use mp_testkit::watchdog::guard;
use multiprocess_thread_map::Error;

mod common;
use common::{child, in_process};

const LIMIT: Duration = Duration::from_secs(60);

fn disconnected<T: std::fmt::Debug>(result: multiprocess_thread_map::Result<T>) -> bool {
    matches!(result, Err(Error::Disconnected(_)))
}

#[test]
fn call_after_client_disconnect() {
    guard("call_after_client_disconnect", LIMIT, || {
        let peer = child();
        let probe = peer.init.make_probe().expect("makeProbe");
        assert_eq!(probe.add(1, 1).expect("add"), 2);
        peer.connection.disconnect();
        assert!(
            peer.connection
                .wait_disconnected(Duration::from_secs(10))
                .is_some()
        );
        assert!(
            disconnected(probe.add(1, 1)),
            "a call after disconnect fails with Disconnected"
        );
    });
}

#[test]
fn call_after_server_disconnect() {
    guard("call_after_server_disconnect", LIMIT, || {
        let mut peer = in_process();
        let probe = peer.init.make_probe().expect("makeProbe");
        assert_eq!(probe.add(1, 1).expect("add"), 2);
        peer.kill_server();
        assert!(
            peer.connection
                .wait_disconnected(Duration::from_secs(10))
                .is_some()
        );
        assert!(disconnected(probe.add(1, 1)));
    });
}

#[test]
fn disconnect_during_a_call() {
    guard("disconnect_during_a_call", LIMIT, || {
        let peer = child();
        let probe = peer.init.make_probe().expect("makeProbe");
        assert!(
            disconnected(probe.disconnect("")),
            "the call is interrupted by the disconnect"
        );
        assert!(disconnected(probe.add(1, 1)));
    });
}

#[test]
fn disconnect_while_blocked() {
    guard("disconnect_while_blocked", LIMIT, || {
        // The server closes the connection, then keeps blocking in user code:
        // the caller is released at once; the worker ends once unblocked.
        let peer = in_process();
        let probe = peer.init.make_probe().expect("makeProbe");
        assert!(disconnected(probe.disconnect("disconnect-while-blocked")));
        mp_testkit::probe_server::open_gate("disconnect-while-blocked");
    });
}

#[test]
fn worker_destroyed_before_it_starts() {
    guard("worker_destroyed_before_it_starts", LIMIT, || {
        // A thread's first call (which pipelines makeThread) races the
        // connection closing: the call succeeds or fails with Disconnected;
        // nothing hangs, crashes or leaks.
        for _ in 0..20 {
            let peer = child();
            let probe = peer.init.make_probe().expect("makeProbe");
            let caller = {
                let probe = probe.clone();
                std::thread::spawn(move || probe.add(2, 2))
            };
            peer.connection.disconnect();
            match caller.join().expect("caller") {
                Ok(sum) => assert_eq!(sum, 4),
                Err(e) => assert!(e.is_disconnected(), "{e}"),
            }
        }
    });
}

#[test]
fn server_disconnect_racing_an_asynchronous_call() {
    guard(
        "server_disconnect_racing_an_asynchronous_call",
        LIMIT,
        || {
            for _ in 0..20 {
                let mut peer = in_process();
                let probe = peer.init.make_probe().expect("makeProbe");
                let caller = {
                    let probe = probe.clone();
                    std::thread::spawn(move || probe.add(3, 3))
                };
                peer.kill_server();
                match caller.join().expect("caller") {
                    Ok(sum) => assert_eq!(sum, 6),
                    Err(e) => assert!(e.is_disconnected(), "{e}"),
                }
            }
        },
    );
}

#[test]
fn disconnect_after_cleanup() {
    guard("disconnect_after_cleanup", LIMIT, || {
        // The call has run and its result is on its way when the server
        // disconnects: the caller gets the result or Disconnected.
        for _ in 0..20 {
            let mut peer = in_process();
            let probe = peer.init.make_probe().expect("makeProbe");
            assert_eq!(probe.add(5, 5).expect("add"), 10);
            peer.kill_server();
            match probe.add(5, 5) {
                Ok(sum) => assert_eq!(sum, 10),
                Err(e) => assert!(e.is_disconnected(), "{e}"),
            }
        }
    });
}

#[test]
fn destroy_after_peer_disconnect() {
    guard("destroy_after_peer_disconnect", LIMIT, || {
        // The server keeps our closure; we disconnect; it lets go of the
        // closure after the connection is gone, without crashing.
        let mut peer = child();
        let probe = peer.init.make_probe().expect("makeProbe");
        probe.save_fn(Some(Arc::new(Ok))).expect("saveFn");
        drop(probe);
        peer.connection.disconnect();
        assert!(
            peer.wait_server_exit(Duration::from_secs(10)),
            "the child exits"
        );
        if let Server::Child(child) = &mut peer.server {
            let status = child.wait().expect("status");
            assert!(status.success(), "the child failed: {status}");
        }
    });
}

#[test]
fn simultaneous_calls_on_one_remote_thread() {
    guard("simultaneous_calls_on_one_remote_thread", LIMIT, || {
        // Three requests sent at once to one worker run one after another,
        // in the order sent.
        let peer = child();
        let probe = peer.init.make_probe().expect("makeProbe");
        let order = peer
            .raw(&probe)
            .expect("the Probe's capability")
            .call("Probe.add x3", |client, cx| {
                let order = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
                let futures: Vec<_> = [100, 200, 300]
                    .into_iter()
                    .map(|arg| {
                        let mut request = client.add_request();
                        cx.set_context(request.get().init_context());
                        request.get().set_a(arg);
                        request.get().set_b(0);
                        let response = request.send().promise;
                        let order = order.clone();
                        async move {
                            let sum = response.await?.get()?.get_result();
                            order.borrow_mut().push(sum);
                            Ok::<_, capnp::Error>(())
                        }
                    })
                    .collect();
                async move {
                    for result in futures::future::join_all(futures).await {
                        result?;
                    }
                    Ok(order.borrow().clone())
                }
            })
            .expect("three calls");
        assert_eq!(order, vec![100, 200, 300]);
    });
}

#[test]
fn pool_dispatch() {
    guard("pool_dispatch", LIMIT, || {
        // makePool(2), then requests with no Context.thread run on the pool.
        let peer = child();
        let probe = peer.init.make_probe().expect("makeProbe");
        let names = peer
            .raw(&probe)
            .expect("the Probe's capability")
            .call("ThreadMap.makePool + Probe.whoami x3", |client, cx| {
                let map = cx.peer_thread_map().expect("the peer's ThreadMap");
                let mut pool = map.make_pool_request();
                pool.get().set_count(2);
                let pool = pool.send().promise;
                let calls: Vec<_> = (0..3)
                    .map(|_| {
                        let mut request = client.whoami_request();
                        request
                            .get()
                            .init_context()
                            .set_callback_thread(cx.callback_thread());
                        request.send().promise
                    })
                    .collect();
                let mut again = map.make_pool_request();
                again.get().set_count(1);
                let again = again.send().promise;
                async move {
                    pool.await?;
                    let mut names = Vec::new();
                    for call in calls {
                        names.push(call.await?.get()?.get_result()?.get_name()?.to_string()?);
                    }
                    let second_pool = again.await.map(|_| ()).map_err(|e| e.extra);
                    Ok((names, second_pool))
                }
            })
            .expect("pool calls");
        let (names, second_pool) = names;
        for name in &names {
            assert!(name.contains("(from pool/"), "{name} is not a pool worker");
        }
        let second = second_pool.expect_err("a second makePool is refused");
        assert!(second.contains("already has a pool"), "{second}");
    });
}

#[test]
fn no_thread_and_no_pool() {
    guard("no_thread_and_no_pool", LIMIT, || {
        let peer = child();
        let probe = peer.init.make_probe().expect("makeProbe");
        let raw = peer.raw(&probe).expect("the Probe's capability");
        let result = raw.call("Probe.add", |client, cx| {
            let mut request = client.add_request();
            request
                .get()
                .init_context()
                .set_callback_thread(cx.callback_thread());
            let response = request.send().promise;
            async move { Ok(response.await?.get()?.get_result()) }
        });
        match result {
            Err(Error::InvalidThread(message)) => {
                assert!(
                    message.contains("no thread specified and no pool configured"),
                    "{message}"
                )
            }
            other => panic!("expected InvalidThread, got {other:?}"),
        }
    });
}
