// Softmax, log-softmax and cross-entropy over the last axis, fused and numerically stable
// (the row maximum is subtracted before exponentiating).
//
// Shapes: x (R, V) viewed from any (..., V); targets (R).
//   softmax backward:     dx = y · (dy − Σ dy·y)
//   log-softmax backward: dx = dy − softmax(x) · Σ dy
//   cross-entropy:        loss = mean_r (logsumexp(x_r) − x_r[target_r]),
//                         dx_r = (softmax(x_r) − onehot(target_r)) · dloss / R

import Foundation

extension Tensor {
    /// Rows of the last axis and their length.
    private var rowsAndLength: (rows: Int, length: Int) {
        let V = shape.last ?? 1
        return (count / Swift.max(V, 1), V)
    }

    /// Row maximum and `log Σ exp(x − max)`. Kept apart rather than summed: with logits in the
    /// thousands, `max + log Σ` would lose the low bits that `x − max` keeps.
    @inline(__always)
    static func maxAndLogSum(_ x: UnsafePointer<Float>, _ n: Int) -> (max: Float, logSum: Float) {
        var m = -Float.infinity
        for i in 0..<n { m = Swift.max(m, x[i]) }
        if m == -.infinity { return (m, 0) }
        var s: Float = 0
        for i in 0..<n { s += Foundation.exp(x[i] - m) }
        return (m, Foundation.log(s))
    }

    /// Softmax over the last axis.
    public func softmax() -> Tensor {
        let (R, V) = rowsAndLength
        let out = Tensor(uninitializedShape: shape)
        let x = data, y = out.data
        Parallel.forRanges(R, grain: Swift.max(1, 4096 / Swift.max(V, 1))) { rows in
            for r in rows {
                let (m, logSum) = Tensor.maxAndLogSum(x + r * V, V)
                for i in 0..<V { y[r * V + i] = Foundation.exp(x[r * V + i] - m - logSum) }
            }
        }
        return Tensor.record(.softmax, output: out, inputs: [self]) { [self] out, g in
            let dx = gradAccumulator(), y = out.data, dy = g.data
            for r in 0..<R {
                var dot: Float = 0
                for i in 0..<V { dot += dy[r * V + i] * y[r * V + i] }
                for i in 0..<V { dx[r * V + i] += y[r * V + i] * (dy[r * V + i] - dot) }
            }
        }
    }

    /// Log-softmax over the last axis.
    public func logSoftmax() -> Tensor {
        let (R, V) = rowsAndLength
        let out = Tensor(uninitializedShape: shape)
        let x = data, y = out.data
        Parallel.forRanges(R, grain: Swift.max(1, 4096 / Swift.max(V, 1))) { rows in
            for r in rows {
                let (m, logSum) = Tensor.maxAndLogSum(x + r * V, V)
                for i in 0..<V { y[r * V + i] = (x[r * V + i] - m) - logSum }
            }
        }
        return Tensor.record(.logSoftmax, output: out, inputs: [self]) { [self] out, g in
            let dx = gradAccumulator(), y = out.data, dy = g.data
            for r in 0..<R {
                var total: Float = 0
                for i in 0..<V { total += dy[r * V + i] }
                for i in 0..<V { dx[r * V + i] += dy[r * V + i] - Foundation.exp(y[r * V + i]) * total }
            }
        }
    }

    /// Mean cross-entropy in nats of `logits (..., V)` against integer `targets`, one per row
    /// (`targets.count` = number of rows, each in `0..<V`). A scalar.
    public static func crossEntropy(logits: Tensor, targets: [Int32]) -> Tensor {
        let (R, V) = logits.rowsAndLength
        precondition(targets.count == R,
                     "crossEntropy: \(targets.count) targets for \(R) rows of logits \(logits.shape)")
        // Row maxima and log-sums, kept for the backward pass.
        let stats = Tensor(uninitializedShape: [R, 2])
        let x = logits.data, st = stats.data
        var total: Double = 0
        targets.withUnsafeBufferPointer { t in
            for r in 0..<R {
                precondition(t[r] >= 0 && Int(t[r]) < V, "crossEntropy: target \(t[r]) is outside 0..<\(V)")
            }
            Parallel.forRanges(R, grain: Swift.max(1, 4096 / Swift.max(V, 1))) { rows in
                for r in rows {
                    let (m, logSum) = maxAndLogSum(x + r * V, V)
                    st[2 * r] = m
                    st[2 * r + 1] = logSum
                }
            }
            for r in 0..<R { total += Double((st[2 * r] - x[r * V + Int(t[r])]) + st[2 * r + 1]) }
        }
        let out = Tensor(scalar: Float(total / Double(Swift.max(R, 1))))
        return record(.crossEntropy, output: out, inputs: [logits]) { _, g in
            let dx = logits.gradAccumulator(), st = stats.data
            let scale = g.data[0] / Float(Swift.max(R, 1))
            targets.withUnsafeBufferPointer { t in
                Parallel.forRanges(R, grain: Swift.max(1, 4096 / Swift.max(V, 1))) { rows in
                    for r in rows {
                        let row = x + r * V, drow = dx + r * V, m = st[2 * r], logSum = st[2 * r + 1]
                        for i in 0..<V { drow[i] += Foundation.exp(row[i] - m - logSum) * scale }
                        drow[Int(t[r])] -= scale
                    }
                }
            }
        }
    }
}
