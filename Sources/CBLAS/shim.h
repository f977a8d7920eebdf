#include <cblas.h>

/// Stops OpenBLAS's worker threads; the next threaded call starts them again. Exported by
/// OpenBLAS (its fork handler uses it) but not declared in its headers. Idle workers otherwise
/// spin in sched_yield for about 2^28 cycles after each threaded call, taking a core from
/// whatever runs next.
int blas_thread_shutdown_(void);
