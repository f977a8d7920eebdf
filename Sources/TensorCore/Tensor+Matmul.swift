// Matrix products through cblas_sgemm: plain (leading dimensions folded into rows), batched, and
// the linear layer x @ W + b. Backward products add straight into the gradient buffers (beta 1).
//
// For C = op(A) op(B):  d op(A) = dC op(B)ᵀ  and  d op(B) = op(A)ᵀ dC.

import Foundation

extension Tensor {
    /// Matrix product of the last two axes. `a` is `(..., M, K)` (`(..., K, M)` when
    /// `transposeA`), `b` is `(K, N)` (`(N, K)` when `transposeB`) or batched `(..., K, N)`
    /// with the same leading axes as `a`. Result `(..., M, N)`.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(a.rank >= 2 && b.rank >= 2, "matmul: operands need rank ≥ 2, got \(a.shape) and \(b.shape)")
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        let m = transposeA ? a.shape[a.rank - 1] : a.shape[a.rank - 2]
        let k = transposeA ? a.shape[a.rank - 2] : a.shape[a.rank - 1]
        let kb = transposeB ? b.shape[b.rank - 1] : b.shape[b.rank - 2]
        let n = transposeB ? b.shape[b.rank - 2] : b.shape[b.rank - 1]
        precondition(k == kb, "matmul: inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") @ \(b.shape)\(transposeB ? "ᵀ" : "")")
        let batch: Int
        if batchB.isEmpty {
            batch = batchA.reduce(1, *)
        } else {
            precondition(batchA == batchB, "matmul: batch dimensions differ: \(a.shape) @ \(b.shape)")
            batch = batchA.reduce(1, *)
        }
        let out = Tensor(uninitializedShape: batchA + [m, n])
        let strideA = m * k, strideB = batchB.isEmpty ? 0 : k * n, strideC = m * n
        let lda = transposeA ? m : k, ldb = transposeB ? k : n
        if batchB.isEmpty && !transposeA {
            // Fold every leading dimension into the rows: one large product.
            Kernels.sgemm(transB: transposeB, m: batch * m, n: n, k: k, a: a.data, lda: lda,
                          b: b.data, ldb: ldb, c: out.data, ldc: n)
        } else {
            for i in 0..<batch {
                Kernels.sgemm(transA: transposeA, transB: transposeB, m: m, n: n, k: k,
                              a: a.data + i * strideA, lda: lda, b: b.data + i * strideB, ldb: ldb,
                              c: out.data + i * strideC, ldc: n)
            }
        }
        let op: Op = batchB.isEmpty ? .matmul : .batchedMatmul
        return record(op, output: out, inputs: [a, b]) { _, g in
            let dC = g.data
            if a.requiresGrad {
                let dA = a.gradAccumulator()
                if batchB.isEmpty && !transposeA {
                    Kernels.sgemm(transA: false, transB: !transposeB, m: batch * m, n: k, k: n,
                                  a: dC, lda: n, b: b.data, ldb: ldb, beta: 1, c: dA, ldc: k)
                } else {
                    for i in 0..<batch {
                        let c = dC + i * strideC, bb = b.data + i * strideB
                        if transposeA {   // dA (K×M) = op(B) dCᵀ
                            Kernels.sgemm(transA: transposeB, transB: true, m: k, n: m, k: n,
                                          a: bb, lda: ldb, b: c, ldb: n, beta: 1, c: dA + i * strideA, ldc: m)
                        } else {          // dA (M×K) = dC op(B)ᵀ
                            Kernels.sgemm(transA: false, transB: !transposeB, m: m, n: k, k: n,
                                          a: c, lda: n, b: bb, ldb: ldb, beta: 1, c: dA + i * strideA, ldc: k)
                        }
                    }
                }
            }
            if b.requiresGrad {
                let dB = b.gradAccumulator()
                if batchB.isEmpty && !transposeA {
                    let rows = batch * m
                    if transposeB {   // dB (N×K) = dCᵀ A
                        Kernels.sgemm(transA: true, m: n, n: k, k: rows, a: dC, lda: n,
                                      b: a.data, ldb: k, beta: 1, c: dB, ldc: k)
                    } else {          // dB (K×N) = Aᵀ dC
                        Kernels.sgemm(transA: true, m: k, n: n, k: rows, a: a.data, lda: k,
                                      b: dC, ldb: n, beta: 1, c: dB, ldc: n)
                    }
                } else {
                    for i in 0..<batch {
                        let c = dC + i * strideC, aa = a.data + i * strideA
                        if transposeB {   // dB (N×K) = dCᵀ op(A)
                            Kernels.sgemm(transA: true, transB: transposeA, m: n, n: k, k: m,
                                          a: c, lda: n, b: aa, ldb: lda, beta: 1, c: dB + i * strideB, ldc: k)
                        } else {          // dB (K×N) = op(A)ᵀ dC
                            Kernels.sgemm(transA: !transposeA, transB: false, m: k, n: n, k: m,
                                          a: aa, lda: lda, b: c, ldb: n, beta: 1, c: dB + i * strideB, ldc: n)
                        }
                    }
                }
            }
        }
    }

    /// `x @ weight + bias` over the last axis: `x (..., In)`, `weight (In, Out)` (Jukebox's
    /// Conv1D layout), `bias (Out)` or nil. Result `(..., Out)`.
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        precondition(weight.rank == 2 && x.rank >= 1 && x.shape[x.rank - 1] == weight.shape[0],
                     "linear: input \(x.shape) does not fit weight \(weight.shape)")
        let nIn = weight.shape[0], nOut = weight.shape[1]
        if let bias {
            precondition(bias.shape == [nOut], "linear: bias \(bias.shape) does not fit weight \(weight.shape)")
        }
        let rows = x.count / Swift.max(nIn, 1)
        let out = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [nOut])
        if let bias {
            for r in 0..<rows { (out.data + r * nOut).update(from: bias.data, count: nOut) }
        }
        Kernels.sgemm(m: rows, n: nOut, k: nIn, a: x.data, lda: nIn, b: weight.data, ldb: nOut,
                      beta: bias == nil ? 0 : 1, c: out.data, ldc: nOut)
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return record(.linear, output: out, inputs: inputs) { _, g in
            let dY = g.data
            if x.requiresGrad {
                Kernels.sgemm(transB: true, m: rows, n: nIn, k: nOut, a: dY, lda: nOut,
                              b: weight.data, ldb: nOut, beta: 1, c: x.gradAccumulator(), ldc: nIn)
            }
            if weight.requiresGrad {
                Kernels.sgemm(transA: true, m: nIn, n: nOut, k: rows, a: x.data, lda: nIn,
                              b: dY, ldb: nOut, beta: 1, c: weight.gradAccumulator(), ldc: nOut)
            }
            if let bias, bias.requiresGrad {
                Kernels.addColumnSums(dY, rows: rows, columns: nOut, into: bias.gradAccumulator())
            }
        }
    }
}

extension Kernels {
    /// `dst[j] += Σᵢ src[i, j]` over a `(rows, columns)` matrix.
    public static func addColumnSums(_ src: UnsafePointer<Float>, rows: Int, columns: Int,
                                     into dst: UnsafeMutablePointer<Float>) {
        for i in 0..<rows {
            let row = src + i * columns
            for j in 0..<columns { dst[j] += row[j] }
        }
    }
}
