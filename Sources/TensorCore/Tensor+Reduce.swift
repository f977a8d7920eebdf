// Reductions: sum and mean over everything or one axis, and max along an axis (forward only).
// An axis reduction views the tensor as (outer, n, inner) and reduces the middle dimension.

import Foundation

extension Tensor {
    /// `(outer, n, inner)` view of this tensor around `axis`.
    func splitAround(_ axis: Int) -> (outer: Int, n: Int, inner: Int) {
        let a = normalizedAxis(axis)
        let outer = shape[..<a].reduce(1, *)
        let inner = shape[(a + 1)...].reduce(1, *)
        return (outer, shape[a], inner)
    }

    /// Sum of all elements, a scalar (accumulated in Double).
    public func sum() -> Tensor {
        let out = Tensor(scalar: Float(Kernels.sum(data, count: count)))
        return Tensor.record(.sum, output: out, inputs: [self]) { [self] _, g in
            accumulateGrad(Tensor(repeating: g.data[0], shape: shape))
        }
    }

    /// Mean of all elements, a scalar.
    public func mean() -> Tensor {
        let n = Float(Swift.max(count, 1))
        let out = Tensor(scalar: Float(Kernels.sum(data, count: count)) / n)
        return Tensor.record(.mean, output: out, inputs: [self]) { [self] _, g in
            accumulateGrad(Tensor(repeating: g.data[0] / n, shape: shape))
        }
    }

    /// Sum over `axis`, which is removed from the shape unless `keepingDimension` is set.
    public func sum(axis: Int, keepingDimension: Bool = false) -> Tensor {
        let out = reduceAxis(axis, keepingDimension: keepingDimension, scale: 1)
        return Tensor.record(.sumAxis, output: out, inputs: [self]) { [self] _, g in
            accumulateGrad(expandAxis(g, axis: axis, scale: 1))
        }
    }

    /// Mean over `axis`, which is removed from the shape unless `keepingDimension` is set.
    public func mean(axis: Int, keepingDimension: Bool = false) -> Tensor {
        let n = Float(Swift.max(size(axis), 1))
        let out = reduceAxis(axis, keepingDimension: keepingDimension, scale: 1 / n)
        return Tensor.record(.meanAxis, output: out, inputs: [self]) { [self] _, g in
            accumulateGrad(expandAxis(g, axis: axis, scale: 1 / n))
        }
    }

    private func reduceAxis(_ axis: Int, keepingDimension: Bool, scale: Float) -> Tensor {
        let a = normalizedAxis(axis)
        let (outer, n, inner) = splitAround(a)
        var outShape = shape
        if keepingDimension { outShape[a] = 1 } else { outShape.remove(at: a) }
        let out = Tensor.zeros(outShape)
        let x = data, y = out.data
        for o in 0..<outer {
            let yo = y + o * inner
            for k in 0..<n {
                let xo = x + (o * n + k) * inner
                for i in 0..<inner { yo[i] += xo[i] }
            }
        }
        if scale != 1 { Kernels.scaleInPlace(y, scale, count: out.count) }
        return out
    }

    /// Repeats `g` (this tensor's shape without `axis`) along `axis`, times `scale`.
    private func expandAxis(_ g: Tensor, axis: Int, scale: Float) -> Tensor {
        let (outer, n, inner) = splitAround(axis)
        let out = Tensor(uninitializedShape: shape)
        let gy = g.data, dx = out.data
        for o in 0..<outer {
            for k in 0..<n {
                let dst = dx + (o * n + k) * inner, src = gy + o * inner
                for i in 0..<inner { dst[i] = src[i] * scale }
            }
        }
        return out
    }

    /// Maximum along `axis` and the index where it occurs (first on ties); no gradient.
    public func max(axis: Int) -> (values: Tensor, indices: [Int]) {
        let a = normalizedAxis(axis)
        let (outer, n, inner) = splitAround(a)
        precondition(n > 0, "max: axis \(axis) of shape \(shape) is empty")
        var outShape = shape
        outShape.remove(at: a)
        let out = Tensor(uninitializedShape: outShape)
        var indices = [Int](repeating: 0, count: outer * inner)
        let x = data, y = out.data
        for o in 0..<outer {
            for i in 0..<inner {
                var best = x[o * n * inner + i], bestK = 0
                for k in 1..<n {
                    let v = x[(o * n + k) * inner + i]
                    if v > best { best = v; bestK = k }
                }
                y[o * inner + i] = best
                indices[o * inner + i] = bestK
            }
        }
        return (out, indices)
    }
}
