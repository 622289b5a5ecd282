// Type conversions the mpgen-generated code for bench.capnp needs.

#ifndef CPPBENCH_BENCH_TYPES_H
#define CPPBENCH_BENCH_TYPES_H

#include <mp/type-context.h>
#include <mp/type-decay.h>
#include <mp/type-function.h>
#include <mp/type-interface.h>
#include <mp/type-number.h>
#include <mp/type-threadmap.h>

#endif // CPPBENCH_BENCH_TYPES_H
