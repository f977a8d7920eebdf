#include <malloc.h>

/// Whether the CPU runs the AVX2, FMA and F16C instructions HalfKernels is compiled with.
static inline int jukebox_cpu_has_avx2_fma_f16c(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}
