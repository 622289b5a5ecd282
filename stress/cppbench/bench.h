// The C++ interfaces behind bench.capnp: what the generated proxies wrap.

#ifndef CPPBENCH_BENCH_H
#define CPPBENCH_BENCH_H

#include <cstdint>
#include <memory>

namespace cppbench {

class Bench
{
public:
    virtual ~Bench() = default;
    virtual int add(int a, int b) = 0;
    //! `ping (value) -> (value)`: an in/out parameter, as mpgen maps a name used both ways.
    virtual void ping(uint64_t& value) = 0;
};

class Init
{
public:
    virtual ~Init() = default;
    virtual std::unique_ptr<Bench> makeBench() = 0;
};

} // namespace cppbench

#endif // CPPBENCH_BENCH_H
