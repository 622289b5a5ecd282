// cppbench: libmultiprocess's latency between two processes, measured the way
// `mpbench capnp,call,callback,nested --json` (the stress crate) measures the
// Rust runtime.
//
//   cppbench [capnp,call,callback,callback-nodestroy,nested] [--calls N] [--warmup N] [--round N]
//   cppbench --child FD          (the child process, serving over FD)
//
// Scenarios (each against its own child, spawned over a socketpair):
//   cpp-capnp   Bench.ping on the raw capnp client, made on the parent's event-loop
//               thread (inside EventLoop::sync) and answered on the child's.
//   cpp-call    the generated proxy's blocking Bench.add(i, 1) with a Context, made
//               from the main thread and run on the child's worker thread for it.
//   cpp-callback
//               Bench.callFn(f, i) with a fresh std::function f per call; the
//               child's worker calls f(i) back once, which runs on the main thread
//               (blocked in its call). f's interface has `destroy`, so letting go
//               of it is one more round trip to the main thread.
//   cpp-callback-nodestroy
//               the same through Bench.callFnNoDestroy, whose function interface
//               has no `destroy`.
//   cpp-nested  Bench.recurse(f, 8): f(n) calls recurse(f', n - 1) back on the
//               same connection, down to 0; one sample is a whole tree divided
//               by its 9 levels (recurse calls, from depth 8 to 0).
// Calls run in interleaved rounds (warm-up too). Per scenario one JSON line:
// nearest-rank median and p99, calls per second of the rounds' wall time, and
// per call the context switches of every thread of both processes and the CPU
// time (user plus system) of both processes.

#include <bench.capnp.h>
#include <bench.capnp.proxy.h>

#include <kj/async.h>
#include <kj/exception.h>
#include <mp/proxy-io.h>
#include <mp/util.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace cppbench {
namespace {

using Clock = std::chrono::steady_clock;
using Nanos = std::chrono::nanoseconds;

// ---- The child's implementation --------------------------------------------

class BenchImpl : public Bench
{
public:
    int add(int a, int b) override { return a + b; }
    void ping(uint64_t&) override {} // Sends the value back unchanged.
    int callFn(std::function<int(int)> fn, int arg) override { return fn(arg); }
    int callFnNoDestroy(std::function<int(int)> fn, int arg) override { return fn(arg); }
    int recurse(std::function<int(int)> fn, int depth) override { return fn(depth); }
};

class InitImpl : public Init
{
public:
    std::unique_ptr<Bench> makeBench() override { return std::make_unique<BenchImpl>(); }
};

// Only warnings and errors: libmultiprocess formats a message per call at the
// Debug and Trace levels, which is not part of what we measure.
mp::LogOptions LogOptions()
{
    mp::LogOptions options;
    options.log_level = mp::Log::Warning;
    options.log_fn = [](mp::LogMessage message) {
        if (message.level == mp::Log::Raise) throw std::runtime_error(message.message);
        std::cerr << "cppbench[" << getpid() << "]: " << message.message << '\n';
    };
    return options;
}

int ChildMain(const std::string& fd)
{
    mp::SocketId socket{mp::StartSpawned(fd)};
    mp::EventLoop loop("cppbench-child", LogOptions());
    InitImpl init;
    mp::ServeStream<messages::InitInterface>(loop, mp::MakeStream(loop, socket), init);
    loop.loop(); // Returns once the parent has disconnected.
    return 0;
}

// ---- Context switches --------------------------------------------------------

// Voluntary plus involuntary context switches so far of every live thread of `pid`.
uint64_t ProcessSwitches(pid_t pid)
{
    uint64_t total = 0;
    const std::filesystem::path tasks{"/proc/" + std::to_string(pid) + "/task"};
    for (const auto& task : std::filesystem::directory_iterator{tasks}) {
        std::ifstream status{task.path() / "status"};
        if (!status) continue; // The thread exited after being listed.
        std::string line;
        while (std::getline(status, line)) {
            for (const char* key : {"voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"}) {
                if (line.rfind(key, 0) == 0) total += std::stoull(line.substr(std::strlen(key)));
            }
        }
    }
    return total;
}

// ---- CPU time ----------------------------------------------------------------

// User plus system CPU time so far of every thread of `pid`, live or exited, in
// microseconds: from getrusage(RUSAGE_SELF) for this process (to the
// microsecond), from utime and stime of /proc/PID/stat for another (in clock
// ticks, usually 10 ms). As stress/src/cpu.rs reads it; nullopt if unreadable.
std::optional<uint64_t> ProcessCpuMicros(pid_t pid)
{
    if (pid == getpid()) {
        rusage usage{};
        if (getrusage(RUSAGE_SELF, &usage) != 0) return std::nullopt;
        auto micros = [](const timeval& t) {
            return static_cast<uint64_t>(t.tv_sec) * 1000000 + static_cast<uint64_t>(t.tv_usec);
        };
        return micros(usage.ru_utime) + micros(usage.ru_stime);
    }
    std::ifstream file{"/proc/" + std::to_string(pid) + "/stat"};
    std::string text;
    if (!file || !std::getline(file, text)) return std::nullopt;
    // The command name (field 2) is in parentheses and may hold spaces and
    // parentheses: count from the last ')'. Field 3 (state) follows it;
    // utime and stime are fields 14 and 15.
    const size_t paren{text.rfind(')')};
    if (paren == std::string::npos) return std::nullopt;
    std::istringstream fields{text.substr(paren + 1)};
    std::string skipped;
    for (int i = 0; i < 11; ++i) {
        if (!(fields >> skipped)) return std::nullopt;
    }
    uint64_t utime{0}, stime{0};
    if (!(fields >> utime >> stime)) return std::nullopt;
    const long ticks_per_second{sysconf(_SC_CLK_TCK)};
    if (ticks_per_second <= 0) return std::nullopt;
    return (utime + stime) * 1000000 / static_cast<uint64_t>(ticks_per_second);
}

// ---- The parent's side of one child ------------------------------------------

std::string SelfExe()
{
    return std::filesystem::read_symlink("/proc/self/exe").string();
}

// An event-loop thread, a spawned child connected to it, and a Bench from the child.
class Peer
{
public:
    explicit Peer(const char* loop_name)
    {
        m_thread = std::thread([this, loop_name] {
            mp::EventLoop loop(loop_name, LogOptions());
            m_ready.set_value(&loop);
            loop.loop();
        });
        m_loop = m_ready.get_future().get();
        m_loop_ref.emplace(*m_loop);
        const std::string exe{SelfExe()};
        const auto [pid, socket] = mp::SpawnProcess([&](const mp::SpawnConnectInfo& info) {
            return std::vector<std::string>{exe, "--child", info};
        });
        m_pid = pid;
        m_init = mp::ConnectStream<messages::InitInterface>(*m_loop, mp::MakeStream(*m_loop, socket));
        m_bench = m_init->makeBench();
    }

    // Disconnects, reaps the child and stops the loop; returns the child's exit status.
    int finish()
    {
        m_bench.reset();
        m_init.reset();
        const int status{mp::WaitProcess(m_pid)};
        m_loop_ref.reset();
        m_thread.join();
        return status;
    }

    ~Peer()
    {
        if (m_thread.joinable()) finish();
    }

    Peer(const Peer&) = delete;
    Peer& operator=(const Peer&) = delete;

    mp::EventLoop& loop() { return *m_loop; }
    Bench& bench() { return *m_bench; }
    pid_t pid() const { return m_pid; }

private:
    std::promise<mp::EventLoop*> m_ready;
    std::thread m_thread;
    mp::EventLoop* m_loop{nullptr};
    std::optional<mp::EventLoopRef> m_loop_ref;
    pid_t m_pid{0};
    std::unique_ptr<mp::ProxyClient<messages::InitInterface>> m_init;
    std::unique_ptr<Bench> m_bench;
};

// ---- Scenarios ---------------------------------------------------------------

// Makes `n` calls and appends one latency per call to `samples`.
using RunFn = std::function<void(size_t n, std::vector<Nanos>& samples)>;

// cpp-call: the proxy's blocking call from this (the main) thread.
RunFn CallScenario(Peer& peer)
{
    return [&bench = peer.bench(), seq = 0](size_t n, std::vector<Nanos>& samples) mutable {
        for (size_t i = 0; i < n; ++i) {
            ++seq;
            const auto start{Clock::now()};
            const int sum{bench.add(seq, 1)};
            samples.push_back(Clock::now() - start);
            if (sum != seq + 1) throw std::runtime_error("add: wrong result " + std::to_string(sum));
        }
    };
}

// cpp-capnp: the whole batch runs on the loop thread, one ping after the other,
// each waited for on the kj event loop and timed from building the request to
// reading the response.
RunFn CapnpScenario(Peer& peer)
{
    auto& proxy{dynamic_cast<mp::ProxyClient<messages::BenchInterface>&>(peer.bench())};
    return [&loop = peer.loop(), &client = proxy.m_client, seq = uint64_t{0}](
               size_t n, std::vector<Nanos>& samples) mutable {
        std::string error;
        loop.sync([&] {
            try {
                auto& wait_scope{loop.m_io_context.waitScope};
                for (size_t i = 0; i < n; ++i) {
                    ++seq;
                    const auto start{Clock::now()};
                    auto request{client.pingRequest()};
                    request.setValue(seq);
                    auto response{request.send().wait(wait_scope)};
                    const uint64_t got{response.getValue()};
                    samples.push_back(Clock::now() - start);
                    if (got != seq) throw std::runtime_error("ping: wrong reply " + std::to_string(got));
                }
            } catch (const kj::Exception& e) {
                error = kj::str(e).cStr();
            } catch (const std::exception& e) {
                error = e.what();
            }
        });
        if (!error.empty()) throw std::runtime_error(error);
    };
}

// cpp-callback and cpp-callback-nodestroy: a fresh std::function per call,
// which the child calls back once. The closure runs on this thread while it
// is blocked in its call.
RunFn CallbackScenario(Peer& peer, bool destroy)
{
    return [&bench = peer.bench(), destroy, seq = 0](size_t n, std::vector<Nanos>& samples) mutable {
        for (size_t i = 0; i < n; ++i) {
            ++seq;
            const auto start{Clock::now()};
            const int result{destroy ? bench.callFn([](int x) { return x * 2; }, seq)
                                     : bench.callFnNoDestroy([](int x) { return x * 2; }, seq)};
            samples.push_back(Clock::now() - start);
            if (result != seq * 2) throw std::runtime_error("callFn: wrong result " + std::to_string(result));
        }
    };
}

// Levels per cpp-nested tree, as mpbench's `nested`.
constexpr int NESTED_DEPTH{8};
// Levels per tree: recurse calls (each with its callback) from depth
// NESTED_DEPTH down to 0, as mpbench's `nested::LEVELS`.
constexpr int NESTED_LEVELS{NESTED_DEPTH + 1};

// f(n) for cpp-nested: calls recurse(f', n - 1) through the child, with a fresh
// f', or stops at 0. An error is kept in `error` (the first one) and turns the
// result into INT_MIN, so the tree's check fails with it.
std::function<int(int)> Level(Bench& bench, std::string& error)
{
    return [&bench, &error](int n) -> int {
        if (n == 0) return 0;
        try {
            return bench.recurse(Level(bench, error), n - 1) + 1;
        } catch (const std::exception& e) {
            if (error.empty()) error = e.what();
            return INT_MIN;
        }
    };
}

// cpp-nested: one recursion tree NESTED_DEPTH deep per sample, timed whole
// and divided by its NESTED_LEVELS levels.
RunFn NestedScenario(Peer& peer)
{
    return [&bench = peer.bench()](size_t n, std::vector<Nanos>& samples) {
        std::string error;
        for (size_t i = 0; i < n; ++i) {
            const auto start{Clock::now()};
            const int result{bench.recurse(Level(bench, error), NESTED_DEPTH)};
            samples.push_back((Clock::now() - start) / NESTED_LEVELS);
            if (!error.empty()) throw std::runtime_error("recurse: " + error);
            if (result != NESTED_DEPTH) throw std::runtime_error("recurse: wrong result " + std::to_string(result));
        }
    };
}

struct Run {
    std::string name;
    std::unique_ptr<Peer> peer;
    RunFn run;
    std::vector<Nanos> samples;
    Nanos wall{0};
    uint64_t switches{0};
    //! CPU time of both processes over the measured calls; nullopt once a reading failed.
    std::optional<uint64_t> cpu_micros{0};

    uint64_t Switches() const { return ProcessSwitches(getpid()) + ProcessSwitches(peer->pid()); }

    std::optional<uint64_t> CpuMicros() const
    {
        const auto self{ProcessCpuMicros(getpid())};
        const auto child{ProcessCpuMicros(peer->pid())};
        if (!self || !child) return std::nullopt;
        return *self + *child;
    }

    void Measure(size_t n)
    {
        const uint64_t before{Switches()};
        const auto cpu_before{CpuMicros()};
        const auto start{Clock::now()};
        run(n, samples);
        wall += Clock::now() - start;
        const auto cpu_after{CpuMicros()};
        switches += Switches() - before;
        if (cpu_micros && cpu_before && cpu_after) {
            *cpu_micros += *cpu_after > *cpu_before ? *cpu_after - *cpu_before : 0;
        } else {
            cpu_micros.reset();
        }
    }
};

// Nearest rank: the sample at rank ceil(pct/100 * n), 1-based, of sorted samples.
double PercentileMicros(const std::vector<Nanos>& sorted, size_t pct)
{
    const size_t rank{std::max<size_t>((pct * sorted.size() + 99) / 100, 1)};
    return std::chrono::duration<double, std::micro>(sorted[rank - 1]).count();
}

std::string Json(Run& run)
{
    std::sort(run.samples.begin(), run.samples.end());
    const double calls{static_cast<double>(run.samples.size())};
    char cpu[32] = "null";
    if (run.cpu_micros) std::snprintf(cpu, sizeof(cpu), "%.3f", static_cast<double>(*run.cpu_micros) / calls);
    char line[512];
    std::snprintf(line, sizeof(line),
        "{\"scenario\": \"%s\", \"calls\": %zu, \"threads\": 1, \"median_us\": %.3f, \"p99_us\": %.3f, "
        "\"calls_per_s\": %.1f, \"ctx_switches_per_call\": %.3f, \"cpu_us_per_call\": %s}",
        run.name.c_str(), run.samples.size(), PercentileMicros(run.samples, 50),
        PercentileMicros(run.samples, 99), calls / std::chrono::duration<double>(run.wall).count(),
        static_cast<double>(run.switches) / calls, cpu);
    return line;
}

struct Options {
    bool capnp{true};
    bool call{true};
    bool callback{true};
    bool callback_nodestroy{true};
    bool nested{true};
    size_t calls{20000};
    size_t warmup{2000};
    size_t round{2000};
};

Options ParseArgs(const std::vector<std::string>& args)
{
    Options options;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& arg{args[i]};
        auto number = [&]() -> size_t {
            if (i + 1 == args.size()) throw std::invalid_argument(arg + " needs a number");
            return std::stoul(args[++i]);
        };
        if (arg == "--calls") {
            options.calls = number();
        } else if (arg == "--warmup") {
            options.warmup = number();
        } else if (arg == "--round") {
            options.round = number();
        } else if (!arg.empty() && arg[0] != '-') {
            options.capnp = options.call = options.callback = options.callback_nodestroy = options.nested = false;
            std::stringstream names{arg};
            for (std::string name; std::getline(names, name, ',');) {
                if (name == "capnp") options.capnp = true;
                else if (name == "call") options.call = true;
                else if (name == "callback") options.callback = true;
                else if (name == "callback-nodestroy") options.callback_nodestroy = true;
                else if (name == "nested") options.nested = true;
                else throw std::invalid_argument("unknown scenario " + name);
            }
        } else {
            throw std::invalid_argument("unknown option " + arg);
        }
    }
    if (options.calls == 0 || options.round == 0) throw std::invalid_argument("--calls and --round must be at least 1");
    return options;
}

int BenchMain(const Options& options)
{
    std::vector<Run> runs;
    if (options.capnp) {
        auto peer{std::make_unique<Peer>("cppbench-capnp")};
        RunFn run{CapnpScenario(*peer)};
        runs.push_back({"cpp-capnp", std::move(peer), std::move(run)});
    }
    if (options.call) {
        auto peer{std::make_unique<Peer>("cppbench-call")};
        RunFn run{CallScenario(*peer)};
        runs.push_back({"cpp-call", std::move(peer), std::move(run)});
    }
    if (options.callback) {
        auto peer{std::make_unique<Peer>("cppbench-callback")};
        RunFn run{CallbackScenario(*peer, /*destroy=*/true)};
        runs.push_back({"cpp-callback", std::move(peer), std::move(run)});
    }
    if (options.callback_nodestroy) {
        auto peer{std::make_unique<Peer>("cppbench-callback-nodestroy")};
        RunFn run{CallbackScenario(*peer, /*destroy=*/false)};
        runs.push_back({"cpp-callback-nodestroy", std::move(peer), std::move(run)});
    }
    if (options.nested) {
        auto peer{std::make_unique<Peer>("cppbench-nested")};
        RunFn run{NestedScenario(*peer)};
        runs.push_back({"cpp-nested", std::move(peer), std::move(run)});
    }
    // Several scenarios take turns, `round` calls each; a single one makes all its calls at once.
    const size_t round{runs.size() > 1 ? options.round : std::max(options.calls, options.warmup)};

    std::vector<Nanos> discarded;
    for (size_t done = 0; done < options.warmup; done += round) {
        for (Run& run : runs) {
            discarded.clear();
            run.run(std::min(round, options.warmup - done), discarded);
        }
    }
    for (Run& run : runs) run.samples.reserve(options.calls);
    for (size_t done = 0; done < options.calls; done += round) {
        for (Run& run : runs) run.Measure(std::min(round, options.calls - done));
    }

    int failures{0};
    for (Run& run : runs) {
        std::cout << Json(run) << std::endl;
        if (run.peer->finish() != 0) {
            std::cerr << "cppbench: the " << run.name << " child did not exit cleanly\n";
            ++failures;
        }
    }
    return failures == 0 ? 0 : 1;
}

} // namespace
} // namespace cppbench

int main(int argc, char** argv)
{
    const std::vector<std::string> args(argv + 1, argv + argc);
    try {
        if (!args.empty() && args[0] == "--child") {
            if (args.size() != 2) throw std::invalid_argument("usage: cppbench --child FD");
            return cppbench::ChildMain(args[1]);
        }
        return cppbench::BenchMain(cppbench::ParseArgs(args));
    } catch (const std::invalid_argument& e) {
        std::cerr << "cppbench: " << e.what() << "\nusage: cppbench [capnp,call,callback,callback-nodestroy,nested] [--calls N] [--warmup N] [--round N]\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "cppbench: " << e.what() << '\n';
        return 1;
    }
}
