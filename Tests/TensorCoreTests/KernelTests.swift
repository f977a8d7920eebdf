// Fast kernels against their naive Double references on random shapes, odd sizes included.

import XCTest
import TensorCore

final class KernelTests: XCTestCase {
    func testMatmulAgainstReference() {
        var d = TestData(seed: 11)
        for (m, n, k) in [(1, 1, 1), (7, 5, 3), (33, 17, 65), (64, 1, 129)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = d.floats(m * k), b = d.floats(k * n)
                let at = Tensor(a, shape: ta ? [k, m] : [m, k]), bt = Tensor(b, shape: tb ? [n, k] : [k, n])
                let c = Tensor.matmul(at, bt, transposeA: ta, transposeB: tb)
                let ref = Kernels.referenceMatmul(a, b, m: m, n: n, k: k, transA: ta, transB: tb)
                XCTAssertEqual(c.shape, [m, n])
                XCTAssertLessThan(maxAbsDiff(c.array, ref), 1e-4 * Float(k).squareRoot(), "m \(m) n \(n) k \(k) ta \(ta) tb \(tb)")
            }
        }
    }

    func testBatchedMatmulAgainstReference() {
        var d = TestData(seed: 12)
        let (batch, m, n, k) = (3, 5, 7, 9)
        let a = d.floats(batch * m * k), b = d.floats(batch * k * n)
        let c = Tensor.matmul(Tensor(a, shape: [batch, m, k]), Tensor(b, shape: [batch, k, n]))
        for i in 0..<batch {
            let ref = Kernels.referenceMatmul(Array(a[(i * m * k)..<((i + 1) * m * k)]), Array(b[(i * k * n)..<((i + 1) * k * n)]),
                                              m: m, n: n, k: k)
            XCTAssertLessThan(maxAbsDiff(Array(c.array[(i * m * n)..<((i + 1) * m * n)]), ref), 1e-4)
        }
    }

    func testConv1dAgainstReference() {
        var d = TestData(seed: 13)
        // (B, T, Cin, Cout, K, stride, padding, dilation)
        let cases = [(1, 1, 1, 1, 1, 1, 0, 1), (2, 17, 3, 5, 3, 1, 1, 1), (2, 40, 4, 3, 3, 1, 9, 9),
                     (3, 33, 5, 2, 4, 2, 1, 1), (1, 64, 7, 9, 3, 1, 27, 27), (2, 13, 2, 3, 5, 3, 2, 2),
                     (1, 10, 3, 4, 3, 1, 0, 4)]
        for (B, T, Cin, Cout, K, s, p, dil) in cases {
            let x = d.floats(B * T * Cin), w = d.floats(K * Cin * Cout), b = d.floats(Cout)
            let y = Tensor.conv1d(Tensor(x, shape: [B, T, Cin]), weight: Tensor(w, shape: [K, Cin, Cout]),
                                  bias: Tensor(b, shape: [Cout]), stride: s, padding: p, dilation: dil)
            let ref = Kernels.referenceConv1d(x: x, B: B, T: T, Cin: Cin, weight: w, K: K, Cout: Cout, bias: b,
                                              stride: s, padding: p, dilation: dil)
            XCTAssertEqual(y.count, ref.count)
            XCTAssertLessThan(maxAbsDiff(y.array, ref), 1e-4, "case \([B, T, Cin, Cout, K, s, p, dil])")
        }
    }

    /// The fused forms against the reference on relu(x), plus the residual; the long cases span
    /// several tiles and run on several threads.
    func testConv1dWithReluInputAndResidualAgainstReference() {
        var d = TestData(seed: 16)
        // (B, T, Cin, Cout, K, stride, padding, dilation)
        let cases = [(2, 17, 3, 5, 3, 1, 1, 1), (1, 64, 7, 9, 3, 1, 27, 27), (3, 33, 5, 2, 1, 1, 0, 1),
                     (2, 5000, 16, 16, 3, 1, 9, 9), (2, 4001, 24, 8, 1, 1, 0, 1)]
        for (B, T, Cin, Cout, K, s, p, dil) in cases {
            let Tout = Tensor.conv1dOutputLength(T, kernel: K, stride: s, padding: p, dilation: dil)
            let x = d.floats(B * T * Cin), w = d.floats(K * Cin * Cout), b = d.floats(Cout), r = d.floats(B * Tout * Cout)
            let y = Tensor.conv1d(Tensor(x, shape: [B, T, Cin]), weight: Tensor(w, shape: [K, Cin, Cout]),
                                  bias: Tensor(b, shape: [Cout]), stride: s, padding: p, dilation: dil,
                                  inputActivation: .relu, residual: Tensor(r, shape: [B, Tout, Cout]))
            let conv = Kernels.referenceConv1d(x: x.map { Swift.max($0, 0) }, B: B, T: T, Cin: Cin, weight: w, K: K,
                                               Cout: Cout, bias: b, stride: s, padding: p, dilation: dil)
            let ref = zip(conv, r).map { $0 + $1 }
            XCTAssertEqual(y.count, ref.count)
            XCTAssertLessThan(maxAbsDiff(y.array, ref), 1e-4 * Float(K * Cin).squareRoot(), "case \([B, T, Cin, Cout, K, s, p, dil])")
        }
    }

    /// The residual block's one-pass inference against the naive convolutions, and against its
    /// recorded form (two fused conv1d calls).
    func testResidualBlockAgainstReference() {
        var d = TestData(seed: 18)
        // (B, T, C, M, K, dilation); the long case spans many tiles on several threads.
        for (B, T, C, M, K, dil) in [(2, 17, 3, 5, 3, 1), (1, 40, 4, 6, 3, 27), (2, 5000, 16, 12, 3, 9)] {
            let x = d.floats(B * T * C), w3 = d.floats(K * C * M), b3 = d.floats(M), w1 = d.floats(M * C), b1 = d.floats(C)
            let h = Kernels.referenceConv1d(x: x.map { Swift.max($0, 0) }, B: B, T: T, Cin: C, weight: w3, K: K, Cout: M,
                                            bias: b3, stride: 1, padding: dil * (K - 1) / 2, dilation: dil)
            let branch = Kernels.referenceConv1d(x: h.map { Swift.max($0, 0) }, B: B, T: T, Cin: M, weight: w1, K: 1,
                                                 Cout: C, bias: b1, stride: 1, padding: 0, dilation: 1)
            let ref = zip(x, branch).map { $0 + $1 }
            let params = [Tensor(w3, shape: [K, C, M]), Tensor(b3, shape: [M]), Tensor(w1, shape: [1, M, C]), Tensor(b1, shape: [C])]
            func block() -> Tensor {
                Tensor.residualBlock(Tensor(x, shape: [B, T, C]), innerWeight: params[0], innerBias: params[1], dilation: dil,
                                     outerWeight: params[2], outerBias: params[3])
            }
            let name = "case \([B, T, C, M, K, dil])"
            let inference = block()
            XCTAssertLessThan(maxAbsDiff(inference.array, ref), 1e-4 * Float(K * C * M).squareRoot(), name)
            for p in params { p.requiresGrad = true }
            let recorded = block()
            XCTAssertTrue(recorded.hasHistory, name)
            XCTAssertLessThan(maxAbsDiff(recorded.array, inference.array), 1e-5 * Float(K * C * M).squareRoot(), name)
        }
    }

    /// A window of a signal run with its `origin` gives, for every output row whose inputs all
    /// lie inside the window, exactly the whole signal's row (bit for bit), for windows that
    /// start and end anywhere on the stride's grid. Tile sizes here are not powers of two
    /// (40 channels: 204-row tiles), and the windows cut tiles at both ends.
    func testWindowsWithOriginEqualTheWholeSignal() {
        var d = TestData(seed: 19)
        let (T, Cin, Cout) = (1500, 24, 40)
        let x = d.floats(T * Cin), w3 = d.floats(3 * Cin * Cout), w4 = d.floats(4 * Cin * Cout), b = d.floats(Cout)
        let wInner = d.floats(3 * Cin * Cout), bInner = d.floats(Cout), wOuter = d.floats(Cout * Cin), bOuter = d.floats(Cin)
        func window(_ lo: Int, _ hi: Int) -> Tensor { Tensor(Array(x[(lo * Cin)..<(hi * Cin)]), shape: [1, hi - lo, Cin]) }
        func rows(_ t: Tensor, _ r: Range<Int>, _ C: Int) -> [UInt32] { t.array[(r.lowerBound * C)..<(r.upperBound * C)].map(\.bitPattern) }
        // (stride, padding, dilation, relu): a dilated conv, a strided one, and the fused relu form.
        for (s, p, dil, relu) in [(1, 9, 9, false), (2, 1, 1, false), (1, 3, 3, true)] {
            let K = s == 2 ? 4 : 3, w = s == 2 ? w4 : w3
            func conv(_ input: Tensor, origin: Int) -> Tensor {
                Tensor.conv1d(input, weight: Tensor(w, shape: [K, Cin, Cout]), bias: Tensor(b, shape: [Cout]), stride: s,
                              padding: p, dilation: dil, inputActivation: relu ? .relu : .none, origin: origin)
            }
            let whole = conv(window(0, T), origin: 0)
            for (lo, hi) in [(2, 1498), (410, 1000), (618, 1222), (1000, 1500)] {
                let part = conv(window(lo, hi), origin: lo)
                // Output rows of the window whose taps all read inside it.
                let inside = ((p + s - 1) / s)..<((hi - lo - 1 - (K - 1) * dil + p) / s + 1)
                XCTAssertEqual(rows(part, inside, Cout), rows(whole, (inside.lowerBound + lo / s)..<(inside.upperBound + lo / s), Cout),
                               "conv1d stride \(s) dilation \(dil) relu \(relu), window \(lo)..<\(hi)")
            }
        }
        do {   // The transposed convolution of the decoder: kernel 4, stride 2, padding 1.
            func convT(_ input: Tensor, origin: Int) -> Tensor {
                Tensor.convTranspose1d(input, weight: Tensor(w4, shape: [4, Cin, Cout]), bias: Tensor(b, shape: [Cout]),
                                       stride: 2, padding: 1, origin: origin)
            }
            let whole = convT(window(0, T), origin: 0)
            for (lo, hi) in [(1, 1499), (333, 1000), (700, 1500)] {
                let part = convT(window(lo, hi), origin: lo)
                let inside = 3..<(2 * (hi - lo) - 3)   // rows fed by window rows only
                XCTAssertEqual(rows(part, inside, Cout), rows(whole, (inside.lowerBound + 2 * lo)..<(inside.upperBound + 2 * lo), Cout),
                               "convTranspose1d window \(lo)..<\(hi)")
            }
        }
        do {   // The residual block's one-pass inference.
            func block(_ input: Tensor, origin: Int) -> Tensor {
                Tensor.residualBlock(input, innerWeight: Tensor(wInner, shape: [3, Cin, Cout]), innerBias: Tensor(bInner, shape: [Cout]),
                                     dilation: 27, outerWeight: Tensor(wOuter, shape: [1, Cout, Cin]),
                                     outerBias: Tensor(bOuter, shape: [Cin]), origin: origin)
            }
            let whole = block(window(0, T), origin: 0)
            for (lo, hi) in [(5, 1490), (400, 1111)] {
                let part = block(window(lo, hi), origin: lo)
                let inside = 27..<(hi - lo - 27)
                XCTAssertEqual(rows(part, inside, Cin), rows(whole, (inside.lowerBound + lo)..<(inside.upperBound + lo), Cin),
                               "residualBlock window \(lo)..<\(hi)")
            }
        }
    }

    /// Gradients of the tiled backward on inputs long enough for many tiles on several threads,
    /// against direct sums: dW[k] = Σₜ act(x)[partner]ᵀ g[t], dX[i] = act′(x[i]) Σ g[t] W[k]ᵀ over
    /// the (t, k) that read row i, and the residual's gradient is g itself.
    func testConvGradientsOnLongInputsAgainstDirectSums() {
        var d = TestData(seed: 17)
        // (B, T, Cin, Cout, K, stride, padding, dilation, relu, transposed)
        let cases = [(2, 3000, 16, 12, 3, 1, 9, 9, true, false), (2, 5000, 8, 16, 4, 2, 1, 1, false, false),
                     (2, 2000, 12, 16, 4, 2, 1, 1, false, true)]
        for (B, T, Cin, Cout, K, s, p, dil, relu, transposed) in cases {
            let x = d.normal([B, T, Cin]), w = d.normal([K, Cin, Cout])
            let Tout = transposed ? Tensor.convTranspose1dOutputLength(T, kernel: K, stride: s, padding: p, dilation: dil)
                : Tensor.conv1dOutputLength(T, kernel: K, stride: s, padding: p, dilation: dil)
            let residual = relu ? d.normal([B, Tout, Cout]) : nil
            let y = transposed ? Tensor.convTranspose1d(x, weight: w, bias: nil, stride: s, padding: p, dilation: dil)
                : Tensor.conv1d(x, weight: w, bias: nil, stride: s, padding: p, dilation: dil,
                                inputActivation: relu ? .relu : .none, residual: residual)
            let g = d.normal([B, Tout, Cout], grad: false)
            y.backward(gradient: g)

            var dW = [Double](repeating: 0, count: K * Cin * Cout), dX = [Double](repeating: 0, count: B * T * Cin)
            for b in 0..<B {
                for k in 0..<K {
                    // Pairs (input row i, output row j) joined by tap k.
                    for t in 0..<(transposed ? T : Tout) {
                        let partner = t * s - p + k * dil
                        guard partner >= 0 && partner < (transposed ? Tout : T) else { continue }
                        let (i, j) = transposed ? (t, partner) : (partner, t)
                        let xi = (0..<Cin).map { ci -> Float in
                            let v = x.data[(b * T + i) * Cin + ci]
                            return relu ? Swift.max(v, 0) : v
                        }
                        for ci in 0..<Cin {
                            for co in 0..<Cout {
                                let gj = Double(g.data[(b * Tout + j) * Cout + co])
                                dW[(k * Cin + ci) * Cout + co] += Double(xi[ci]) * gj
                                if !relu || x.data[(b * T + i) * Cin + ci] > 0 {
                                    dX[(b * T + i) * Cin + ci] += gj * Double(w.data[(k * Cin + ci) * Cout + co])
                                }
                            }
                        }
                    }
                }
            }
            let name = "case \([B, T, Cin, Cout, K, s, p, dil]) relu \(relu) transposed \(transposed)"
            XCTAssertLessThan(maxAbsDiff(w.grad!.array, dW.map { Float($0) }), 2e-3 * Float(B * T).squareRoot(), name)
            XCTAssertLessThan(maxAbsDiff(x.grad!.array, dX.map { Float($0) }), 1e-4 * Float(K * Cout).squareRoot(), name)
            if let residual { XCTAssertEqual(residual.grad!.array, g.array, name) }
        }
    }

    func testConvTranspose1dAgainstReference() {
        var d = TestData(seed: 14)
        let cases = [(2, 8, 3, 5, 4, 2, 1, 1), (1, 1, 2, 2, 4, 2, 1, 1), (3, 7, 4, 2, 3, 1, 1, 1),
                     (1, 9, 3, 3, 5, 3, 2, 2), (2, 5, 6, 1, 4, 2, 0, 1), (2, 3000, 16, 16, 4, 2, 1, 1)]
        for (B, T, Cin, Cout, K, s, p, dil) in cases {
            let x = d.floats(B * T * Cin), w = d.floats(K * Cin * Cout), b = d.floats(Cout)
            let y = Tensor.convTranspose1d(Tensor(x, shape: [B, T, Cin]), weight: Tensor(w, shape: [K, Cin, Cout]),
                                           bias: Tensor(b, shape: [Cout]), stride: s, padding: p, dilation: dil)
            let ref = Kernels.referenceConvTranspose1d(x: x, B: B, T: T, Cin: Cin, weight: w, K: K, Cout: Cout, bias: b,
                                                       stride: s, padding: p, dilation: dil)
            XCTAssertEqual(y.count, ref.count)
            XCTAssertLessThan(maxAbsDiff(y.array, ref), 1e-4 * Float(Cin).squareRoot(), "case \([B, T, Cin, Cout, K, s, p, dil])")
        }
        // Jukebox's decoder upsampling: kernel 4, stride 2, padding 1 doubles the length.
        XCTAssertEqual(Tensor.convTranspose1dOutputLength(100, kernel: 4, stride: 2, padding: 1), 200)
    }

    func testAttentionAgainstReference() {
        var d = TestData(seed: 15)
        // (B, Tq, Tk, H, D, causal); 300 > one query chunk. From (3, 300, …) on, the work is
        // large enough to be split over threads: chunks that are not a multiple of the chunk size,
        // Tq < Tk, Tq > Tk (rows with no visible key), and many small batches as in the prior's
        // block-sparse layers.
        for (B, Tq, Tk, H, D, causal) in [(2, 7, 7, 2, 3, true), (1, 300, 300, 1, 8, true), (1, 1, 9, 3, 4, true),
                                          (2, 5, 9, 2, 4, false), (1, 130, 200, 2, 5, true),
                                          (3, 300, 300, 3, 16, true), (2, 260, 390, 2, 24, true),
                                          (2, 200, 150, 2, 16, true), (2, 140, 270, 3, 16, false),
                                          (40, 64, 64, 2, 8, true), (40, 64, 64, 2, 8, false)] {
            let q = d.floats(B * Tq * H * D), k = d.floats(B * Tk * H * D), v = d.floats(B * Tk * H * D)
            let out = Tensor.attention(query: Tensor(q, shape: [B, Tq, H * D]), key: Tensor(k, shape: [B, Tk, H * D]),
                                       value: Tensor(v, shape: [B, Tk, H * D]), heads: H, causal: causal)
            let ref = Tensor.referenceAttention(q: q, k: k, v: v, B: B, Tq: Tq, Tk: Tk, heads: H, D: D) { i, j in
                !causal || j <= i + Tk - Tq
            }
            XCTAssertLessThan(maxAbsDiff(out.array, ref), 1e-4, "case \([B, Tq, Tk, H, D]) causal \(causal)")
        }
    }

    /// The fused backward against naive Double gradients, at shapes whose backward runs one
    /// (batch, head) per thread, besides the small ones the finite-difference table covers.
    func testAttentionGradientsAgainstReference() {
        var d = TestData(seed: 17)
        for (B, Tq, Tk, H, D, causal) in [(1, 300, 300, 1, 8, true), (2, 300, 300, 3, 16, true), (2, 130, 260, 2, 8, true),
                                          (1, 200, 150, 4, 16, true), (2, 140, 270, 3, 16, false),
                                          (40, 64, 64, 2, 8, true)] {
            let q = d.floats(B * Tq * H * D), k = d.floats(B * Tk * H * D), v = d.floats(B * Tk * H * D)
            let g = d.floats(B * Tq * H * D)
            let qt = Tensor(q, shape: [B, Tq, H * D]), kt = Tensor(k, shape: [B, Tk, H * D]), vt = Tensor(v, shape: [B, Tk, H * D])
            for t in [qt, kt, vt] { t.requiresGrad = true }
            Tensor.attention(query: qt, key: kt, value: vt, heads: H, causal: causal)
                .backward(gradient: Tensor(g, shape: [B, Tq, H * D]))
            let ref = Tensor.referenceAttentionGradients(q: q, k: k, v: v, gradOut: g, B: B, Tq: Tq, Tk: Tk, heads: H, D: D) {
                i, j in !causal || j <= i + Tk - Tq
            }
            let name = "case \([B, Tq, Tk, H, D]) causal \(causal)"
            XCTAssertLessThan(maxAbsDiff(qt.grad!.array, ref.dq), 2e-4, "dq " + name)
            XCTAssertLessThan(maxAbsDiff(kt.grad!.array, ref.dk), 2e-4, "dk " + name)
            XCTAssertLessThan(maxAbsDiff(vt.grad!.array, ref.dv), 2e-4, "dv " + name)
        }
    }

    func testLayerNormSoftmaxCrossEntropyAgainstDirectFormulas() {
        var d = TestData(seed: 16)
        let x = d.floats(4 * 33)
        let y = Tensor.layerNorm(Tensor(x, shape: [4, 33]), gamma: Tensor(repeating: 1, shape: [33]),
                                 beta: Tensor(repeating: 0, shape: [33])).array
        for r in 0..<4 {
            let row = x[(r * 33)..<((r + 1) * 33)].map(Double.init)
            let mean = row.reduce(0, +) / 33
            let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 33
            for i in 0..<33 {
                XCTAssertEqual(Double(y[r * 33 + i]), (row[i] - mean) / (variance + 1e-5).squareRoot(), accuracy: 1e-4)
            }
        }
        // Softmax of huge logits stays finite and sums to one.
        let s = Tensor([1000, 1001, 1002, -1000], shape: [1, 4]).softmax().array
        XCTAssertEqual(s.reduce(0, +), 1, accuracy: 1e-6)
        XCTAssertEqual(s[2] / s[1], Float(M_E), accuracy: 1e-3)
        // Cross-entropy equals −log softmax at the target.
        let logits = Tensor(d.floats(12), shape: [3, 4])
        let ce = Tensor.crossEntropy(logits: logits, targets: [1, 3, 0]).item
        let ls = logits.logSoftmax().array
        XCTAssertEqual(ce, -(ls[1] + ls[7] + ls[8]) / 3, accuracy: 1e-5)
    }

    func testBroadcastingShapesAndValues() {
        let a = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])
        XCTAssertEqual((a + Tensor([10, 20, 30], shape: [3])).array, [11, 22, 33, 14, 25, 36])
        XCTAssertEqual((a * Tensor([2, 3], shape: [2, 1])).array, [2, 4, 6, 12, 15, 18])
        XCTAssertEqual((Tensor([1, 2], shape: [2, 1]) - Tensor([1, 2, 3], shape: [1, 3])).array, [0, -1, -2, 1, 0, -1])
        XCTAssertEqual((a / Tensor(scalar: 2)).array, [0.5, 1, 1.5, 2, 2.5, 3])
    }

    func testReductionsAndShapeOps() {
        let a = Tensor(Array(0..<24).map(Float.init), shape: [2, 3, 4])
        XCTAssertEqual(a.sum().item, 276)
        XCTAssertEqual(a.sum(axis: 1).array, [12, 15, 18, 21, 48, 51, 54, 57])
        XCTAssertEqual(a.mean(axis: 2).shape, [2, 3])
        XCTAssertEqual(a.max(axis: 2).values.array, [3, 7, 11, 15, 19, 23])
        let t = a.transposed(0, 2)
        XCTAssertEqual(t.shape, [4, 3, 2])
        XCTAssertEqual(t.array[0..<4], [0, 12, 4, 16])
        XCTAssertEqual(a.slice(axis: 2, 1..<3).array[0..<4], [1, 2, 5, 6])
        let r = Tensor([1, 2, 3], shape: [1, 3, 1]).padded(axis: 1, before: 2, after: 2, mode: .reflect).array
        XCTAssertEqual(r, [3, 2, 1, 2, 3, 2, 1])
        XCTAssertEqual(Tensor.concatenate([Tensor([1, 2], shape: [1, 2]), Tensor([3], shape: [1, 1])], axis: 1).array, [1, 2, 3])
    }
}
