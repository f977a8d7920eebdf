// Long short-term memory over a whole sequence: a fused cell forward and a hand-written backward
// through time, with the parameterisation of Magenta's LSTMBlockCell (MusicVAE).
//
// Shapes: x (B, T, In) the input; H hidden units; G = 4H gate pre-activations per row;
// weight (In + H, G) the kernel applied to [x, h_prev]; bias (G); y (B, T, H) the hidden state
// at every step; h, c (B, H) a state.
//
// Gates lie along G in the order [i, ci, f, o], and the forget gate gets a bias of 1 at run time
// (the stored bias starts at 0); no peepholes, no cell clip:
//
//   cs = tanh(ci)·σ(i) + cs_prev·σ(f + 1),   h = tanh(cs)·σ(o)
//
// Forward. The input's share of every step's gates does not depend on the recurrence, so the
// whole sequence's x @ W[0..<In] + bias is one (B·T × In) @ (In × G) sgemm into the gate buffer
// before the loop. Each step then adds h_prev @ W[In...], a (B × H) @ (H × G) product, into that
// step's rows of the buffer (row stride T·G, no copy) and runs the cell kernel on them, which
// overwrites the pre-activations with the activated gates and writes cs and h. Batch rows never
// interact, so the recurrence is split by batch rows over the cores: each core runs all T steps
// for its rows with its own single-threaded sgemm, and the cores never wait for each other
// between steps. Every buffer is allocated once per call; a step allocates nothing.
//
// Backward. Going back through time, each step turns its activated gates into their gradient dG
// in place (cs comes from the cell buffer, tanh(cs) is recomputed) and takes the recurrent
// gradient dh_prev = dG @ W[In...]ᵀ (on a transpose stored once per call), again per core over
// its batch rows. After the loop the big
// products see all B·T rows at once: dx = dG @ W[0..<In]ᵀ, dW[0..<In] = xᵀ dG,
// dW[In...] = h_prevᵀ dG (h_prev gathered into one buffer), and the bias gradient is the column
// sums of dG.
//
// The final state is returned as two more tensors. They are copies of the last step's h and cs
// whose recorded backward hands their gradient to the sequence's backward (it starts the
// recurrence from it), so one backward pass through time serves all three results.

import Foundation
import CBLAS

/// What ``Tensor/lstm(_:initialHidden:initialCell:weight:bias:reverse:)`` returns.
public struct LSTMOutput {
    /// Hidden state after every step, `(B, T, H)`, in input time order also when reversed.
    public let output: Tensor
    /// Hidden state after the last step processed, `(B, H)`: time T−1, or time 0 when reversed.
    public let finalHidden: Tensor
    /// Cell state after the last step processed, `(B, H)`.
    public let finalCell: Tensor
}

/// What the backward of one LSTM call keeps, and the gradients of its final state, which the
/// final-state tensors' backward leaves here for the sequence's backward.
final class LSTMTape {
    /// (B, T, G): the activated gates [σ(i), tanh(ci), σ(f + 1), σ(o)]; the backward turns them
    /// into the pre-activation gradient dG in place.
    let gates: Tensor
    /// (B, T, H): the cell state cs after each step.
    let cells: Tensor
    /// (B, H) each, when the final state received a gradient.
    var dFinalHidden: Tensor?
    var dFinalCell: Tensor?

    init(gates: Tensor, cells: Tensor) {
        self.gates = gates
        self.cells = cells
    }
}

extension Tensor {
    /// Runs an LSTM layer over `x (B, T, In)` with `weight (In + H, 4H)`, the kernel on
    /// `[x, h_prev]` with gates in the order `[i, ci, f, o]`, and `bias (4H)`, to which the
    /// forget gate adds 1 at run time. `initialHidden` and `initialCell` are `(B, H)`; nil
    /// means zeros. With `reverse` the steps run from time T−1 down to 0 (the backward half
    /// of a bidirectional layer); the output stays in input time order.
    ///
    /// Differentiable with respect to x, the initial state, weight and bias, through every
    /// result (the output sequence and the final hidden and cell states).
    public static func lstm(_ x: Tensor, initialHidden: Tensor? = nil, initialCell: Tensor? = nil,
                            weight: Tensor, bias: Tensor, reverse: Bool = false) -> LSTMOutput {
        precondition(x.rank == 3, "lstm: input \(x.shape) is not (B, T, In)")
        let (B, T, In) = (x.shape[0], x.shape[1], x.shape[2])
        precondition(weight.rank == 2 && weight.shape[1] % 4 == 0 && weight.shape[0] == In + weight.shape[1] / 4,
                     "lstm: weight \(weight.shape) is not (In + H, 4H) for input size \(In)")
        let H = weight.shape[1] / 4, G = 4 * H
        precondition(T >= 1 && H >= 1, "lstm: needs at least one step and one unit, got T \(T), H \(H)")
        precondition(bias.shape == [G], "lstm: bias \(bias.shape) does not fit weight \(weight.shape)")
        for (name, state) in [("initialHidden", initialHidden), ("initialCell", initialCell)] {
            if let state { precondition(state.shape == [B, H], "lstm: \(name) \(state.shape) is not \([B, H])") }
        }
        let y = Tensor(uninitializedShape: [B, T, H])
        let tape = LSTMTape(gates: Tensor(uninitializedShape: [B, T, G]), cells: Tensor(uninitializedShape: [B, T, H]))
        Kernels.lstmForward(x: x.data, h0: initialHidden?.data, c0: initialCell?.data, weight: weight.data, bias: bias.data,
                            B: B, T: T, In: In, H: H, reverse: reverse,
                            y: y.data, gates: tape.gates.data, cells: tape.cells.data)
        let last = reverse ? 0 : T - 1
        let hT = Tensor(uninitializedShape: [B, H]), cT = Tensor(uninitializedShape: [B, H])
        for b in 0..<B {
            (hT.data + b * H).update(from: y.data + (b * T + last) * H, count: H)
            (cT.data + b * H).update(from: tape.cells.data + (b * T + last) * H, count: H)
        }

        var inputs = [x, weight, bias]
        if let initialHidden { inputs.append(initialHidden) }
        if let initialCell { inputs.append(initialCell) }
        _ = record(.lstm, output: y, inputs: inputs) { y, g in
            let dX = x.requiresGrad ? x.gradAccumulator() : nil
            let dH0 = initialHidden.flatMap { $0.requiresGrad ? $0.gradAccumulator() : nil }
            let dC0 = initialCell.flatMap { $0.requiresGrad ? $0.gradAccumulator() : nil }
            let dW = weight.requiresGrad ? weight.gradAccumulator() : nil
            let dBias = bias.requiresGrad ? bias.gradAccumulator() : nil
            Kernels.lstmBackward(dY: g.data, dFinalHidden: tape.dFinalHidden?.data, dFinalCell: tape.dFinalCell?.data,
                                 x: x.data, h0: initialHidden?.data, c0: initialCell?.data, weight: weight.data,
                                 y: y.data, gates: tape.gates.data, cells: tape.cells.data,
                                 B: B, T: T, In: In, H: H, reverse: reverse,
                                 dX: dX, dH0: dH0, dC0: dC0, dWeight: dW, dBias: dBias)
        }
        // The final state's gradient goes to the sequence's backward, which runs after these
        // (the sequence is their input). It needs a gradient of its own to run at all.
        let handOver: (Tensor, Tensor, ReferenceWritableKeyPath<LSTMTape, Tensor?>) -> Void = { final, y, path in
            record("lstmFinalState", output: final, inputs: [y]) { _, g in
                tape[keyPath: path] = g
                _ = y.gradAccumulator()
            }
        }
        handOver(hT, y, \.dFinalHidden)
        handOver(cT, y, \.dFinalCell)
        return LSTMOutput(output: y, finalHidden: hT, finalCell: cT)
    }
}

extension Kernels {
    /// Fused LSTM forward over raw buffers (see the file comment). `x (B, T, In)`, `h0` and `c0`
    /// `(B, H)` or nil for zeros, `weight (In + H, 4H)`, `bias (4H)`; writes `y (B, T, H)`, the
    /// activated gates `gates (B, T, 4H)` and the cell states `cells (B, T, H)`.
    public static func lstmForward(x: UnsafePointer<Float>, h0: UnsafePointer<Float>?, c0: UnsafePointer<Float>?,
                                   weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                   B: Int, T: Int, In: Int, H: Int, reverse: Bool,
                                   y: UnsafeMutablePointer<Float>, gates: UnsafeMutablePointer<Float>,
                                   cells: UnsafeMutablePointer<Float>) {
        let G = 4 * H
        // The input's share of every step at once: gates (B·T, G) = bias + x @ W[0..<In].
        for r in 0..<(B * T) { (gates + r * G).update(from: bias, count: G) }
        sgemm(m: B * T, n: G, k: In, a: x, lda: In, b: weight, ldb: G, beta: 1, c: gates, ldc: G)
        let wh = weight + In * G   // (H, G)
        forEachBatchSlice(B) { rows in
            let (b0, nb) = (rows.lowerBound, rows.count)
            for s in 0..<T {
                let t = reverse ? T - 1 - s : s, tPrev = reverse ? t + 1 : t - 1
                let g = gates + (b0 * T + t) * G   // (nb, G), row stride T·G
                // h_prev and cs_prev (nb, H) with their row strides; nil at the first step
                // without an initial state (zeros, which add nothing).
                let hPrev = s == 0 ? h0.map { $0 + b0 * H } : UnsafePointer(y + (b0 * T + tPrev) * H)
                let cPrev = s == 0 ? c0.map { $0 + b0 * H } : UnsafePointer(cells + (b0 * T + tPrev) * H)
                let prevStride = s == 0 ? H : T * H
                if let hPrev {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(nb), Int32(G), Int32(H),
                                1, hPrev, Int32(prevStride), wh, Int32(G), 1, g, Int32(T * G))
                }
                for b in 0..<nb {
                    let row = (b0 + b) * T + t
                    lstmCellForward(gates: gates + row * G, cellPrev: cPrev.map { $0 + b * prevStride },
                                    cell: cells + row * H, hidden: y + row * H, H: H)
                }
            }
        }
    }

    /// Backward through time of ``lstmForward``. `dY (B, T, H)` is the output's gradient,
    /// `dFinalHidden` and `dFinalCell` `(B, H)` the final state's (nil for none). Consumes
    /// `gates` (turned into dG in place). Adds into every gradient buffer that is not nil:
    /// `dX (B, T, In)`, `dH0`, `dC0 (B, H)`, `dWeight (In + H, 4H)`, `dBias (4H)`.
    public static func lstmBackward(dY: UnsafePointer<Float>, dFinalHidden: UnsafePointer<Float>?,
                                    dFinalCell: UnsafePointer<Float>?,
                                    x: UnsafePointer<Float>, h0: UnsafePointer<Float>?, c0: UnsafePointer<Float>?,
                                    weight: UnsafePointer<Float>, y: UnsafePointer<Float>,
                                    gates: UnsafeMutablePointer<Float>, cells: UnsafePointer<Float>,
                                    B: Int, T: Int, In: Int, H: Int, reverse: Bool,
                                    dX: UnsafeMutablePointer<Float>?, dH0: UnsafeMutablePointer<Float>?,
                                    dC0: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?,
                                    dBias: UnsafeMutablePointer<Float>?) {
        let G = 4 * H
        // whT (G, H): W[In...]ᵀ stored once per call. OpenBLAS ran the per-step dG @ W[In...]ᵀ
        // with a transposed operand at a third of the speed of the plain product on a stored
        // transpose (32 × 256 × 1024 on one core: 20-31 against 64-76 GFLOP/s).
        let whT = UnsafeMutablePointer<Float>.allocate(capacity: G * H)
        defer { whT.deallocate() }
        transpose(weight + In * G, rows: H, columns: G, into: whT)
        forEachBatchSlice(B) { rows in
            let (b0, nb) = (rows.lowerBound, rows.count)
            // dhNext (nb, H): the gradient reaching this step's h from the next step; dc (nb, H):
            // the gradient of this step's cs from the next step, then of cs_prev.
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * nb * H)
            defer { scratch.deallocate() }
            let dhNext = scratch, dc = scratch + nb * H
            if let dFinalHidden { dhNext.update(from: dFinalHidden + b0 * H, count: nb * H) } else { dhNext.update(repeating: 0, count: nb * H) }
            if let dFinalCell { dc.update(from: dFinalCell + b0 * H, count: nb * H) } else { dc.update(repeating: 0, count: nb * H) }
            for s in stride(from: T - 1, through: 0, by: -1) {
                let t = reverse ? T - 1 - s : s, tPrev = reverse ? t + 1 : t - 1
                let cPrev = s == 0 ? c0.map { $0 + b0 * H } : cells + (b0 * T + tPrev) * H
                let prevStride = s == 0 ? H : T * H
                for b in 0..<nb {
                    let row = (b0 + b) * T + t
                    lstmCellBackward(gates: gates + row * G, cell: cells + row * H, cellPrev: cPrev.map { $0 + b * prevStride },
                                     dHidden: dY + row * H, dHiddenNext: dhNext + b * H, dCell: dc + b * H, H: H)
                }
                // dh_prev (nb, H) = dG (nb, G) @ W[In...]ᵀ, needed before the first step only for h0.
                if s > 0 || dH0 != nil {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(nb), Int32(H), Int32(G),
                                1, gates + (b0 * T + t) * G, Int32(T * G), whT, Int32(H), 0, dhNext, Int32(H))
                }
            }
            if let dH0 { addInPlace(dH0 + b0 * H, dhNext, count: nb * H) }
            if let dC0 { addInPlace(dC0 + b0 * H, dc, count: nb * H) }
        }
        let dG = UnsafePointer(gates)   // (B·T, G)
        if let dX {
            sgemm(transB: true, m: B * T, n: In, k: G, a: dG, lda: G, b: weight, ldb: G, beta: 1, c: dX, ldc: In)
        }
        if let dWeight {
            sgemm(transA: true, m: In, n: G, k: B * T, a: x, lda: In, b: dG, ldb: G, beta: 1, c: dWeight, ldc: G)
            // hPrev (B, T, H): the state each step read, so dW[In...] is one product over all rows.
            let hPrev = UnsafeMutablePointer<Float>.allocate(capacity: B * T * H)
            defer { hPrev.deallocate() }
            for b in 0..<B {
                for t in 0..<T {
                    let first = reverse ? t == T - 1 : t == 0, tPrev = reverse ? t + 1 : t - 1
                    let dst = hPrev + (b * T + t) * H
                    if !first {
                        dst.update(from: y + (b * T + tPrev) * H, count: H)
                    } else if let h0 {
                        dst.update(from: h0 + b * H, count: H)
                    } else {
                        dst.update(repeating: 0, count: H)
                    }
                }
            }
            sgemm(transA: true, m: H, n: G, k: B * T, a: hPrev, lda: H, b: dG, ldb: G, beta: 1, c: dWeight + In * G, ldc: G)
        }
        if let dBias { addColumnSums(dG, rows: B * T, columns: G, into: dBias) }
    }

    /// `dst (columns, rows)` = `src (rows, columns)`ᵀ, in 16 × 16 blocks that stay in cache.
    private static func transpose(_ src: UnsafePointer<Float>, rows: Int, columns: Int, into dst: UnsafeMutablePointer<Float>) {
        for r0 in stride(from: 0, to: rows, by: 16) {
            for c0 in stride(from: 0, to: columns, by: 16) {
                for r in r0..<Swift.min(rows, r0 + 16) {
                    for c in c0..<Swift.min(columns, c0 + 16) { dst[c * rows + r] = src[r * columns + c] }
                }
            }
        }
    }

    /// Runs `body` on slices of the batch rows, one per core when the batch is large enough.
    /// Rows of an LSTM never interact, so each slice runs every step on its own.
    private static func forEachBatchSlice(_ B: Int, _ body: (Range<Int>) -> Void) {
        Threading.configure()
        // At least 8 rows a slice: the recurrent product of fewer rows is matrix-vector work.
        let parts = Threading.nativeBLAS ? 1 : Swift.min(Parallel.coreCount, Swift.max(1, B / 8))
        if parts == 1 { return body(0..<B) }
        DispatchQueue.concurrentPerform(iterations: parts) { p in body((p * B / parts)..<((p + 1) * B / parts)) }
    }

    /// One row of the cell: turns the pre-activations `gates (4H)` into the activated gates in
    /// place and writes `cell (H)` and `hidden (H)`. `cellPrev` nil means zeros.
    @inline(__always)
    static func lstmCellForward(gates: UnsafeMutablePointer<Float>, cellPrev: UnsafePointer<Float>?,
                                cell: UnsafeMutablePointer<Float>, hidden: UnsafeMutablePointer<Float>, H: Int) {
        var j = 0
        while j < H {
            let n = Swift.min(16, H - j)
            let i = sigmoid(load16(gates + j, n)), ci = tanh(load16(gates + H + j, n))
            let f = sigmoid(load16(gates + 2 * H + j, n) + 1), o = sigmoid(load16(gates + 3 * H + j, n))
            let cs = ci * i + (cellPrev.map { load16($0 + j, n) } ?? .zero) * f
            store16(i, gates + j, n)
            store16(ci, gates + H + j, n)
            store16(f, gates + 2 * H + j, n)
            store16(o, gates + 3 * H + j, n)
            store16(cs, cell + j, n)
            store16(tanh(cs) * o, hidden + j, n)
            j += 16
        }
    }

    /// One row of the cell's backward. `gates (4H)` holds the activated gates and receives the
    /// pre-activation gradient; `dHidden + dHiddenNext` is the gradient of h; `dCell (H)` holds
    /// the gradient of cs from later steps and receives that of cs_prev.
    @inline(__always)
    static func lstmCellBackward(gates: UnsafeMutablePointer<Float>, cell: UnsafePointer<Float>,
                                 cellPrev: UnsafePointer<Float>?, dHidden: UnsafePointer<Float>,
                                 dHiddenNext: UnsafePointer<Float>, dCell: UnsafeMutablePointer<Float>, H: Int) {
        var j = 0
        while j < H {
            let n = Swift.min(16, H - j)
            let i = load16(gates + j, n), ci = load16(gates + H + j, n)
            let f = load16(gates + 2 * H + j, n), o = load16(gates + 3 * H + j, n)
            let tc = tanh(load16(cell + j, n))
            let dh = load16(dHidden + j, n) + load16(dHiddenNext + j, n)
            let dcs = load16(dCell + j, n) + dh * o * (1 - tc * tc)
            let csPrev = cellPrev.map { load16($0 + j, n) } ?? .zero
            store16(dcs * ci * i * (1 - i), gates + j, n)
            store16(dcs * i * (1 - ci * ci), gates + H + j, n)
            store16(dcs * csPrev * f * (1 - f), gates + 2 * H + j, n)
            store16(dh * tc * o * (1 - o), gates + 3 * H + j, n)
            store16(dcs * f, dCell + j, n)
            j += 16
        }
    }

    /// σ(x) = 1 / (1 + e⁻ˣ) in every lane: 0 and 1 at the far ends, as e⁻ˣ goes to ∞ and 0.
    @inline(__always)
    static func sigmoid(_ x: SIMD16<Float>) -> SIMD16<Float> { 1 / (1 + exp(-x)) }

    /// tanh(x) = 2σ(2x) − 1 in every lane. Near 0 the subtraction leaves an absolute error of a
    /// few 1e−8 (not a relative one), well below what an LSTM state needs.
    @inline(__always)
    static func tanh(_ x: SIMD16<Float>) -> SIMD16<Float> { 2 / (1 + exp(-2 * x)) - 1 }

    /// `n ≤ 16` floats from `p` into the low lanes, zeros above.
    @inline(__always)
    private static func load16(_ p: UnsafePointer<Float>, _ n: Int) -> SIMD16<Float> {
        if n == 16 { return UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self) }
        var v = SIMD16<Float>()
        for k in 0..<n { v[k] = p[k] }
        return v
    }

    /// The low `n ≤ 16` lanes of `v` to `p`.
    @inline(__always)
    private static func store16(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
        if n == 16 { return UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self) }
        for k in 0..<n { p[k] = v[k] }
    }

    /// Naive LSTM in Double, the reference for tests: the cell of the file comment step by step,
    /// scalar by scalar. Same layouts as ``Tensor/lstm(_:initialHidden:initialCell:weight:bias:reverse:)``;
    /// returns the output `(B, T, H)` and the final hidden and cell states `(B, H)`.
    public static func referenceLSTM(x: [Float], B: Int, T: Int, In: Int, H: Int, weight: [Float], bias: [Float],
                                     initialHidden: [Float]?, initialCell: [Float]?, reverse: Bool)
        -> (output: [Float], hidden: [Float], cell: [Float]) {
        func sigmoid(_ v: Double) -> Double { 1 / (1 + Foundation.exp(-v)) }
        let G = 4 * H
        var output = [Float](repeating: 0, count: B * T * H)
        var hidden = initialHidden.map { $0.map(Double.init) } ?? [Double](repeating: 0, count: B * H)
        var cell = initialCell.map { $0.map(Double.init) } ?? [Double](repeating: 0, count: B * H)
        for b in 0..<B {
            for s in 0..<T {
                let t = reverse ? T - 1 - s : s
                var a = bias.map(Double.init)   // (G) pre-activations of [i, ci, f, o]
                for col in 0..<G {
                    for k in 0..<In { a[col] += Double(x[(b * T + t) * In + k]) * Double(weight[k * G + col]) }
                    for k in 0..<H { a[col] += hidden[b * H + k] * Double(weight[(In + k) * G + col]) }
                }
                for u in 0..<H {
                    let i = sigmoid(a[u]), ci = Foundation.tanh(a[H + u])
                    let f = sigmoid(a[2 * H + u] + 1), o = sigmoid(a[3 * H + u])
                    cell[b * H + u] = ci * i + cell[b * H + u] * f
                    hidden[b * H + u] = Foundation.tanh(cell[b * H + u]) * o
                    output[(b * T + t) * H + u] = Float(hidden[b * H + u])
                }
            }
        }
        return (output, hidden.map { Float($0) }, cell.map { Float($0) })
    }
}
