# The seeds' architecture: a node that GUIs attach to on <datadir>/node.sock,
# and a wallet the node spawns on a socketpair (-ipcfd).
@0xe41c7a3b9d2f6058;

using Proxy = import "/mp/proxy.capnp";

interface Node $Proxy.wrap("demo::Node") {
    # What the node serves on its socket, to every GUI that connects.
    construct @0 (threadMap :Proxy.ThreadMap) -> (threadMap :Proxy.ThreadMap);
    status @1 (context :Proxy.Context) -> (height :Int32, balance :Int64, nodeThread :Text, walletThread :Text);
    # The chain's height and the wallet's balance (the node asks its
    # wallet), with the node thread that served the call and the wallet
    # thread that served the node's.
    subscribe @2 (context :Proxy.Context, tip :BlockTip) -> ();
    # Calls `tip` with the new height after every block, until it fails.
    generate @3 (context :Proxy.Context, blocks :Int32) -> (result :Int32);
    # Mines `blocks` blocks now (every subscriber is told before it
    # returns) and returns the new height.
    stop @4 (context :Proxy.Context) -> ();
    # Asks the node to shut down: it stops accepting, drains and exits.
}

interface Chain $Proxy.wrap("demo::Chain") {
    # What the node gives its wallet.
    height @0 (context :Proxy.Context) -> (result :Int32);
    handleNotifications @1 (context :Proxy.Context, tip :BlockTip) -> ();
    # Calls `tip` with the new height after every block, until it fails.
}

interface BlockTip $Proxy.wrap("ProxyCallback<std::function<void(int32_t)>>") {
    # A new block: the chain's new height.
    call @0 (context :Proxy.Context, height :Int32) -> ();
}

interface WalletInit $Proxy.wrap("demo::WalletInit") {
    # What the wallet process serves to the node that spawned it.
    construct @0 (threadMap :Proxy.ThreadMap) -> (threadMap :Proxy.ThreadMap);
    makeWallet @1 (context :Proxy.Context, chain :Chain) -> (result :Wallet);
    # A wallet following `chain`: it subscribes to its blocks and is paid
    # the reward of each.
}

interface Wallet $Proxy.wrap("demo::Wallet") {
    destroy @0 (context :Proxy.Context) -> ();
    balance @1 (context :Proxy.Context) -> (balance :Int64, thread :Text);
    # The balance, with the wallet thread that served the call.
}
