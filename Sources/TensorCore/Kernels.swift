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
    @inline(__always)
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
