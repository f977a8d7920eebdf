// Splitting large elementwise work across cores. Matrix products are threaded by OpenBLAS itself;
// this is for the loops around them. Small jobs run inline: a thread hand-off costs a few
// microseconds, more than a loop over a few thousand floats.

import Foundation
import CBLAS

/// Work splitting over the machine's cores.
public enum Parallel {
    /// Cores this process may use: the machine's, or `JUKEBOX_THREADS` when set (e.g. 1 for
    /// each of two jobs run side by side with `make -j2`).
    public static let coreCount: Int = {
        if let text = ProcessInfo.processInfo.environment["JUKEBOX_THREADS"], let n = Int(text), n >= 1 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Below this many elements of simple arithmetic, a loop runs on the calling thread.
    public static let minimumElementsPerThread = 1 << 15

    /// Calls `body` on disjoint ranges that cover `0..<count`, on several threads when the job
    /// is large enough. `grain` is the smallest range worth a thread of its own.
    @inline(__always)
    public static func forRanges(_ count: Int, grain: Int = minimumElementsPerThread,
                                 _ body: (Range<Int>) -> Void) {
        let parts = min(coreCount, count / max(grain, 1))
        if parts <= 1 {
            if count > 0 { body(0..<count) }
            return
        }
        let chunk = (count + parts - 1) / parts
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            let lo = p * chunk
            let hi = min(count, lo + chunk)
            if lo < hi { body(lo..<hi) }
        }
    }

}

/// Who runs on the cores. OpenBLAS's own worker threads spin in `sched_yield` between calls;
/// on two cores that spinning competed with our elementwise threads for a fifth of a training
/// step. So by default OpenBLAS runs single-threaded and `Kernels.sgemm` splits large products
/// across cores itself, on the same Dispatch threads as everything else.
///
/// Token-by-token sampling is the opposite case: dozens of small matrix-vector products per
/// token and almost nothing else. Waking a Dispatch thread per product costs more than it saves,
/// while OpenBLAS's spinning workers are ready at once, so the sampling loop runs inside
/// ``withNativeBLASThreading(_:)``.
public enum Threading {
    private static let once: Void = { openblas_set_num_threads(1) }()

    /// True inside ``withNativeBLASThreading(_:)``.
    public private(set) static var nativeBLAS = false

    /// Applies the policy (idempotent; every product calls it).
    @inline(__always) public static func configure() { once }

    /// Runs `body` with OpenBLAS threaded on every core, as it is out of the box (also the raw
    /// sgemm that benchmarks compare against). `Kernels.sgemm` then leaves the splitting to it.
    public static func withNativeBLASThreading<R>(_ body: () throws -> R) rethrows -> R {
        configure()
        let previous = nativeBLAS
        nativeBLAS = true
        openblas_set_num_threads(Int32(Parallel.coreCount))
        defer {
            nativeBLAS = previous
            if !previous {
                // Back to one thread, and stop the workers: an idle OpenBLAS worker spins for
                // about 0.1 s, and on two cores that halved the speed of the Dispatch-split
                // products that followed (matmul-1024 right after a threaded sgemm: ratio 0.5).
                openblas_set_num_threads(1)
                _ = blas_thread_shutdown_()
            }
        }
        return try body()
    }
}
