// The C++ interfaces behind bench.capnp: what the generated proxies wrap.

#ifndef CPPBENCH_BENCH_H
#define CPPBENCH_BENCH_H

#include <cstdint>
#include <functional>
#include <memory>

namespace cppbench {

class Bench
{
public:
    virtual ~Bench() = default;
    virtual int add(int a, int b) = 0;
    //! `ping (value) -> (value)`: an in/out parameter, as mpgen maps a name used both ways.
    virtual void ping(uint64_t& value) = 0;
    //! Calls `fn(arg)` once and returns its result (`fn` passed as an `IntFn`).
    virtual int callFn(std::function<int(int)> fn, int arg) = 0;
    //! The same, with `fn` passed as an `IntFnNoDestroy`.
    virtual int callFnNoDestroy(std::function<int(int)> fn, int arg) = 0;
    //! Returns `fn(depth)`; `fn` may call `recurse` again.
    virtual int recurse(std::function<int(int)> fn, int depth) = 0;
};

class Init
{
public:
    virtual ~Init() = default;
    virtual std::unique_ptr<Bench> makeBench() = 0;
};

} // namespace cppbench

#endif // CPPBENCH_BENCH_H
