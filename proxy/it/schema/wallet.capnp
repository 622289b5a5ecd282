# The guide's example: a wallet in another process, with a callback.
@0xd2a1c3e4f5061728;

using Proxy = import "/mp/proxy.capnp";

interface Init $Proxy.wrap("app::Init") {
    construct @0 (threadMap :Proxy.ThreadMap) -> (threadMap :Proxy.ThreadMap);
    makeWallet @1 (context :Proxy.Context, name :Text) -> (result :Wallet);
    walletsDestroyed @2 (context :Proxy.Context) -> (result :List(Text));
    # The thread names on which this process's wallets were dropped.
}

interface Wallet $Proxy.wrap("app::Wallet") {
    destroy @0 (context :Proxy.Context) -> ();
    balance @1 (context :Proxy.Context, account :Text) -> (result :Int64);
    history @2 (context :Proxy.Context, account :Text, limit :UInt32) -> (result :List(Tx));
    subscribe @3 (context :Proxy.Context, notify :Notify) -> ();
    lastTx @4 (context :Proxy.Context) -> (result :Tx, hasResult :Bool);
    pay @5 (context :Proxy.Context, tx :Tx) -> (accepted :Bool, reason :Text);
    name @6 () -> (result :Text);
    # No Context: the serving process runs it on its pool; returns the name
    # of the thread it ran on.
    passBack @7 (context :Proxy.Context, notify :Notify) -> (result :Notify);
    # Returns the closure it was given.
    compare @8 (context :Proxy.Context, other :Wallet) -> (same :Bool, otherName :Text);
    # Whether `other` is this very wallet (unwrapped to the local object).
    label @9 (context :Proxy.Context, request :Text, params :Text, results :Text, client :Text,
              cx :Text, ctx :Text, object :Text, value :Text, response :Text) -> (result :Text);
    # Joins its arguments: parameters named as the generated code's own
    # variables must not be mistaken for them.
    lookup @10 (context :Proxy.Context, txid :Data) -> (result :Tx, hasResult :Bool);
    # The transaction with this id (32 bytes: the build carries it as a
    # [u8; 32]).
    chain @11 (context :Proxy.Context, link :Link) -> (result :Link);
    # The chain of links reversed: a recursive struct, both ways.
    accounts @12 (context :Proxy.Context) -> (result :List(Account));
    # Structs that hold capabilities: every account's wallet.
    verdict @13 (context :Proxy.Context, ok :Bool) -> (result :Verdict);
    # A generic struct none of whose fields uses its parameter (as Bitcoin
    # Core's ResultVoid), unbound where it is used.
    parse @14 (context :Proxy.Context, text :Text) -> (result :Expected(Tx, Text));
    # A union (as Bitcoin Core's Expected): the Tx the text describes, or
    # why it describes none.
    mode @15 (context :Proxy.Context, set :Mode) -> (result :Mode);
    # A union with a Void member, round-tripped.
}

struct Expected(Value, Error) {
    union {
        value @0 :Value;
        error @1 :Error;
    }
}

struct Mode {
    union {
        offline @0 :Void;
        watching @1 :Text;
        spending @2 :UInt32;
    }
}

struct Verdict(Value) {
    error @0 :Text;
    hasError @1 :Bool;
}

interface Clock {
    # Methods without a Context only: the serving process runs them on its
    # pool, and its adapter never needs the connection.
    now @0 () -> (result :UInt64);
}

struct Link {
    value @0 :Int32;
    next @1 :Link;
    # The next link, or none (a null pointer).
}

struct Account {
    name @0 :Text;
    wallet @1 :Wallet;
}

interface Notify $Proxy.wrap("ProxyCallback<std::function<void(int)>>") {
    call @0 (context :Proxy.Context, height :Int32) -> ();
}

struct Tx {
    txid @0 :Data;
    amount @1 :Int64;
    memo @2 :Text;
    hasMemo @3 :Bool;
    kind @4 :Kind = receive;
}

enum Kind {
    send @0;
    receive @1;
}
