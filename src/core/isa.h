// src/core/isa.h - which build of recur's own vector kernels runs. Internal to the library.
//
// The library is compiled for AVX2 with FMA (the portable baseline, CMakeLists.txt); the few
// loops where 16 lanes pay (the softmax rows of a large output layer, bf16 rounding, the int8 and
// bf16 generation products) are compiled a second time for AVX-512 and chosen at run time.
#pragma once

namespace recur::detail {

// True where the processor has AVX-512 F, BW and VNNI and RECUR_ISA=avx2 is not set (the switch
// that lets the tests and benchmarks run the baseline kernels on an AVX-512 machine).
bool use_avx512();

}  // namespace recur::detail
