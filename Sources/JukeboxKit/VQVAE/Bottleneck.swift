// Vector quantisation of one level (reference §1.3): nearest codebook entry by
// |x|² − 2 x·k + |k|² through one sgemm per block of rows, a codebook learned by exponential
// moving averages of assignment counts and sums, random restarts of dead codes from the current
// batch, a commitment loss and the straight-through estimator.
//
// Shapes: x (B, T, W) latents, flattened to rows (N = B·T, W); codebook k (bins, W);
// kSum (bins, W) and kElem (bins) the EMA state.

import Foundation
import CBLAS
import TensorCore
import ModelKit

/// Figures from one quantisation step, for progress and metrics.
public struct BottleneckMetrics: Codable, Sendable {
    /// Mean squared distance from each latent to its code.
    public var fit: Float = 0
    /// Distinct codes used in this batch.
    public var usedCodes = 0
    /// Perplexity (exp of the entropy) of this batch's code distribution.
    public var perplexity: Float = 0
    /// Codes whose averaged count is at or above the revival threshold (training only).
    public var liveCodes = 0
    /// RMS change of the codebook in this update (training only).
    public var codebookChange: Float = 0
}

/// The quantiser of one level, with its EMA state.
public final class Bottleneck {
    public let bins: Int
    public let width: Int
    public let mu: Float
    public let threshold: Float
    /// The codebook (bins, W).
    public let codebook: Tensor
    /// EMA of per-code sums of assigned latents (bins, W) and of counts (bins).
    public let kSum: Tensor
    public let kElem: Tensor
    /// False until the first training batch has initialised the codebook.
    public var initialized = false

    /// Rows quantised per sgemm, on a grid of blocks fixed to the whole sequence.
    static let rowBlock = 128

    public init(bins: Int, width: Int, mu: Float, threshold: Float) {
        self.bins = bins
        self.width = width
        self.mu = mu
        self.threshold = threshold
        codebook = Tensor.zeros([bins, width])
        kSum = Tensor.zeros([bins, width])
        kElem = Tensor(repeating: 1, shape: [bins])
    }

    /// Index of the nearest code for each of `rows` latents at `x` (rows × W), and the mean
    /// squared distance. `origin` is the first row's position in a longer sequence quantised in
    /// windows.
    ///
    /// The distances come from sgemm, whose last bits for a row can depend on the call's shape
    /// and the row's place in it (see `Tensor+Conv1d.swift`), and a code flips where two
    /// distances tie within that rounding. So the rows go in blocks of `rowBlock` on a grid
    /// counted from the whole sequence's start, each one product of the same shape (a block
    /// reaching past the ends is zero-padded): a row gets the same code in any window, on any
    /// thread count.
    public func quantize(_ x: UnsafePointer<Float>, rows: Int, origin: Int = 0) -> (codes: [Int32], fit: Float) {
        precondition(origin >= 0, "quantize: origin \(origin) is negative")
        let (W, K, R) = (width, bins, Bottleneck.rowBlock)
        var norms = [Float](repeating: 0, count: K)
        for j in 0..<K {
            let row = codebook.data + j * W
            var s: Float = 0
            for c in 0..<W { s += row[c] * row[c] }
            norms[j] = s
        }
        let first = -(origin % R), blocks = (rows - first + R - 1) / R
        var codes = [Int32](repeating: 0, count: rows)
        // fits[block]: Σ over its rows of the squared distance to the chosen code.
        var fits = [Double](repeating: 0, count: blocks)
        codes.withUnsafeMutableBufferPointer { out in fits.withUnsafeMutableBufferPointer { fit in
            norms.withUnsafeBufferPointer { nk in
                Parallel.forRanges(blocks, grain: Swift.max(1, (1 << 21) / (R * K * W))) { range in
                    // distances (R, K) = −2 x kᵀ; xs (R, W) a zero-padded block at the ends.
                    let distances = UnsafeMutablePointer<Float>.allocate(capacity: R * K)
                    let xs = UnsafeMutablePointer<Float>.allocate(capacity: R * W)
                    defer { distances.deallocate(); xs.deallocate() }
                    for block in range {
                        let lo = first + block * R
                        let valid = (lo..<(lo + R)).clamped(to: 0..<rows)
                        var a = x + lo * W
                        if valid.count < R {
                            xs.update(repeating: 0, count: R * W)
                            (xs + (valid.lowerBound - lo) * W).update(from: x + valid.lowerBound * W, count: valid.count * W)
                            a = UnsafePointer(xs)
                        }
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(R), Int32(K), Int32(W), -2, a, Int32(W),
                                    codebook.data, Int32(W), 0, distances, Int32(K))
                        var sum = 0.0
                        for i in valid {
                            // |x|² is the same for every code: the nearest minimises −2 x·k + |k|².
                            let d = distances + (i - lo) * K
                            var best = d[0] + nk[0], bestJ = 0
                            for j in 1..<K {
                                let v = d[j] + nk[j]
                                if v < best { best = v; bestJ = j }
                            }
                            out[i] = Int32(bestJ)
                            let xi = x + i * W
                            var sq: Float = 0
                            for c in 0..<W { sq += xi[c] * xi[c] }
                            sum += Double(best + sq)
                        }
                        fit[block] = sum
                    }
                }
            }
        } }
        let totalFit = fits.reduce(0, +)
        return (codes, Float(totalFit / Double(Swift.max(rows, 1)) / Double(W)))
    }

    /// The codebook rows for `codes`, as `(codes.count, W)`.
    public func dequantize(_ codes: [Int32]) -> Tensor {
        Tensor.withoutGrad { Tensor.embedding(codebook, indices: codes, indexShape: [codes.count]) }
    }

    /// Quantises `x (B, T, W)`. In training, initialises the codebook on the first call and
    /// updates it by EMA with restarts after assigning codes with the old codebook.
    ///
    /// Returns the codes `(B·T)`, the straight-through output (values of the codes, gradient
    /// passed to `x` unchanged), the commitment loss `‖sg(x_q) − x‖² / numel`, and metrics.
    public func callAsFunction(_ x: Tensor, training: Bool, generator: inout RandomGenerator)
        -> (codes: [Int32], output: Tensor, commitLoss: Tensor, metrics: BottleneckMetrics) {
        precondition(x.rank == 3 && x.shape[2] == width, "bottleneck: latents \(x.shape) do not have width \(width)")
        let rows = x.shape[0] * x.shape[1]
        if training && !initialized { initializeCodebook(x.data, rows: rows, generator: &generator) }
        let (codes, fit) = quantize(x.data, rows: rows)
        var metrics = BottleneckMetrics()
        metrics.fit = fit
        let counts = codeCounts(codes)
        metrics.usedCodes = counts.filter { $0 > 0 }.count
        metrics.perplexity = Bottleneck.perplexity(counts, total: rows)
        let quantized = dequantize(codes).reshaped(x.shape)
        if training {
            let (live, change) = updateCodebook(x.data, rows: rows, codes: codes, counts: counts, generator: &generator)
            metrics.liveCodes = live
            metrics.codebookChange = change
        }
        let commit = (x - quantized).square().mean()
        // A separate tensor: `quantized` is a constant inside the commitment loss.
        let output = Tensor.record("vq-straight-through", output: quantized.copy(), inputs: [x]) { _, g in
            x.accumulateGrad(g)
        }
        return (codes, output, commit, metrics)
    }

    private func codeCounts(_ codes: [Int32]) -> [Int] {
        var counts = [Int](repeating: 0, count: bins)
        for c in codes { counts[Int(c)] += 1 }
        return counts
    }

    static func perplexity(_ counts: [Int], total: Int) -> Float {
        guard total > 0 else { return 0 }
        var entropy = 0.0
        for c in counts where c > 0 {
            let p = Double(c) / Double(total)
            entropy -= p * Foundation.log(p)
        }
        return Float(Foundation.exp(entropy))
    }

    /// `bins` rows drawn from the batch: the rows tiled (with N(0, (0.01/√W)²) noise on every
    /// copy) until there are at least `bins`, randomly permuted, first `bins` taken.
    private func randomRows(_ x: UnsafePointer<Float>, rows: Int, generator: inout RandomGenerator) -> Tensor {
        let W = width
        let copies = rows < bins ? (bins + rows - 1) / rows : 1
        let total = rows * copies
        let order = generator.permutation(total)
        let out = Tensor(uninitializedShape: [bins, W])
        let noiseStd = 0.01 / Float(W).squareRoot()
        for j in 0..<bins {
            let src = x + (order[j] % rows) * W, dst = out.data + j * W
            for c in 0..<W { dst[c] = src[c] }
            if copies > 1 { for c in 0..<W { dst[c] += noiseStd * generator.normal() } }
        }
        return out
    }

    /// Codes from the batch, with averaged counts at the revival threshold (and sums to match):
    /// Jukebox starts the counts at 1, its threshold. A lower threshold, for batches far
    /// smaller than the codebook, then starts restarting unused codes at once instead of after
    /// the hundreds of steps a count of 1 takes to decay, in which the codes can collapse.
    private func initializeCodebook(_ x: UnsafePointer<Float>, rows: Int, generator: inout RandomGenerator) {
        let k = randomRows(x, rows: rows, generator: &generator)
        codebook.data.update(from: k.data, count: bins * width)
        for i in 0..<(bins * width) { kSum.data[i] = k.data[i] * threshold }
        kElem.data.update(repeating: threshold, count: bins)
        initialized = true
    }

    /// One EMA step: kSum ← μ kSum + (1 − μ) Σ assigned x, kElem ← μ kElem + (1 − μ) counts, then
    /// each code becomes kSum / kElem if its kElem ≥ threshold, else a random batch row.
    private func updateCodebook(_ x: UnsafePointer<Float>, rows: Int, codes: [Int32], counts: [Int],
                                generator: inout RandomGenerator) -> (live: Int, change: Float) {
        let W = width
        var batchSum = [Float](repeating: 0, count: bins * W)
        for i in 0..<rows {
            let c = Int(codes[i]) * W, xi = x + i * W
            for j in 0..<W { batchSum[c + j] += xi[j] }
        }
        let (m, keep) = (mu, 1 - mu)
        var live = 0
        for j in 0..<bins {
            kElem.data[j] = m * kElem.data[j] + keep * Float(counts[j])
            if kElem.data[j] >= threshold { live += 1 }
        }
        for i in 0..<(bins * W) { kSum.data[i] = m * kSum.data[i] + keep * batchSum[i] }
        let restarts: Tensor? = live < bins ? randomRows(x, rows: rows, generator: &generator) : nil
        var change = 0.0
        for j in 0..<bins {
            let k = codebook.data + j * W
            let usable = kElem.data[j] >= threshold
            for c in 0..<W {
                let new = usable ? kSum.data[j * W + c] / kElem.data[j] : restarts!.data[j * W + c]
                change += Double((new - k[c]) * (new - k[c]))
                k[c] = new
            }
        }
        return (live, Float((change / Double(bins * W)).squareRoot()))
    }
}
