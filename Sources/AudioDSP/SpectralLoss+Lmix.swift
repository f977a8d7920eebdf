// Jukebox's pointwise reconstruction loss `lmix` (vqvae.py `_loss_fn('lmix')`), forward and
// backward together.
//
// Shape legend: B batch, L samples per item (T · channels, flattened).
//
// With Δ = reconstruction − target:
//   l2   = mean_{b,i} Δ² / bandwidth.l2
//   linf = mean_b mean(top-k of Δ²_b) / bandwidth.l2,  k = min(2048, L)
//   lmix = l2 + 0.02 · linf
// Gradient: ∂lmix/∂Δ_{b,i} = 2Δ_{b,i} / (B·L·l2) + 0.02 · 2Δ_{b,i} · [i ∈ topk_b] / (B·k·l2).
// Fused because top-k is not a TensorCore primitive; ties at the k-th value go to the lowest
// indices (torch.topk leaves the choice unspecified).

import Foundation
import TensorCore

extension SpectralLoss {
    /// Jukebox's weight of the top-k term in `lmix` (`lmix_linf`).
    public static let lmixTopKWeight: Float = 0.02

    /// Jukebox's `lmix` loss, a scalar: mean squared error plus `topKWeight` × the mean of each item's
    /// `topK` largest squared errors, both divided by `bandwidth.l2` (the data variance).
    /// `reconstruction` and `target` are (B, …) with the same shape; the top-k is taken per
    /// item over everything after the batch axis, with k clamped to that length. Differentiable
    /// in both arguments.
    public static func lmix(_ reconstruction: Tensor, _ target: Tensor, bandwidth: Bandwidth,
                            topK: Int = 2048, topKWeight: Float = lmixTopKWeight) -> Tensor {
        precondition(reconstruction.shape == target.shape && reconstruction.rank >= 1,
                     "lmix: reconstruction \(reconstruction.shape) vs target \(target.shape)")
        let B = reconstruction.shape[0], L = reconstruction.count / max(B, 1)
        let k = min(topK, L)
        precondition(k >= 1, "lmix: items are empty")
        let difference = Tensor(uninitializedShape: [B, L])            // (B, L) Δ
        let r = reconstruction.data, t = target.data, d = difference.data
        for i in 0..<(B * L) { d[i] = r[i] - t[i] }
        var squaredTotal: Double = 0
        var topTotal: Double = 0
        var selected: [[Int]] = []                                     // (B, k) indices of the top-k
        var squares = [Float](repeating: 0, count: L)
        for b in 0..<B {
            let db = d + b * L
            for i in 0..<L { squares[i] = db[i] * db[i] }
            squaredTotal += squares.withUnsafeBufferPointer { Kernels.sum($0.baseAddress!, count: L) }
            let indices = largestIndices(squares, k)
            for i in indices { topTotal += Double(squares[i]) }
            selected.append(indices)
        }
        let variance = bandwidth.l2
        let l2 = squaredTotal / (Double(B * L) * variance)
        let linf = topTotal / (Double(B * k) * variance)
        let out = Tensor(scalar: Float(l2 + Double(topKWeight) * linf))
        return Tensor.record("lmix", output: out, inputs: [reconstruction, target]) { _, dOut in
            let g = dOut.data[0]
            let meanScale = 2 * g / Float(Double(B * L) * variance)
            let topScale = 2 * g * topKWeight / Float(Double(B * k) * variance)
            let dDifference = Tensor(uninitializedShape: [B, L])       // (B, L) ∂lmix/∂Δ
            let dd = dDifference.data, d = difference.data
            for i in 0..<(B * L) { dd[i] = meanScale * d[i] }
            for b in 0..<B {
                for i in selected[b] { dd[b * L + i] += topScale * d[b * L + i] }
            }
            if reconstruction.requiresGrad {
                let gr = reconstruction.gradAccumulator()
                for i in 0..<(B * L) { gr[i] += dd[i] }
            }
            if target.requiresGrad {
                let gt = target.gradAccumulator()
                for i in 0..<(B * L) { gt[i] -= dd[i] }
            }
        }
    }

    /// Indices of the `k` largest values, ties broken towards lower indices, in ascending index
    /// order. Quickselect finds the k-th largest value in O(L).
    static func largestIndices(_ values: [Float], _ k: Int) -> [Int] {
        precondition(k >= 1 && k <= values.count)
        var work = values
        let threshold = kthLargest(&work, k)
        var above = 0
        for v in values where v > threshold { above += 1 }
        var ties = k - above
        var indices: [Int] = []
        indices.reserveCapacity(k)
        for (i, v) in values.enumerated() {
            if v > threshold {
                indices.append(i)
            } else if v == threshold && ties > 0 {
                indices.append(i)
                ties -= 1
            }
        }
        return indices
    }

    /// The k-th largest element (k ≥ 1); reorders `x`. Hoare-partition quickselect with a
    /// median-of-three pivot.
    static func kthLargest(_ x: inout [Float], _ k: Int) -> Float {
        var lo = 0, hi = x.count - 1
        let target = k - 1                      // position in descending order
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            let pivot = max(min(x[lo], x[mid]), min(max(x[lo], x[mid]), x[hi]))
            var i = lo, j = hi
            while i <= j {
                while x[i] > pivot { i += 1 }
                while x[j] < pivot { j -= 1 }
                if i <= j {
                    x.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            // Now x[lo...j] ≥ pivot, x[i...hi] ≤ pivot, and x[j+1..<i] == pivot.
            if target <= j {
                hi = j
            } else if target >= i {
                lo = i
            } else {
                return pivot
            }
        }
        return x[target]
    }
}
