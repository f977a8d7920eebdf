// 1-D convolution and transposed convolution in channels-last layout, by per-tap accumulation.
//
// Shapes: x (B, T, Cin), weight (K, Cin, Cout), bias (Cout), y (B, Tout, Cout); a residual
// block keeps x (B, T, C) and has an inner activation (B, T, M).
//
// Channels-last makes every tap of the kernel one matrix product with no im2col copy: for tap k
// the input rows that output rows t use are x[t·s − p + k·d], a strided run of rows with leading
// dimension s·Cin, so y[tLo...tHi] += x[rows] @ W[k] is a single sgemm. Rows that would read
// the zero padding are simply left out of the range. A transposed convolution scatters instead:
// y[t·s − p + k·d] += x[t] @ W[k], a product whose output rows have leading dimension s·Cout.
//
// The forward runs in tiles of output rows: one tile of y is filled with its bias (or residual
// plus bias) and then takes all K tap products while it sits in cache, so y crosses the memory
// bus once instead of 2K + 1 times. Tiles are the unit of parallelism (single-threaded sgemm on
// each), so a convolution over a long signal keeps both cores busy even when one is shared.
// The forward can also apply relu to its input on the fly (into a tile-sized scratch) and add
// a residual: a ResNet block `x + conv(relu(conv(relu(x))))` then stores neither relu output
// nor the branch, and the backward recomputes relu(x) from x, which the graph keeps anyway.
// Without recording, `residualBlock` runs such a whole block per tile, so its inner activation
// never reaches memory (7% off a 10 s decode).
// The backward runs in tiles of input rows: each tile gathers dX for its rows from every tap
// (so no two tiles write the same row) and adds its share of dW into a per-run partial sum.
//
// Exactness over windows. OpenBLAS does not promise that a row of C = A·B comes out the same
// whatever M is or wherever the row sits in the call: its kernels handle the rows of a call in
// groups of its unroll size with different code for the remainder, and on some CPUs (the
// Haswell kernels, also picked on AVX-512 machines by `OPENBLAS_CORETYPE=Haswell`) that code
// sums in a different order. A window of a signal (chunked encoding and decoding) would then
// get other last bits than the whole signal wherever its tiles start elsewhere, and a code can
// flip at a tie. So the forward lays its tiles on a grid fixed to the whole signal (`origin`
// is the window's position in it) and gives every tap product of every tile the same shape,
// tileRows × Cout × Cin, also at the ends: a tile that reaches past the input or the output is
// computed in scratch with zero rows standing in for what is absent. Each output row is then
// made by the same sgemm call shape at the same place in it, from the same values, in any
// window, on any CPU and with any thread count.

import Foundation
import CBLAS

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

    /// Rows t in `dense` whose partner row t·s − p + k·d lies in `sparse`, for tap k.
    func tap(_ k: Int, dense: Range<Int>, sparse: Range<Int>) -> ConvTap {
        let offset = k * dilation - padding        // partner(t) = t·s + offset
        let lo = Swift.max(dense.lowerBound, ceilDiv(sparse.lowerBound - offset, stride))
        let hi = Swift.min(dense.upperBound, floorDiv(sparse.upperBound - 1 - offset, stride) + 1)
        return ConvTap(lo: lo, hi: hi, start: lo * stride + offset)
    }

    /// A range standing for "all rows": the dense side of a tap as if the signal had no ends.
    static let unbounded = -(1 << 40)..<(1 << 40)

    /// Rows t in 0..<dense whose partner row lies in 0..<sparse, for tap k.
    func tap(_ k: Int, dense: Int, sparse: Int) -> ConvTap { tap(k, dense: 0..<dense, sparse: 0..<sparse) }

    private func ceilDiv(_ a: Int, _ b: Int) -> Int { -floorDiv(-a, b) }
    private func floorDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }
}

/// A pointwise function applied to a convolution's input as it is read. The activated input is
/// never stored: the forward writes it into a tile-sized scratch and the backward recomputes it.
public enum ConvInputActivation: Sendable {
    case none
    /// `max(x, 0)`.
    case relu
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

    /// Convolution `y[b, t] = residual[b, t] + bias + Σₖ act(x)[b, t·stride − padding + k·dilation] @ weight[k]`
    /// with zero padding. `x (B, T, Cin)`, `weight (K, Cin, Cout)`, `residual (B, Tout, Cout)`,
    /// result `(B, Tout, Cout)`.
    ///
    /// `inputActivation` is applied to x on the fly (relu(x) is neither allocated nor kept for
    /// the backward); `residual` is added in the same pass, so `x + conv(relu(h))` keeps one
    /// tensor instead of three.
    public static func conv1d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0,
                              dilation: Int = 1, inputActivation: ConvInputActivation = .none,
                              residual: Tensor? = nil, origin: Int = 0) -> Tensor {
        checkConv("conv1d", x, weight, bias, stride: stride, padding: padding, dilation: dilation)
        precondition(origin >= 0 && origin % stride == 0, "conv1d: origin \(origin) is not a multiple of stride \(stride)")
        let (B, T, Cin) = (x.shape[0], x.shape[1], x.shape[2])
        let (K, Cout) = (weight.shape[0], weight.shape[2])
        let Tout = conv1dOutputLength(T, kernel: K, stride: stride, padding: padding, dilation: dilation)
        precondition(Tout > 0, "conv1d: input length \(T) is too short for kernel \(K), dilation \(dilation), padding \(padding)")
        if let residual {
            precondition(residual.shape == [B, Tout, Cout], "conv1d: residual \(residual.shape) does not fit output \([B, Tout, Cout])")
        }
        let relu = inputActivation == .relu
        let y = Tensor(uninitializedShape: [B, Tout, Cout])
        // One tile of y: start from residual + bias, then add every tap's product.
        let tiling = ConvTiling(items: B, rows: Tout, origin: origin / stride, channels: Swift.max(Cin, Cout),
                                flopsPerRow: 2 * K * Cin * Cout)
        let n = tiling.tileRows
        // scratch: a (n, Cin) the rows one tap reads, activated or zero-padded; yt (n, Cout) the
        // output tile when it reaches past the output.
        tiling.forEach(scratchPerRow: Cin + Cout) { _, b, tile, scratch in
            let xb = x.data + b * T * Cin, yb = y.data + b * Tout * Cout
            let tileInside = tile.lowerBound >= 0 && tile.upperBound <= Tout
            // Every tap of every row reads inside x: the products can read x in place.
            let tapsInside = tile.lowerBound * stride - padding >= 0
                && (tile.upperBound - 1) * stride + (K - 1) * dilation - padding < T
            let at = scratch, yt = tileInside ? yb + tile.lowerBound * Cout : scratch + n * Cin
            let valid = tile.clamped(to: 0..<Tout)
            if !tileInside { yt.update(repeating: 0, count: n * Cout) }
            initializeRows(yt + (valid.lowerBound - tile.lowerBound) * Cout, rows: valid.count, columns: Cout,
                           bias: bias?.data, residual: residual.map { $0.data + (b * Tout + valid.lowerBound) * Cout })
            for k in 0..<K {
                let first = tile.lowerBound * stride - padding + k * dilation   // input row of the tile's row 0
                var a = UnsafePointer(xb + first * Cin), lda = stride * Cin
                if !(tileInside && tapsInside) {
                    for i in 0..<n {
                        let t = tile.lowerBound + i, src = first + i * stride, dst = at + i * Cin
                        if t >= 0 && t < Tout && src >= 0 && src < T {
                            let row = xb + src * Cin
                            if relu { for c in 0..<Cin { dst[c] = Swift.max(row[c], 0) } } else { dst.update(from: row, count: Cin) }
                        } else {
                            dst.update(repeating: 0, count: Cin)
                        }
                    }
                    (a, lda) = (UnsafePointer(at), Cin)
                } else if relu {
                    for i in 0..<n {
                        let src = a + i * lda, dst = at + i * Cin
                        for c in 0..<Cin { dst[c] = Swift.max(src[c], 0) }
                    }
                    (a, lda) = (UnsafePointer(at), Cin)
                }
                tileProduct(m: n, n: Cout, k: Cin, a: a, lda: lda, b: weight.data + k * Cin * Cout, ldb: Cout, c: yt, ldc: Cout)
            }
            if !tileInside {
                (yb + valid.lowerBound * Cout).update(from: yt + (valid.lowerBound - tile.lowerBound) * Cout,
                                                      count: valid.count * Cout)
            }
        }
        var inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        if let residual { inputs.append(residual) }
        let geo = ConvGeometry(kernel: K, stride: stride, padding: padding, dilation: dilation)
        return record(.conv1d, output: y, inputs: inputs) { _, g in
            let dY = g.data
            let dX = x.requiresGrad ? x.gradAccumulator() : nil
            // Tiles of input rows: each tile owns its rows of dX and gathers every tap's share.
            let tiling = ConvTiling(items: B, rows: T, channels: Swift.max(Cin, Cout), flopsPerRow: 4 * K * Cin * Cout / stride)
            let dWParts = weight.requiresGrad ? Tensor.zeros([tiling.runs, K, Cin, Cout]) : nil
            tiling.forEach(scratchPerRow: relu ? 2 * Cin : 0) { run, b, tile, scratch in
                let rows = tile.clamped(to: 0..<T), n = rows.count, xt = x.data + (b * T + rows.lowerBound) * Cin   // x tile (n, Cin)
                // xa (n, Cin): the activated input tile; dXa (n, Cin): its gradient, which for
                // relu is masked by x > 0 on the way into dX.
                var xa = UnsafePointer(xt), dXa = dX.map { $0 + (b * T + rows.lowerBound) * Cin }
                if relu {
                    for i in 0..<n * Cin { scratch[i] = Swift.max(xt[i], 0) }
                    xa = UnsafePointer(scratch)
                    if dX != nil {
                        dXa = scratch + n * Cin
                        dXa!.update(repeating: 0, count: n * Cin)
                    }
                }
                for k in 0..<K {
                    let tap = geo.tap(k, dense: 0..<Tout, sparse: rows)   // output rows reading this tile
                    guard tap.rows > 0 else { continue }
                    let dYk = dY + (b * Tout + tap.lo) * Cout, r0 = tap.start - rows.lowerBound
                    if let dWParts {   // dW[k] += xa[rows]ᵀ @ dY
                        tileProduct(transA: true, m: Cin, n: Cout, k: tap.rows, a: xa + r0 * Cin, lda: stride * Cin,
                                    b: dYk, ldb: Cout, c: dWParts.data + (run * K + k) * Cin * Cout, ldc: Cout)
                    }
                    if let dXa {   // dXa[rows] += dY @ W[k]ᵀ
                        tileProduct(transB: true, m: tap.rows, n: Cin, k: Cout, a: dYk, lda: Cout,
                                    b: weight.data + k * Cin * Cout, ldb: Cout, c: dXa + r0 * Cin, ldc: stride * Cin)
                    }
                }
                if relu, let dX, let dXa {
                    let dXt = dX + (b * T + rows.lowerBound) * Cin
                    for i in 0..<n * Cin { dXt[i] += xt[i] > 0 ? dXa[i] : 0 }
                }
            }
            if let dWParts { addParts(dWParts, into: weight) }
            if let bias, bias.requiresGrad {
                Kernels.addColumnSums(dY, rows: B * Tout, columns: Cout, into: bias.gradAccumulator())
            }
            if let residual, residual.requiresGrad { residual.accumulateGrad(g) }
        }
    }

    /// The VQ-VAE's residual block `x + conv1x1(relu(conv(relu(x), dilation)))` with an odd
    /// inner kernel padded to keep the length. `x (B, T, C)`, `innerWeight (K, C, M)`,
    /// `innerBias (M)`, `outerWeight (1, M, C)`, `outerBias (C)`; result `(B, T, C)`.
    ///
    /// Without gradient recording it runs tile by tile of rows, so the inner activation never
    /// leaves the cache and x's rows are still there for the residual. With recording it is
    /// the two fused `conv1d` calls, whose backward keeps x and the inner activation.
    public static func residualBlock(_ x: Tensor, innerWeight: Tensor, innerBias: Tensor, dilation: Int,
                                     outerWeight: Tensor, outerBias: Tensor, origin: Int = 0) -> Tensor {
        let (K, M) = (innerWeight.shape[0], innerWeight.shape[2])
        precondition(K % 2 == 1, "residualBlock: inner kernel \(K) must be odd to keep the length")
        let padding = dilation * (K - 1) / 2
        if shouldRecord([x, innerWeight, innerBias, outerWeight, outerBias]) {
            let h = conv1d(x, weight: innerWeight, bias: innerBias, padding: padding, dilation: dilation,
                           inputActivation: .relu, origin: origin)
            return conv1d(h, weight: outerWeight, bias: outerBias, inputActivation: .relu, residual: x, origin: origin)
        }
        checkConv("residualBlock", x, innerWeight, innerBias, stride: 1, padding: padding, dilation: dilation)
        precondition(origin >= 0, "residualBlock: origin \(origin) is negative")
        let (B, T, C) = (x.shape[0], x.shape[1], x.shape[2])
        precondition(outerWeight.shape == [1, M, C] && outerBias.shape == [C],
                     "residualBlock: outer weight \(outerWeight.shape) and bias \(outerBias.shape) do not fit \([1, M, C])")
        let y = Tensor(uninitializedShape: [B, T, C])
        let tiling = ConvTiling(items: B, rows: T, origin: origin, channels: Swift.max(C, M), flopsPerRow: 2 * (K + 1) * C * M)
        let n = tiling.tileRows
        tiling.forEach(scratchPerRow: 2 * C + M) { _, b, tile, scratch in
            let xb = x.data + b * T * C, yb = y.data + b * T * C
            let tileInside = tile.lowerBound >= 0 && tile.upperBound <= T
            let tapsInside = tile.lowerBound - padding >= 0 && tile.upperBound + padding <= T
            // xa (n, C): relu of the rows one tap reads (zeros past the ends); h (n, M): the inner
            // activation; yt (n, C): the output tile when it reaches past the output.
            let xa = scratch, h = scratch + n * C
            let yt = tileInside ? yb + tile.lowerBound * C : h + n * M
            initializeRows(h, rows: n, columns: M, bias: innerBias.data, residual: nil)
            for k in 0..<K {
                let first = tile.lowerBound - padding + k * dilation   // input row of the tile's row 0
                if tileInside && tapsInside {
                    let src = xb + first * C
                    for i in 0..<n * C { xa[i] = Swift.max(src[i], 0) }
                } else {
                    for i in 0..<n {
                        let t = tile.lowerBound + i, src = first + i, dst = xa + i * C
                        if t >= 0 && t < T && src >= 0 && src < T {
                            let row = xb + src * C
                            for c in 0..<C { dst[c] = Swift.max(row[c], 0) }
                        } else {
                            dst.update(repeating: 0, count: C)
                        }
                    }
                }
                tileProduct(m: n, n: M, k: C, a: xa, lda: C, b: innerWeight.data + k * C * M, ldb: M, c: h, ldc: M)
            }
            for i in 0..<n * M { h[i] = Swift.max(h[i], 0) }
            let valid = tile.clamped(to: 0..<T)
            if !tileInside { yt.update(repeating: 0, count: n * C) }
            initializeRows(yt + (valid.lowerBound - tile.lowerBound) * C, rows: valid.count, columns: C,
                           bias: outerBias.data, residual: xb + valid.lowerBound * C)
            tileProduct(m: n, n: C, k: M, a: h, lda: M, b: outerWeight.data, ldb: C, c: yt, ldc: C)
            if !tileInside {
                (yb + valid.lowerBound * C).update(from: yt + (valid.lowerBound - tile.lowerBound) * C, count: valid.count * C)
            }
        }
        return y
    }

    /// Transposed convolution `y[b, t·stride − padding + k·dilation] += x[b, t] @ weight[k]`, plus
    /// bias. `x (B, T, Cin)`, `weight (K, Cin, Cout)`, result `(B, (T−1)·stride − 2·padding +
    /// dilation·(K−1) + 1, Cout)`; kernel 4, stride 2, padding 1 doubles the length.
    public static func convTranspose1d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1,
                                       padding: Int = 0, dilation: Int = 1, origin: Int = 0) -> Tensor {
        checkConv("convTranspose1d", x, weight, bias, stride: stride, padding: padding, dilation: dilation)
        precondition(origin >= 0, "convTranspose1d: origin \(origin) is negative")
        let (B, T, Cin) = (x.shape[0], x.shape[1], x.shape[2])
        let (K, Cout) = (weight.shape[0], weight.shape[2])
        let Tout = convTranspose1dOutputLength(T, kernel: K, stride: stride, padding: padding, dilation: dilation)
        precondition(Tout > 0, "convTranspose1d: output length \(Tout) from input length \(T) is not positive")
        let geo = ConvGeometry(kernel: K, stride: stride, padding: padding, dilation: dilation)
        let y = Tensor(uninitializedShape: [B, Tout, Cout])
        // Tiles of output rows, so that no two tiles scatter into the same row.
        let tiling = ConvTiling(items: B, rows: Tout, origin: origin * stride, channels: Swift.max(Cin, Cout),
                                flopsPerRow: 2 * K * Cin * Cout / stride)
        let n = tiling.tileRows
        // scratch: a (≤ n, Cin) the input rows of one tap, zero-padded past the input; yt (n, Cout)
        // the output tile when it reaches past the output.
        tiling.forEach(scratchPerRow: Cin + Cout) { _, b, tile, scratch in
            let xb = x.data + b * T * Cin, yb = y.data + b * Tout * Cout
            let tileInside = tile.lowerBound >= 0 && tile.upperBound <= Tout
            let at = scratch, yt = tileInside ? yb + tile.lowerBound * Cout : scratch + n * Cin
            let valid = tile.clamped(to: 0..<Tout)
            if !tileInside { yt.update(repeating: 0, count: n * Cout) }
            initializeRows(yt + (valid.lowerBound - tile.lowerBound) * Cout, rows: valid.count, columns: Cout,
                           bias: bias?.data, residual: nil)
            for k in 0..<K {
                // Input rows whose scatter lands in the tile, as if the input went on forever: the
                // same count for every tile of the grid.
                let tap = geo.tap(k, dense: ConvGeometry.unbounded, sparse: tile)
                guard tap.rows > 0 else { continue }
                var a = UnsafePointer(xb + tap.lo * Cin)
                if !(tileInside && tap.lo >= 0 && tap.hi <= T) {
                    for i in 0..<tap.rows {
                        let t = tap.lo + i, dst = at + i * Cin
                        let out = tap.start + i * stride   // output row this input row lands on
                        if t >= 0 && t < T && out >= 0 && out < Tout {
                            dst.update(from: xb + t * Cin, count: Cin)
                        } else {
                            dst.update(repeating: 0, count: Cin)
                        }
                    }
                    a = UnsafePointer(at)
                }
                tileProduct(m: tap.rows, n: Cout, k: Cin, a: a, lda: Cin, b: weight.data + k * Cin * Cout, ldb: Cout,
                            c: yt + (tap.start - tile.lowerBound) * Cout, ldc: stride * Cout)
            }
            if !tileInside {
                (yb + valid.lowerBound * Cout).update(from: yt + (valid.lowerBound - tile.lowerBound) * Cout,
                                                      count: valid.count * Cout)
            }
        }
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return record(.convTranspose1d, output: y, inputs: inputs) { _, g in
            let dY = g.data
            let dX = x.requiresGrad ? x.gradAccumulator() : nil
            // Tiles of input rows: each tile owns its rows of dX and gathers every tap's share.
            let tiling = ConvTiling(items: B, rows: T, channels: Swift.max(Cin, Cout), flopsPerRow: 4 * K * Cin * Cout)
            let dWParts = weight.requiresGrad ? Tensor.zeros([tiling.runs, K, Cin, Cout]) : nil
            tiling.forEach(scratchPerRow: 0) { run, b, tile, _ in
                let rows = tile.clamped(to: 0..<T)
                for k in 0..<K {
                    let tap = geo.tap(k, dense: rows, sparse: 0..<Tout)
                    guard tap.rows > 0 else { continue }
                    let dYk = dY + (b * Tout + tap.start) * Cout
                    if let dX {   // dX[t] += dY[rows] @ W[k]ᵀ
                        tileProduct(transB: true, m: tap.rows, n: Cin, k: Cout, a: dYk, lda: stride * Cout,
                                    b: weight.data + k * Cin * Cout, ldb: Cout, c: dX + (b * T + tap.lo) * Cin, ldc: Cin)
                    }
                    if let dWParts {   // dW[k] += x[t]ᵀ @ dY[rows]
                        tileProduct(transA: true, m: Cin, n: Cout, k: tap.rows, a: x.data + (b * T + tap.lo) * Cin, lda: Cin,
                                    b: dYk, ldb: stride * Cout, c: dWParts.data + (run * K + k) * Cin * Cout, ldc: Cout)
                    }
                }
            }
            if let dWParts { addParts(dWParts, into: weight) }
            if let bias, bias.requiresGrad {
                Kernels.addColumnSums(dY, rows: B * Tout, columns: Cout, into: bias.gradAccumulator())
            }
        }
    }

    /// `y (rows, columns) = residual + bias`, either of which may be absent (then zeros).
    private static func initializeRows(_ y: UnsafeMutablePointer<Float>, rows: Int, columns: Int,
                                       bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?) {
        switch (bias, residual) {
        case let (bias?, residual?):
            for r in 0..<rows {
                let yr = y + r * columns, rr = residual + r * columns
                for c in 0..<columns { yr[c] = rr[c] + bias[c] }
            }
        case let (bias?, nil):
            for r in 0..<rows { (y + r * columns).update(from: bias, count: columns) }
        case let (nil, residual?):
            y.update(from: residual, count: rows * columns)
        case (nil, nil):
            y.update(repeating: 0, count: rows * columns)
        }
    }

    /// Adds the per-run weight gradients `parts (runs, K, Cin, Cout)` into `weight`'s gradient,
    /// in run order, so the sum does not depend on which thread finished first.
    private static func addParts(_ parts: Tensor, into weight: Tensor) {
        let dW = weight.gradAccumulator()
        for r in 0..<parts.shape[0] { Kernels.addInPlace(dW, parts.data + r * weight.count, count: weight.count) }
    }

    /// `C += op(A) @ op(B)` on the calling thread (tiles are already spread over the cores).
    @inline(__always)
    private static func tileProduct(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                                    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                    c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), b, Int32(ldb), 1, c, Int32(ldc))
    }
}

/// A split of `items` × `rows` rows into tiles of `tileRows` rows on a grid fixed to the whole
/// signal, and of the tiles into runs of consecutive tiles for the cores.
struct ConvTiling {
    let rows: Int, tileRows: Int, tilesPerItem: Int, tiles: Int
    /// Local row where the first tile starts (≤ 0): tiles start on multiples of `tileRows`
    /// counted from the whole signal's row 0, which is `origin` rows before this row 0.
    let firstRow: Int
    /// How many runs `forEach` makes (1 when the work is too small to share).
    let runs: Int

    /// Tiles of `rows` rows whose widest side has `channels` floats per row; `origin` is the
    /// position of row 0 in the whole signal.
    init(items: Int, rows: Int, origin: Int = 0, channels: Int, flopsPerRow: Int) {
        Threading.configure()
        self.rows = rows
        // 32 KiB per tile of rows (and per tap's rows on the other side) stays in cache across
        // the taps. Tiles of 64 KiB took 8% longer in a 10 s decode. The size depends on the
        // channels alone, so a window of a signal and the whole signal use the same grid.
        tileRows = Swift.max(16, (1 << 13) / Swift.max(channels, 1))
        firstRow = -(origin % tileRows)
        tilesPerItem = (rows - firstRow + tileRows - 1) / tileRows
        tiles = items * tilesPerItem
        // Several runs per core, so a core slowed by another process takes fewer of them. Small
        // convolutions (and OpenBLAS's own threading) run inline.
        let work = Double(items) * Double(rows) * Double(flopsPerRow)
        runs = Threading.nativeBLAS || work < Double(1 << 23) ? 1 : Swift.min(tiles, 4 * Parallel.coreCount)
    }

    /// Calls `body(run, item, tile, scratch)` for every tile, on every core when there are
    /// several runs. `tile` is the tile's whole range of local rows, `tileRows` long; at the
    /// ends it reaches below 0 or past `rows` (clamp it for the rows that exist). `scratch`
    /// holds `scratchPerRow` floats per tile row and belongs to the run.
    func forEach(scratchPerRow: Int, _ body: (Int, Int, Range<Int>, UnsafeMutablePointer<Float>) -> Void) {
        func run(_ r: Int) {
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(1, tileRows * scratchPerRow))
            defer { scratch.deallocate() }
            for i in (r * tiles / runs)..<((r + 1) * tiles / runs) {
                let t0 = firstRow + (i % tilesPerItem) * tileRows
                body(r, i / tilesPerItem, t0..<(t0 + tileRows), scratch)
            }
        }
        if runs == 1 { run(0) } else { DispatchQueue.concurrentPerform(iterations: runs, execute: run) }
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
