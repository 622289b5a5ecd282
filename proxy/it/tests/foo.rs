//! libmultiprocess's type zoo (`foo.capnp`) between two Rust processes:
//! every method and type of `FooInterface`, served by `foo-child`.

use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mp_testkit::children::Registration;
use mp_testkit::watchdog::guard;
use multiprocess_proxy_tests::foo::{
    ExtendedCallback, FooCallback, FooCustom, FooEmpty, FooFn, FooInterface, FooMessage,
    FooMutable, FooStruct,
};
use multiprocess_proxy_tests::foo_init::FooInit;

const BOUND: Duration = Duration::from_secs(60);

struct Peer {
    child: Child,
    zoo: Option<Arc<dyn FooInterface>>,
    _registration: Registration,
}

impl Peer {
    fn spawn() -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_foo-child"));
        let (child, init) =
            multiprocess::spawn::<dyn FooInit>(&mut command).expect("spawn foo-child");
        let registration = mp_testkit::children::register(child.id(), "foo-child");
        let zoo = init.make_foo().expect("makeFoo");
        Self {
            child,
            zoo: Some(zoo),
            _registration: registration,
        }
    }

    fn zoo(&self) -> &Arc<dyn FooInterface> {
        self.zoo.as_ref().expect("zoo is there until hang_up")
    }

    fn hang_up(mut self) {
        self.zoo = None;
        let status = self.child.wait().expect("wait for foo-child");
        assert!(status.success(), "foo-child exited with {status}");
    }
}

fn a_foo_struct() -> FooStruct {
    FooStruct {
        name: "name".into(),
        set_int: vec![2, 1],
        vector_bool: vec![false, true, false],
        optional_int: Some(-7),
        unordered_set_int: vec![],
        map_string_int: [("a".to_string(), 1), ("b".to_string(), i32::MIN)].into(),
    }
}

#[test]
fn every_value_method_round_trips() {
    guard("every_value_method_round_trips", BOUND, || {
        let peer = Peer::spawn();
        let zoo = peer.zoo();
        assert_eq!(zoo.add(1, 2).expect("add"), 3);
        assert_eq!(zoo.add_out(3, 4).expect("addOut"), 7);
        assert_eq!(zoo.add_in_out(3, 4).expect("addInOut"), 7);
        // List(Pair(Text, Text)) and List(StringIntPair), mapped (by the
        // build) to BTreeMaps as libmultiprocess maps them to std::maps.
        let map = [
            ("k1".to_string(), "v1".to_string()),
            ("k2".to_string(), "v2".to_string()),
        ]
        .into();
        assert_eq!(zoo.map_size(&map).expect("mapSize"), 2);
        assert_eq!(
            zoo.map_size(&Default::default()).expect("mapSize of none"),
            0
        );
        let arg = a_foo_struct();
        assert_eq!(zoo.pass(&arg).expect("pass"), arg);
        let empty = FooStruct::default();
        assert_eq!(
            zoo.pass(&empty).expect("pass default"),
            empty,
            "None and empty lists survive"
        );
        assert_eq!(
            zoo.raise(&arg).expect("raise"),
            Err(arg.clone()),
            "the exception field"
        );
        let custom = FooCustom {
            v1: "v1".into(),
            v2: 5,
        };
        assert_eq!(zoo.pass_custom(&custom).expect("passCustom"), custom);
        assert_eq!(
            zoo.pass_empty(&FooEmpty {}).expect("passEmpty"),
            FooEmpty {}
        );
        let message = zoo
            .pass_message(&FooMessage {
                message: "init".into(),
            })
            .expect("passMessage");
        assert_eq!(message.message, "init call");
        let mutable = zoo
            .pass_mutable(&FooMutable {
                message: "init".into(),
            })
            .expect("passMutable");
        assert_eq!(mutable.message, "init call");
        assert_eq!(zoo.pass_enum(2).expect("passEnum"), 2);
        for x in [0.0, -0.0, 1.5, f64::MAX, f64::MIN_POSITIVE, f64::INFINITY] {
            let back = zoo.pass_double(x).expect("passDouble");
            assert_eq!(back.to_bits(), x.to_bits(), "{x}");
        }
        assert!(zoo.pass_double(f64::NAN).expect("passDouble NaN").is_nan());
        let data = vec![vec![], vec![1, 2, 3], vec![0; 1000]];
        assert_eq!(
            zoo.pass_data_pointers(&data).expect("passDataPointers"),
            data
        );
        assert_eq!(
            zoo.pass_data_pointers(&[]).expect("passDataPointers empty"),
            Vec::<Vec<u8>>::new()
        );
        peer.hang_up();
    })
}

/// A `FooCallback` of the test process that records where it ran and
/// where it was dropped.
/// Where a recorder ran, or was dropped.
type Threads = Arc<Mutex<Vec<std::thread::ThreadId>>>;

struct Recorder {
    offset: i32,
    ran_on: Threads,
    dropped_on: Threads,
    /// Told when the recorder is dropped, for a test to wait on.
    drop_signal: Option<std::sync::mpsc::Sender<()>>, // sync-facade: allow (test plumbing)
}

impl Recorder {
    fn new(offset: i32) -> (Self, Threads, Threads) {
        let (ran_on, dropped_on) = (Arc::default(), Arc::default());
        let recorder = Self {
            offset,
            ran_on: Arc::clone(&ran_on),
            dropped_on: Arc::clone(&dropped_on),
            drop_signal: None,
        };
        (recorder, ran_on, dropped_on)
    }
}

impl FooCallback for Recorder {
    fn call(&self, arg: i32) -> multiprocess::Result<i32> {
        self.ran_on
            .lock()
            .expect("ran_on")
            .push(std::thread::current().id());
        Ok(arg + self.offset)
    }
}

impl ExtendedCallback for Recorder {
    fn call_extended(&self, arg: i32) -> multiprocess::Result<i32> {
        self.ran_on
            .lock()
            .expect("ran_on")
            .push(std::thread::current().id());
        Ok(arg * self.offset)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.dropped_on
            .lock()
            .expect("dropped_on")
            .push(std::thread::current().id());
        if let Some(signal) = self.drop_signal.take() {
            let _ = signal.send(());
        }
    }
}

#[test]
fn callbacks_run_on_the_calling_thread_and_are_destroyed_there() {
    guard("callbacks_run_on_the_calling_thread", BOUND, || {
        let peer = Peer::spawn();
        let zoo = peer.zoo();
        let me = std::thread::current().id();
        let (recorder, ran_on, dropped_on) = Recorder::new(10);
        let callback: Arc<dyn FooCallback> = Arc::new(recorder);
        assert_eq!(zoo.callback(callback.clone(), 1).expect("callback"), 11);
        assert_eq!(
            zoo.callback_unique(callback.clone(), 2)
                .expect("callbackUnique"),
            12
        );
        assert_eq!(
            zoo.callback_shared(callback.clone(), 3)
                .expect("callbackShared"),
            13
        );
        assert_eq!(*ran_on.lock().expect("ran_on"), vec![me; 3]);
        // Saved, then called later: still on this thread, which is waiting
        // for callbackSaved.
        zoo.save_callback(callback.clone()).expect("saveCallback");
        assert_eq!(zoo.callback_saved(5).expect("callbackSaved"), 15);
        assert_eq!(ran_on.lock().expect("ran_on").len(), 4);
        // Replacing it releases the child's handle: its `destroy` runs here,
        // but our Arc keeps the object alive until we drop ours too.
        let (mut other, _, other_dropped) = Recorder::new(100);
        let (dropped_tx, dropped_rx) = std::sync::mpsc::channel(); // sync-facade: allow (test plumbing)
        other.drop_signal = Some(dropped_tx);
        zoo.save_callback(Arc::new(other))
            .expect("saveCallback again");
        assert_eq!(zoo.callback_saved(5).expect("callbackSaved"), 105);
        assert!(
            dropped_on.lock().expect("dropped_on").is_empty(),
            "we still hold it"
        );
        drop(callback);
        assert_eq!(
            *dropped_on.lock().expect("dropped_on"),
            vec![me],
            "ours went with our last handle"
        );
        // An extended callback: its own method, and the one it inherits.
        let (extended, ext_ran, _) = Recorder::new(3);
        let extended: Arc<dyn ExtendedCallback> = Arc::new(extended);
        assert_eq!(
            zoo.callback_extended(extended.clone(), 7)
                .expect("callbackExtended"),
            21
        );
        let upcast: Arc<dyn FooCallback> = extended;
        assert_eq!(
            zoo.callback(upcast, 7).expect("callback through the base"),
            10
        );
        assert_eq!(ext_ran.lock().expect("ext_ran").len(), 2);
        // The child drops the saved callback when the connection closes;
        // its destroy cannot reach us then, and our object is dropped here,
        // once our side has seen the connection close.
        peer.hang_up();
        dropped_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the saved callback is released at disconnect");
        assert_eq!(
            other_dropped.lock().expect("other_dropped").len(),
            1,
            "released at disconnect"
        );
    })
}

#[test]
fn closures_run_here_and_contextless_methods_call_them_from_a_pool_thread() {
    guard("closures_and_contextless_methods", BOUND, || {
        let peer = Peer::spawn();
        let zoo = peer.zoo();
        let me = std::thread::current().id();
        let ran_on = Arc::new(Mutex::new(Vec::new()));
        let log = ran_on.clone();
        let f: FooFn = Arc::new(move || {
            log.lock().expect("log").push((
                std::thread::current().id(),
                std::thread::current().name().map(String::from),
            ));
            Ok(42)
        });
        assert_eq!(zoo.pass_fn(f).expect("passFn"), 42);
        assert_eq!(
            ran_on.lock().expect("log")[0].0,
            me,
            "called while we wait: on this thread"
        );
        // callFn has no Context: the child runs it on a pool thread, which
        // serves no call of ours, so our closure runs on a worker we make
        // for that thread.
        zoo.call_fn().expect("callFn");
        let (thread, name) = ran_on.lock().expect("log")[1].clone();
        assert_ne!(thread, me);
        assert!(
            name.as_deref().is_some_and(|n| n.starts_with("mp-worker")),
            "{name:?}"
        );
        zoo.call_fn_async().expect("callFnAsync");
        assert_eq!(zoo.call_int_fn_async(1).expect("callIntFnAsync"), 43);
        assert_eq!(ran_on.lock().expect("log").len(), 4);
        peer.hang_up();
    })
}

#[test]
fn the_local_implementation_behaves_as_the_remote_one() {
    let local: Arc<dyn FooInterface> =
        Arc::new(multiprocess_proxy_tests::foo_impl::FooImpl::default());
    let arg = a_foo_struct();
    assert_eq!(local.pass(&arg).expect("pass"), arg);
    assert_eq!(local.raise(&arg).expect("raise"), Err(arg));
    assert!(matches!(
        local.callback_saved(1),
        Err(multiprocess::Error::Failed(_))
    ));
}
