// 1-D convolution and transposed convolution in channels-last layout, by per-tap accumulation.
//
// Shapes: x (B, T, Cin), weight (K, Cin, Cout), bias (Cout), y (B, Tout, Cout).
//
// Channels-last makes every tap of the kernel one matrix product with no im2col copy: for tap k
// the input rows that output rows t use are x[t·s − p + k·d], a strided run of rows with leading
// dimension s·Cin, so y[tLo...tHi] += x[rows] @ W[k] is a single sgemm. Rows that would read
// the zero padding are simply left out of the range. A transposed convolution scatters instead:
// y[t·s − p + k·d] += x[t] @ W[k], a product whose output rows have leading dimension s·Cout.
// Each batch item costs K products of (T × Cin) @ (Cin × Cout), all large enough for OpenBLAS to
// run near its peak.

import Foundation

/// Geometry of one tap: which output rows it touches and where its input rows start.
struct ConvTap {
    /// First and one-past-last row of the "gathering" side (conv output / transposed-conv input).
    let lo: Int, hi: Int
    /// Row on the "scattered" side (conv input / transposed-conv output) that row `lo` maps to.
    let start: Int
    var rows: Int { Swift.max(0, hi - lo) }
}

/// Convolution arithmetic shared by conv1d and its transpose.
struct ConvGeometry {
    let kernel: Int, stride: Int, padding: Int, dilation: Int

    /// Rows t in 0..<dense whose partner row t·s − p + k·d lies in 0..<sparse, for tap k.
    func tap(_ k: Int, dense: Int, sparse: Int) -> ConvTap {
        let offset = k * dilation - padding        // partner(t) = t·s + offset
        let lo = Swift.max(0, ceilDiv(-offset, stride))
        let hi = Swift.min(dense, floorDiv(sparse - 1 - offset, stride) + 1)
        return ConvTap(lo: lo, hi: hi, start: lo * stride + offset)
    }

    private func ceilDiv(_ a: Int, _ b: Int) -> Int { -floorDiv(-a, b) }
    private func floorDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }
}

extension Tensor {
    /// Output length of a convolution over `length` positions.
    public static func conv1dOutputLength(_ length: Int, kernel: Int, stride: Int = 1,
                                          padding: Int = 0, dilation: Int = 1) -> Int {
        (length + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1
    }

    /// Output length of a transposed convolution over `length` positions.
    public static func convTranspose1dOutputLength(_ length: Int, kernel: Int, stride: Int = 1,
                                                   padding: Int = 0, dilation: Int = 1) -> Int {
        (length - 1) * stride - 2 * padding + dilation * (kernel - 1) + 1
    }

    private static func checkConv(_ name: String, _ x: Tensor, _ weight: Tensor, _ bias: Tensor?,
                                  stride: Int, padding: Int, dilation: Int) {
        precondition(x.rank == 3 && weight.rank == 3 && x.shape[2] == weight.shape[1],
                     "\(name): input \(x.shape) (B, T, Cin) does not fit weight \(weight.shape) (K, Cin, Cout)")
        precondition(stride >= 1 && dilation >= 1 && padding >= 0,
                     "\(name): stride \(stride), padding \(padding), dilation \(dilation) are invalid")
        if let bias {
            precondition(bias.shape == [weight.shape[2]], "\(name): bias \(bias.shape) does not fit weight \(weight.shape)")
        }
    }

    /// Fills each (Tout, Cout) item of `y` with the bias, or zeros.
    private static func fillBias(_ y: Tensor, _ bias: Tensor?, rows: Int, columns: Int) {
        guard let bias else {
            y.data.update(repeating: 0, count: y.count)
            return
        }
        for r in 0..<rows { (y.data + r * columns).update(from: bias.data, count: columns) }
    }

    /// Convolution `y[b, t] = bias + Σₖ x[b, t·stride − padding + k·dilation] @ weight[k]` with
    /// zero padding. `x (B, T, Cin)`, `weight (K, Cin, Cout)`, result `(B, Tout, Cout)`.
    public static func conv1d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1,
                              padding: Int = 0, dilation: Int = 1) -> Tensor {
        checkConv("conv1d", x, weight, bias, stride: stride, padding: padding, dilation: dilation)
        let (B, T, Cin) = (x.shape[0], x.shape[1], x.shape[2])
        let (K, Cout) = (weight.shape[0], weight.shape[2])
        let Tout = conv1dOutputLength(T, kernel: K, stride: stride, padding: padding, dilation: dilation)
        precondition(Tout > 0, "conv1d: input length \(T) is too short for kernel \(K), dilation \(dilation), padding \(padding)")
        let geo = ConvGeometry(kernel: K, stride: stride, padding: padding, dilation: dilation)
        let y = Tensor(uninitializedShape: [B, Tout, Cout])
        fillBias(y, bias, rows: B * Tout, columns: Cout)
        for k in 0..<K {
            let tap = geo.tap(k, dense: Tout, sparse: T)
            guard tap.rows > 0 else { continue }
            for b in 0..<B {
                Kernels.sgemm(m: tap.rows, n: Cout, k: Cin,
                              a: x.data + (b * T + tap.start) * Cin, lda: stride * Cin,
                              b: weight.data + k * Cin * Cout, ldb: Cout,
                              beta: 1, c: y.data + (b * Tout + tap.lo) * Cout, ldc: Cout)
            }
        }
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return record(.conv1d, output: y, inputs: inputs) { _, g in
            let dY = g.data
            let dX = x.requiresGrad ? x.gradAccumulator() : nil
            let dW = weight.requiresGrad ? weight.gradAccumulator() : nil
            for k in 0..<K {
                let tap = geo.tap(k, dense: Tout, sparse: T)
                guard tap.rows > 0 else { continue }
                for b in 0..<B {
                    let dYk = dY + (b * Tout + tap.lo) * Cout
                    if let dX {   // dX[rows] += dY @ W[k]ᵀ
                        Kernels.sgemm(transB: true, m: tap.rows, n: Cin, k: Cout, a: dYk, lda: Cout,
                                      b: weight.data + k * Cin * Cout, ldb: Cout,
                                      beta: 1, c: dX + (b * T + tap.start) * Cin, ldc: stride * Cin)
                    }
                    if let dW {   // dW[k] += x[rows]ᵀ @ dY
                        Kernels.sgemm(transA: true, m: Cin, n: Cout, k: tap.rows,
                                      a: x.data + (b * T + tap.start) * Cin, lda: stride * Cin,
                                      b: dYk, ldb: Cout, beta: 1, c: dW + k * Cin * Cout, ldc: Cout)
                    }
                }
            }
            if let bias, bias.requiresGrad {
                Kernels.addColumnSums(dY, rows: B * Tout, columns: Cout, into: bias.gradAccumulator())
            }
        }
    }

    /// Transposed convolution `y[b, t·stride − padding + k·dilation] += x[b, t] @ weight[k]`, plus
    /// bias. `x (B, T, Cin)`, `weight (K, Cin, Cout)`, result `(B, (T−1)·stride − 2·padding +
    /// dilation·(K−1) + 1, Cout)`; kernel 4, stride 2, padding 1 doubles the length.
    public static func convTranspose1d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1,
                                       padding: Int = 0, dilation: Int = 1) -> Tensor {
        checkConv("convTranspose1d", x, weight, bias, stride: stride, padding: padding, dilation: dilation)
        let (B, T, Cin) = (x.shape[0], x.shape[1], x.shape[2])
        let (K, Cout) = (weight.shape[0], weight.shape[2])
        let Tout = convTranspose1dOutputLength(T, kernel: K, stride: stride, padding: padding, dilation: dilation)
        precondition(Tout > 0, "convTranspose1d: output length \(Tout) from input length \(T) is not positive")
        let geo = ConvGeometry(kernel: K, stride: stride, padding: padding, dilation: dilation)
        let y = Tensor(uninitializedShape: [B, Tout, Cout])
        fillBias(y, bias, rows: B * Tout, columns: Cout)
        for k in 0..<K {
            let tap = geo.tap(k, dense: T, sparse: Tout)
            guard tap.rows > 0 else { continue }
            for b in 0..<B {
                Kernels.sgemm(m: tap.rows, n: Cout, k: Cin, a: x.data + (b * T + tap.lo) * Cin, lda: Cin,
                              b: weight.data + k * Cin * Cout, ldb: Cout,
                              beta: 1, c: y.data + (b * Tout + tap.start) * Cout, ldc: stride * Cout)
            }
        }
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return record(.convTranspose1d, output: y, inputs: inputs) { _, g in
            let dY = g.data
            let dX = x.requiresGrad ? x.gradAccumulator() : nil
            let dW = weight.requiresGrad ? weight.gradAccumulator() : nil
            for k in 0..<K {
                let tap = geo.tap(k, dense: T, sparse: Tout)
                guard tap.rows > 0 else { continue }
                for b in 0..<B {
                    let dYk = dY + (b * Tout + tap.start) * Cout
                    if let dX {   // dX[t] += dY[rows] @ W[k]ᵀ
                        Kernels.sgemm(transB: true, m: tap.rows, n: Cin, k: Cout, a: dYk, lda: stride * Cout,
                                      b: weight.data + k * Cin * Cout, ldb: Cout,
                                      beta: 1, c: dX + (b * T + tap.lo) * Cin, ldc: Cin)
                    }
                    if let dW {   // dW[k] += x[t]ᵀ @ dY[rows]
                        Kernels.sgemm(transA: true, m: Cin, n: Cout, k: tap.rows,
                                      a: x.data + (b * T + tap.lo) * Cin, lda: Cin,
                                      b: dYk, ldb: stride * Cout, beta: 1, c: dW + k * Cin * Cout, ldc: Cout)
                    }
                }
            }
            if let bias, bias.requiresGrad {
                Kernels.addColumnSums(dY, rows: B * Tout, columns: Cout, into: bias.gradAccumulator())
            }
        }
    }
}

extension Kernels {
    /// Naive convolution in Double, the reference for tests. Same layouts as `Tensor.conv1d`.
    public static func referenceConv1d(x: [Float], B: Int, T: Int, Cin: Int, weight: [Float], K: Int, Cout: Int,
                                       bias: [Float]?, stride: Int, padding: Int, dilation: Int) -> [Float] {
        let Tout = Tensor.conv1dOutputLength(T, kernel: K, stride: stride, padding: padding, dilation: dilation)
        var y = [Float](repeating: 0, count: B * Tout * Cout)
        for b in 0..<B {
            for t in 0..<Tout {
                for co in 0..<Cout {
                    var acc = Double(bias?[co] ?? 0)
                    for k in 0..<K {
                        let i = t * stride - padding + k * dilation
                        guard i >= 0 && i < T else { continue }
                        for ci in 0..<Cin {
                            acc += Double(x[(b * T + i) * Cin + ci]) * Double(weight[(k * Cin + ci) * Cout + co])
                        }
                    }
                    y[(b * Tout + t) * Cout + co] = Float(acc)
                }
            }
        }
        return y
    }

    /// Naive transposed convolution in Double, the reference for tests.
    public static func referenceConvTranspose1d(x: [Float], B: Int, T: Int, Cin: Int, weight: [Float], K: Int,
                                                Cout: Int, bias: [Float]?, stride: Int, padding: Int,
                                                dilation: Int) -> [Float] {
        let Tout = Tensor.convTranspose1dOutputLength(T, kernel: K, stride: stride, padding: padding, dilation: dilation)
        var acc = [Double](repeating: 0, count: B * Tout * Cout)
        for b in 0..<B {
            for t in 0..<T {
                for k in 0..<K {
                    let j = t * stride - padding + k * dilation
                    guard j >= 0 && j < Tout else { continue }
                    for co in 0..<Cout {
                        var s = 0.0
                        for ci in 0..<Cin {
                            s += Double(x[(b * T + t) * Cin + ci]) * Double(weight[(k * Cin + ci) * Cout + co])
                        }
                        acc[(b * Tout + j) * Cout + co] += s
                    }
                }
            }
            if let bias {
                for j in 0..<Tout { for co in 0..<Cout { acc[(b * Tout + j) * Cout + co] += Double(bias[co]) } }
            }
        }
        return acc.map { Float($0) }
    }
}
