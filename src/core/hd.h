// CALDERA_HD marks inline functions usable from host and device code (CUDA kernels include core
// headers that use it); it expands to nothing in plain C++ translation units.
#pragma once

#if defined(__CUDACC__)
#define CALDERA_HD __host__ __device__
#else
#define CALDERA_HD
#endif
