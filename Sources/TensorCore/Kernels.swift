// Raw-buffer kernels shared by the operations: contiguous loops the compiler vectorises, split
// over cores when large.

import Foundation
import CBLAS

/// Loops over contiguous Float32 buffers.
public enum Kernels {
    /// `dst[i] += src[i]`.
    public static func addInPlace(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int) {
        Parallel.forRanges(count) { r in
            for i in r { dst[i] += src[i] }
        }
    }

    /// `dst[i] *= scale`.
    public static func scaleInPlace(_ dst: UnsafeMutablePointer<Float>, _ scale: Float, count: Int) {
        Parallel.forRanges(count) { r in
            for i in r { dst[i] *= scale }
        }
    }

    /// Sum of squares, accumulated in Double.
    public static func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Double {
        var total: Double = 0
        var i = 0
        // Float partial sums over short blocks keep the loop vectorised; Double across blocks
        // keeps the total accurate for millions of elements.
        while i < count {
            let end = min(count, i + 4096)
            var partial: Float = 0
            for j in i..<end { partial += x[j] * x[j] }
            total += Double(partial)
            i = end
        }
        return total
    }

    /// Sum of the elements, accumulated blockwise in Double.
    public static func sum(_ x: UnsafePointer<Float>, count: Int) -> Double {
        var total: Double = 0
        var i = 0
        while i < count {
            let end = min(count, i + 4096)
            var partial: Float = 0
            for j in i..<end { partial += x[j] }
            total += Double(partial)
            i = end
        }
        return total
    }

    /// Row-major `C = alpha * op(A) @ op(B) + beta * C` through OpenBLAS, with leading
    /// dimensions given explicitly so callers can multiply strided views (a head of a
    /// multi-head activation, every second row of a signal).
    ///
    /// OpenBLAS runs single-threaded (see ``Threading``); a large product is split here into one
    /// slice per core: by rows of C, else by columns, else (tall-skinny inner products such as
    /// a convolution's weight gradient) by the inner dimension with a sum of partial results.
    public static func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                             alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            if beta == 0 {
                for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) }
            } else if beta != 1 {
                for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } }
            }
            return
        }
        Threading.configure()
        let parts = Parallel.coreCount
        let work = Double(m) * Double(n) * Double(k)
        guard parts > 1 && work >= Double(1 << 21) && !Threading.nativeBLAS else {
            blas(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        if m >= 32 * parts {
            let chunk = (m + parts - 1) / parts
            DispatchQueue.concurrentPerform(iterations: parts) { p in
                let r0 = p * chunk, rows = Swift.min(m, r0 + chunk) - r0
                guard rows > 0 else { return }
                blas(transA, transB, rows, n, k, alpha, transA ? a + r0 : a + r0 * lda, lda, b, ldb, beta, c + r0 * ldc, ldc)
            }
        } else if n >= 32 * parts {
            let chunk = (n + parts - 1) / parts
            DispatchQueue.concurrentPerform(iterations: parts) { p in
                let c0 = p * chunk, cols = Swift.min(n, c0 + chunk) - c0
                guard cols > 0 else { return }
                blas(transA, transB, m, cols, k, alpha, a, lda, transB ? b + c0 * ldb : b + c0, ldb, beta, c + c0, ldc)
            }
        } else {
            // Split the inner dimension: part 0 adds into C, the others into zeroed scratch.
            let chunk = (k + parts - 1) / parts
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: (parts - 1) * m * n)
            defer { scratch.deallocate() }
            DispatchQueue.concurrentPerform(iterations: parts) { p in
                let k0 = p * chunk, depth = Swift.max(0, Swift.min(k, k0 + chunk) - k0)
                let aa = transA ? a + k0 * lda : a + k0, bb = transB ? b + k0 : b + k0 * ldb
                if p == 0 {
                    blas(transA, transB, m, n, depth, alpha, aa, lda, bb, ldb, beta, c, ldc)
                } else {
                    let out = scratch + (p - 1) * m * n
                    if depth == 0 { out.update(repeating: 0, count: m * n); return }
                    blas(transA, transB, m, n, depth, alpha, aa, lda, bb, ldb, 0, out, n)
                }
            }
            for p in 1..<parts {
                let part = scratch + (p - 1) * m * n
                for i in 0..<m { for j in 0..<n { c[i * ldc + j] += part[i * n + j] } }
            }
        }
    }

    /// Row-major `y = alpha · op(A) x + beta · y` for an (M × N) matrix A with leading dimension
    /// `lda`: matrix-vector work that streams A once. Threaded by OpenBLAS inside
    /// ``Threading/withNativeBLASThreading(_:)`` (token sampling), single-threaded otherwise.
    @inline(__always)
    public static func sgemv(transA: Bool = false, m: Int, n: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                             x: UnsafePointer<Float>, beta: Float = 0, y: UnsafeMutablePointer<Float>) {
        Threading.configure()
        cblas_sgemv(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), alpha, a, Int32(lda), x, 1,
                    beta, y, 1)
    }

    @inline(__always)
    private static func blas(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                             _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                             _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Naive triple-loop product in Double, the reference for tests: `C = op(A) @ op(B)`.
    public static func referenceMatmul(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int,
                                       transA: Bool = false, transB: Bool = false) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var acc: Double = 0
                for p in 0..<k {
                    let av = transA ? a[p * m + i] : a[i * k + p]
                    let bv = transB ? b[j * k + p] : b[p * n + j]
                    acc += Double(av) * Double(bv)
                }
                c[i * n + j] = Float(acc)
            }
        }
        return c
    }
}
