// Token-by-token inference of a prior with a key/value cache per layer, sized as Jukebox keeps it:
// a row layer holds one block, a previous-row layer two blocks, column and dense layers the whole
// context. Every buffer is allocated once; a step runs on raw buffers with OpenBLAS (sgemv at
// batch 1, sgemm for a batch) and allocates nothing.
//
// Shapes: batch N; x, h (N, width); qkv (N, 3·S); attention out (N, S); hidden (N, mlp);
// logits (N, bins); cache of a layer (N, capacity, S) with capacity n_ctx, L or 2·L.
//
// Two precisions: `.float32` multiplies with OpenBLAS (threaded by OpenBLAS itself, see
// `Threading`); `.float16` keeps a Float16 copy of every weight matrix and multiplies with
// HalfKernels, split over the cores by a SpinTeam, reading half the bytes per token. A bundle
// shipped in F16 loses nothing by the copy: its weights are Float16 values already.
//
// Priming runs the ordinary (training-path) forward over the existing tokens once, capturing
// each layer's keys and values, and copies the part each cache keeps. Step t then feeds the
// token of position t − 1 (or the start token at t = 0) and returns the logits for position t.

import Foundation
import TensorCore
import ModelKit
import HalfKernels
import CSystem

/// How the next token is drawn from the logits.
public struct TokenFilter: Sendable, Equatable {
    public var temperature: Float
    /// Keep only the k most likely tokens (0: off).
    public var topK: Int
    /// Keep the smallest set of most likely tokens whose probability reaches p (0: off).
    public var topP: Float

    public init(temperature: Float = 1, topK: Int = 0, topP: Float = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
    }
}

/// Key/value cache of one layer for every item of the batch.
final class LayerCache {
    let pattern: AttentionPattern
    /// Positions kept per item.
    let capacity: Int
    let keys: UnsafeMutablePointer<Float>     // (N, capacity, S)
    let values: UnsafeMutablePointer<Float>   // (N, capacity, S)

    init(pattern: AttentionPattern, nCtx: Int, blockLength L: Int, batch: Int, stateWidth S: Int) {
        self.pattern = pattern
        switch pattern {
        case .dense, .column: capacity = nCtx
        case .row: capacity = L
        case .previousRow: capacity = 2 * L
        }
        keys = .allocate(capacity: batch * capacity * S)
        values = .allocate(capacity: batch * capacity * S)
    }

    deinit {
        keys.deallocate()
        values.deallocate()
    }

    /// Slot of position t in the buffer.
    @inline(__always) func slot(_ t: Int) -> Int { t % capacity }
}

/// Arithmetic of the sampling loop's matrix products.
public enum SamplingPrecision: String, Sendable, CaseIterable {
    /// 32-bit weights through OpenBLAS.
    case float32
    /// 16-bit weight copies through HalfKernels (needs AVX2, FMA and F16C on x86-64).
    case float16

    /// Float16 where the CPU runs HalfKernels, else Float32.
    public static var fastest: SamplingPrecision { halfKernelsAvailable ? .float16 : .float32 }

    /// Whether the float16 path can run: this CPU has the instructions HalfKernels is compiled
    /// for, and the environment does not switch it off.
    public static let halfKernelsAvailable = halfKernelsUnavailableReason == nil

    /// Why the float16 path cannot run here, or nil. `JUKEBOX_HALF_KERNELS=off` in the
    /// environment forces the Float32 path that CPUs without F16C take, so that path can be
    /// tested on any machine (`make test-matrix`).
    public static let halfKernelsUnavailableReason: String? = {
        if ProcessInfo.processInfo.environment["JUKEBOX_HALF_KERNELS"] == "off" {
            return "the half-precision kernels are switched off (JUKEBOX_HALF_KERNELS=off)"
        }
        return jukebox_cpu_has_avx2_fma_f16c() != 0 ? nil : "this CPU lacks the AVX2, FMA and F16C instructions they need"
    }()
}

/// Float16 copies of one layer's weight matrices.
struct HalfLayer {
    let attn, proj, fc, mlpProj: HalfPanels
}

/// Runs a ``Prior`` one position at a time for a batch of sequences.
public final class PriorSampler {
    public let prior: Prior
    public let batch: Int
    public let precision: SamplingPrecision
    /// Next position to compute.
    public private(set) var position = 0

    let width: Int, stateWidth: Int, heads: Int, hidden: Int, bins: Int, nCtx: Int, blockLength: Int
    let caches: [LayerCache]
    // Per-step buffers.
    let x, h, qkv, attended, projected, mlpHidden, logitsBuffer: UnsafeMutablePointer<Float>
    /// Attention scores, n_ctx per part of the team.
    let scores: UnsafeMutablePointer<Float>
    /// Float16 weights and the team that splits work over the cores (`.float16` only).
    let halfLayers: [HalfLayer]
    let halfOutput: HalfPanels?
    let team: SpinTeam?
    /// Start token (N, width) and the conditioning of the window (N, n_ctx, width), if any.
    var start: Tensor?
    var xCond: Tensor?

    public init(prior: Prior, batch: Int, precision: SamplingPrecision = .fastest) {
        precondition(precision == .float32 || SamplingPrecision.halfKernelsAvailable,
                     "PriorSampler: float16 cannot run: \(SamplingPrecision.halfKernelsUnavailableReason ?? "")")
        let c = prior.config
        self.prior = prior
        self.batch = batch
        self.precision = precision
        width = c.width
        stateWidth = c.attentionWidth
        heads = c.heads
        hidden = Int(c.mlpFactor * Float(c.width))
        bins = c.bins
        nCtx = c.nCtx
        blockLength = c.blockLength
        caches = prior.transformer.blocks.map {
            LayerCache(pattern: $0.attn.pattern, nCtx: c.nCtx, blockLength: c.blockLength, batch: batch, stateWidth: c.attentionWidth)
        }
        x = .allocate(capacity: batch * width)
        h = .allocate(capacity: batch * width)
        qkv = .allocate(capacity: batch * 3 * stateWidth)
        attended = .allocate(capacity: batch * stateWidth)
        projected = .allocate(capacity: batch * width)
        mlpHidden = .allocate(capacity: batch * hidden)
        logitsBuffer = .allocate(capacity: batch * bins)
        if precision == .float16 {
            func half(_ l: Linear) -> HalfPanels {
                HalfPanels(l.weight.data, rows: l.weight.shape[0], columns: l.weight.shape[1], leadingDimension: l.weight.shape[1])
            }
            halfLayers = prior.transformer.blocks.map {
                HalfLayer(attn: half($0.attn.cAttn), proj: half($0.attn.cProj), fc: half($0.mlp.cFc), mlpProj: half($0.mlp.cProj))
            }
            // Logits = h @ x_embᵀ (tied) or h @ x_out.
            halfOutput = prior.xOut.map(half)
                ?? HalfPanels(prior.xEmb.weight.data, rows: c.width, columns: c.bins, leadingDimension: c.width, transposed: true)
            team = SpinTeam()
        } else {
            halfLayers = []
            halfOutput = nil
            team = nil
        }
        scores = .allocate(capacity: c.nCtx * (team?.size ?? 1))
    }

    /// Runs `body` with the threading the precision wants: OpenBLAS's own threads for
    /// `.float32`, single-threaded OpenBLAS beside the SpinTeam for `.float16`.
    public func withThreading<R>(_ body: () throws -> R) rethrows -> R {
        precision == .float32 ? try Threading.withNativeBLASThreading(body) : try body()
    }

    deinit {
        for p in [x, h, qkv, attended, projected, mlpHidden, logitsBuffer, scores] { p.deallocate() }
    }

    /// Starts a new window: sets the conditioning and empties the caches.
    public func reset(conditioning c: PriorConditioning) {
        precondition(c.artists.count == batch, "PriorSampler: conditioning for \(c.artists.count) items, batch is \(batch)")
        Tensor.withoutGrad {
            start = prior.labels.start(artists: c.artists, genres: c.genres).reshaped([batch, width])
            xCond = prior.conditioning(c)
        }
        position = 0
    }

    /// Fills the caches from `tokens (N, P)`, the window's existing tokens (P < n_ctx), with one
    /// parallel forward pass. The next ``step(previous:)`` computes position P.
    public func prime(_ tokens: [Int32], conditioning c: PriorConditioning) {
        let P = tokens.count / batch
        precondition(P >= 1 && P < nCtx, "PriorSampler.prime: \(P) tokens per item, n_ctx \(nCtx)")
        reset(conditioning: c)
        let S = stateWidth
        Tensor.withoutGrad {
            _ = prior.logits(tokens, batch: batch, conditioning: c) { [self] layer, k, v in
                let cache = caches[layer]
                // Keep the positions this layer's cache holds: the last `capacity`, block-aligned
                // slots via t mod capacity (a ring).
                let first = Swift.max(0, P - cache.capacity)
                for n in 0..<batch {
                    for t in first..<P {
                        let src = (n * P + t) * S, dst = (n * cache.capacity + cache.slot(t)) * S
                        (cache.keys + dst).update(from: k.data + src, count: S)
                        (cache.values + dst).update(from: v.data + src, count: S)
                    }
                }
            }
        }
        position = P
    }

    /// Logits `(N, bins)` for the current position given the tokens of the previous position
    /// (ignored at position 0), then advances. The pointer is valid until the next call.
    public func step(previous tokens: [Int32]) -> UnsafeMutablePointer<Float> {
        precondition(position < nCtx, "PriorSampler: the window of \(nCtx) positions is full")
        precondition(start != nil, "PriorSampler: call reset or prime first")
        let (N, W, S, t) = (batch, width, stateWidth, position)
        // Input: start token or the previous token's embedding, + position, + conditioning.
        let pos = prior.posEmb.data + t * W
        for n in 0..<N {
            let row = x + n * W
            let src = t == 0 ? start!.data + n * W : prior.xEmb.weight.data + Int(tokens[n]) * W
            for i in 0..<W { row[i] = src[i] + pos[i] }
            if let xCond { let cr = xCond.data + (n * nCtx + t) * W; for i in 0..<W { row[i] += cr[i] } }
        }
        for (layer, block) in prior.transformer.blocks.enumerated() {
            let half = precision == .float16 ? halfLayers[layer] : nil
            layerNorm(x, block.ln0, into: h)
            linear(h, block.attn.cAttn, half?.attn, rows: N, input: W, output: 3 * S, into: qkv)
            attend(layer: layer, t: t)
            linear(attended, block.attn.cProj, half?.proj, rows: N, input: S, output: W, into: projected)
            for i in 0..<(N * W) { x[i] += projected[i] }
            layerNorm(x, block.ln1, into: h)
            linear(h, block.mlp.cFc, half?.fc, rows: N, input: W, output: hidden, into: mlpHidden)
            for i in 0..<(N * hidden) { let v = mlpHidden[i]; mlpHidden[i] = v / (1 + Foundation.exp(-1.702 * v)) }
            linear(mlpHidden, block.mlp.cProj, half?.mlpProj, rows: N, input: hidden, output: W, into: projected)
            for i in 0..<(N * W) { x[i] += projected[i] }
        }
        if let xCond, prior.xOut == nil {
            for n in 0..<N { let cr = xCond.data + (n * nCtx + t) * W; for i in 0..<W { x[n * W + i] += cr[i] } }
        }
        if let halfOutput {
            let out = logitsBuffer, input = x, bins = self.bins
            let multiply = { (r: Range<Int>) in
                halfOutput.multiply(input, ldx: W, rows: N, bias: nil, accumulate: false, into: out, ldy: bins, panels: r)
            }
            if let team, N * W * bins >= 1 << 16 { team.forRanges(halfOutput.panelCount, multiply) } else { multiply(0..<halfOutput.panelCount) }
        } else if let xOut = prior.xOut {
            linear(x, xOut, nil, rows: N, input: W, output: bins, into: logitsBuffer)
        } else if N == 1 {
            Kernels.sgemv(m: bins, n: W, a: prior.xEmb.weight.data, lda: W, x: x, y: logitsBuffer)
        } else {
            Kernels.sgemm(transB: true, m: N, n: bins, k: W, a: x, lda: W, b: prior.xEmb.weight.data, ldb: W,
                          c: logitsBuffer, ldc: bins)
        }
        position += 1
        return logitsBuffer
    }

    /// `out = layerNorm(src)` row by row (eps 1e-5).
    private func layerNorm(_ src: UnsafeMutablePointer<Float>, _ ln: LayerNorm, into out: UnsafeMutablePointer<Float>) {
        let W = width, g = ln.weight.data, b = ln.bias.data
        for n in 0..<batch {
            let xr = src + n * W, yr = out + n * W
            var s: Float = 0
            for i in 0..<W { s += xr[i] }
            let m = s / Float(W)
            var v: Float = 0
            for i in 0..<W { let d = xr[i] - m; v += d * d }
            let rs = 1 / (v / Float(W) + 1e-5).squareRoot()
            for i in 0..<W { yr[i] = (xr[i] - m) * rs * g[i] + b[i] }
        }
    }

    /// `out = src @ W + b` for `rows` rows: Float16 panels split over the team, or OpenBLAS
    /// (sgemv streams the weights once at batch 1).
    private func linear(_ src: UnsafeMutablePointer<Float>, _ layer: Linear, _ half: HalfPanels?, rows: Int, input: Int,
                        output: Int, into out: UnsafeMutablePointer<Float>) {
        if let half {
            let bias = layer.bias?.data
            let multiply = { (r: Range<Int>) in
                half.multiply(src, ldx: input, rows: rows, bias: bias, accumulate: false, into: out, ldy: output, panels: r)
            }
            // Below ~64 K multiply-adds a hand-off to the other core costs more than it saves.
            if let team, rows * input * output >= 1 << 16 { team.forRanges(half.panelCount, multiply) } else { multiply(0..<half.panelCount) }
            return
        }
        if let bias = layer.bias {
            for r in 0..<rows { (out + r * output).update(from: bias.data, count: output) }
        }
        let beta: Float = layer.bias == nil ? 0 : 1
        if rows == 1 {
            Kernels.sgemv(transA: true, m: input, n: output, a: layer.weight.data, lda: output, x: src, beta: beta, y: out)
        } else {
            Kernels.sgemm(m: rows, n: output, k: input, a: src, lda: input, b: layer.weight.data, ldb: output,
                          beta: beta, c: out, ldc: output)
        }
    }

    /// Stores this position's keys and values and attends over the keys the layer's pattern
    /// allows, head by head, into `attended` (items × heads split over the team, if any).
    private func attend(layer: Int, t: Int) {
        let cache = caches[layer]
        let (S, H, L) = (stateWidth, heads, blockLength)
        for n in 0..<batch {
            let row = qkv + n * 3 * S
            let slot = n * cache.capacity * S + cache.slot(t) * S
            (cache.keys + slot).update(from: row + S, count: S)
            (cache.values + slot).update(from: row + 2 * S, count: S)
        }
        // Keys as (count rows starting at `first`, every `stride` slots) of the buffer.
        let first: Int, count: Int, stride: Int
        switch cache.pattern {
        case .dense: (first, count, stride) = (0, t + 1, 1)
        case .row: (first, count, stride) = (0, t % L + 1, 1)
        case .column: (first, count, stride) = (t % L, t / L + 1, L)
        case .previousRow:
            if t < L {
                // Block 0 attends to a zero block: the output is zero.
                attended.update(repeating: 0, count: batch * S)
                return
            }
            (first, count, stride) = (cache.slot((t / L - 1) * L), L, 1)
        }
        let pairs = batch * H
        let work: (Range<Int>, UnsafeMutablePointer<Float>) -> Void = { [self] range, scores in
            let D = S / H
            let scale = 1 / Float(D).squareRoot()
            for pair in range {
                let (n, hd) = (pair / H, pair % H)
                let base = n * cache.capacity * S + first * S + hd * D
                let k = cache.keys + base, v = cache.values + base
                let q = qkv + n * 3 * S + hd * D
                // scores = K_h q / √D over the selected rows (leading dimension stride·S).
                Kernels.sgemv(m: count, n: D, alpha: scale, a: k, lda: stride * S, x: q, y: scores)
                var m = -Float.infinity
                for j in 0..<count { m = Swift.max(m, scores[j]) }
                var z: Float = 0
                for j in 0..<count { let e = Foundation.exp(scores[j] - m); scores[j] = e; z += e }
                Kernels.sgemv(transA: true, m: count, n: D, alpha: 1 / z, a: v, lda: stride * S, x: scores,
                              y: attended + n * S + hd * D)
            }
        }
        if let team, pairs > 1, pairs * count * (S / H) >= 1 << 14 {
            let chunk = (pairs + team.size - 1) / team.size
            let buffer = scores, capacity = nCtx
            team.run { p in
                let lo = p * chunk, hi = Swift.min(pairs, lo + chunk)
                if lo < hi { work(lo..<hi, buffer + p * capacity) }
            }
        } else {
            work(0..<pairs, scores)
        }
    }
}

extension TokenFilter {
    /// Draws a token from `logits` (`count` values, modified in place: scaled, filtered,
    /// exponentiated). `order` is scratch space of `count` indices for top-p.
    public func draw(_ logits: UnsafeMutablePointer<Float>, count: Int, order: UnsafeMutablePointer<Int32>,
                     generator: inout RandomGenerator) -> Int32 {
        let invT = 1 / temperature
        var m = -Float.infinity
        for i in 0..<count { logits[i] *= invT; m = Swift.max(m, logits[i]) }
        if topK > 0 && topK < count {
            // The k-th largest value by partial selection; ties with it are kept (as Jukebox).
            for i in 0..<count { order[i] = Int32(i) }
            var buffer = UnsafeMutableBufferPointer(start: order, count: count)
            buffer.sort { logits[Int($0)] > logits[Int($1)] }
            let threshold = logits[Int(order[topK - 1])]
            for i in 0..<count where logits[i] < threshold { logits[i] = -.infinity }
        }
        for i in 0..<count { logits[i] = Foundation.exp(logits[i] - m) }
        if topP > 0 && topP < 1 {
            for i in 0..<count { order[i] = Int32(i) }
            var buffer = UnsafeMutableBufferPointer(start: order, count: count)
            buffer.sort { logits[Int($0)] > logits[Int($1)] }
            var total: Float = 0
            for i in 0..<count { total += logits[i] }
            // Keep tokens while the probability before them is below p: the first token that
            // crosses p is kept, and the most likely token always is.
            var cumulative: Float = 0
            for r in 0..<count {
                let i = Int(order[r])
                if r > 0 && cumulative > topP * total { logits[i] = 0 }
                cumulative += logits[i] == 0 ? 0 : logits[i]
            }
        }
        return Int32(generator.categorical(logits, count: count))
    }
}
