//! `Init`, `Echo` and `Rpc` across two processes: the node's other
//! interfaces, and its refusal of the retired `makeMiningOld2`.

mod common;

use common::{BOUND, Node, call_rpc, mock_state, rpc_ok};
use mp_testkit::watchdog::guard;
use multiprocess::Error;
use multiprocess_proxy_bitcoin::block;
use multiprocess_proxy_bitcoin::json::Value;

#[test]
fn echo_answers_with_what_it_was_sent() {
    guard("echo_answers_with_what_it_was_sent", BOUND, || {
        let node = Node::spawn();
        let echo = node.init().make_echo().expect("make_echo");
        for text in ["", "hello", "ünïcödé ₿", &"x".repeat(1 << 20)] {
            assert_eq!(echo.echo(text).expect("echo"), text);
        }
        // Several echoes at once, from several threads.
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let echo = node.init().make_echo().expect("make_echo");
                std::thread::spawn(move || echo.echo(&format!("thread {i}")))
            })
            .collect();
        for (i, thread) in threads.into_iter().enumerate() {
            let answer = thread.join().expect("no panic").expect("echo");
            assert_eq!(answer, format!("thread {i}"));
        }
        drop(echo);
        node.hang_up();
    })
}

#[test]
fn rpc_runs_json_rpc_requests() {
    guard("rpc_runs_json_rpc_requests", BOUND, || {
        let node = Node::spawn();
        let rpc = node.rpc();
        let mining = node.mining();
        assert_eq!(rpc_ok(&*rpc, "getblockcount", vec![]), Value::from(0));
        let tip = mining.get_tip().expect("get_tip").expect("tip");
        assert_eq!(
            rpc_ok(&*rpc, "getbestblockhash", vec![]),
            Value::from(block::to_display_hex(&tip.hash))
        );
        // The uri and user parameters arrive as sent.
        let reply = rpc
            .execute_rpc(r#"{"method":"mockstate","id":"x"}"#, "/wallet/w1", "alice")
            .expect("executeRpc");
        let reply = Value::parse(&reply).expect("JSON");
        let state = reply.get("result").expect("result");
        assert_eq!(state.get("uri").and_then(Value::as_str), Some("/wallet/w1"));
        assert_eq!(state.get("user").and_then(Value::as_str), Some("alice"));
        assert_eq!(reply.get("id"), Some(&Value::from("x")));

        // Failures are JSON-RPC errors, not failed calls.
        let code = |error: Value| error.get("code").and_then(Value::as_f64);
        let unknown = call_rpc(&*rpc, "stop", vec![]).expect_err("stop is not served");
        assert_eq!(code(unknown), Some(-32601.0));
        let bad =
            call_rpc(&*rpc, "sendrawtransaction", vec![Value::from("zz")]).expect_err("not hex");
        assert_eq!(code(bad), Some(-22.0));
        let reply = rpc.execute_rpc("{not json", "/", "").expect("executeRpc");
        let error = Value::parse(&reply)
            .expect("JSON")
            .get("error")
            .cloned()
            .expect("error");
        assert_eq!(code(error), Some(-32700.0));
        assert_eq!(
            mock_state(&*rpc).get("tip_waiters").and_then(Value::as_f64),
            Some(0.0)
        );
        drop((rpc, mining));
        node.hang_up();
    })
}

#[test]
fn the_retired_make_mining_is_refused() {
    guard("the_retired_make_mining_is_refused", BOUND, || {
        let node = Node::spawn();
        match node.init().make_mining_old2() {
            Err(Error::Failed(f)) => {
                assert!(f.message.contains("no longer supported"), "{f:?}");
                assert_eq!(f.method.as_deref(), Some("Init.makeMiningOld2"));
            }
            other => panic!("makeMiningOld2 answered {other:?}"),
        }
        // The connection carries on.
        assert!(node.mining().is_test_chain().expect("is_test_chain"));
        node.hang_up();
    })
}
