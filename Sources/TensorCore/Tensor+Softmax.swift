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

    /// `max + log Σ exp(x − max)` of one row.
    @inline(__always)
    static func logSumExp(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var m = -Float.infinity
        for i in 0..<n { m = Swift.max(m, x[i]) }
        if m == -.infinity { return m }
        var s: Float = 0
        for i in 0..<n { s += Foundation.exp(x[i] - m) }
        return m + Foundation.log(s)
    }

    /// Softmax over the last axis.
    public func softmax() -> Tensor {
        let (R, V) = rowsAndLength
        let out = Tensor(uninitializedShape: shape)
        let x = data, y = out.data
        Parallel.forRanges(R, grain: Swift.max(1, 4096 / Swift.max(V, 1))) { rows in
            for r in rows {
                let lse = Tensor.logSumExp(x + r * V, V)
                for i in 0..<V { y[r * V + i] = Foundation.exp(x[r * V + i] - lse) }
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
                let lse = Tensor.logSumExp(x + r * V, V)
                for i in 0..<V { y[r * V + i] = x[r * V + i] - lse }
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
        let lse = Tensor(uninitializedShape: [R])
        let x = logits.data, l = lse.data
        var total: Double = 0
        targets.withUnsafeBufferPointer { t in
            for r in 0..<R {
                precondition(t[r] >= 0 && Int(t[r]) < V, "crossEntropy: target \(t[r]) is outside 0..<\(V)")
            }
            Parallel.forRanges(R, grain: Swift.max(1, 4096 / Swift.max(V, 1))) { rows in
                for r in rows { l[r] = logSumExp(x + r * V, V) }
            }
            for r in 0..<R { total += Double(l[r] - x[r * V + Int(t[r])]) }
        }
        let out = Tensor(scalar: Float(total / Double(Swift.max(R, 1))))
        return record(.crossEntropy, output: out, inputs: [logits]) { _, g in
            let dx = logits.gradAccumulator()
            let scale = g.data[0] / Float(Swift.max(R, 1))
            targets.withUnsafeBufferPointer { t in
                Parallel.forRanges(R, grain: Swift.max(1, 4096 / Swift.max(V, 1))) { rows in
                    for r in rows {
                        let row = x + r * V, drow = dx + r * V, m = l[r]
                        for i in 0..<V { drow[i] += Foundation.exp(row[i] - m) * scale }
                        drow[Int(t[r])] -= scale
                    }
                }
            }
        }
    }
}
