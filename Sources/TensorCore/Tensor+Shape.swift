// Shape operations: reshape (shares storage), transpose of two axes, slice and concatenation
// along an axis, and zero or reflect padding along an axis. All but reshape copy, so every
// tensor stays contiguous and kernels never deal with strides.

import Foundation

/// How `pad` fills the new positions.
public enum PaddingMode: Sendable {
    /// Zeros.
    case zero
    /// Mirror image without repeating the edge sample (`[a b c]` padded by 2 → `c b [a b c] b a`),
    /// as `torch.stft(center=True)` pads.
    case reflect
}

extension Tensor {
    /// The same values under a new shape with the same element count. One dimension may be -1,
    /// inferred from the others. Shares storage with this tensor.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var resolved = newShape
        if let inferred = newShape.firstIndex(of: -1) {
            let known = newShape.enumerated().filter { $0.offset != inferred }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0,
                         "reshape: cannot infer -1 in \(newShape) for \(count) elements of shape \(shape)")
            resolved[inferred] = count / known
        }
        precondition(Tensor.elementCount(resolved) == count,
                     "reshape: shape \(shape) (\(count) elements) cannot become \(newShape)")
        let out = Tensor(shape: resolved, storage: storage)
        return Tensor.record(.reshape, output: out, inputs: [self]) { [self] _, g in
            accumulateGrad(Tensor(shape: shape, storage: g.storage))
        }
    }

    /// Swaps two axes (copies into the new layout).
    public func transposed(_ axis0: Int, _ axis1: Int) -> Tensor {
        let a0 = normalizedAxis(axis0), a1 = normalizedAxis(axis1)
        if a0 == a1 { return reshaped(shape) }
        let (lo, hi) = (Swift.min(a0, a1), Swift.max(a0, a1))
        var outShape = shape
        outShape.swapAt(lo, hi)
        let out = Tensor(uninitializedShape: outShape)
        Tensor.swapAxes(data, out.data, shape: shape, lo, hi)
        return Tensor.record(.transpose, output: out, inputs: [self]) { [self] _, g in
            let d = Tensor(uninitializedShape: shape)
            Tensor.swapAxes(g.data, d.data, shape: outShape, lo, hi)
            accumulateGrad(d)
        }
    }

    /// Copies `src` of `shape` into `dst` with axes `lo < hi` swapped. Views the tensor as
    /// (A, P, M, Q, I): A before lo, P = shape[lo], M between, Q = shape[hi], I after hi.
    static func swapAxes(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
                         shape: [Int], _ lo: Int, _ hi: Int) {
        let A = shape[..<lo].reduce(1, *), P = shape[lo]
        let M = shape[(lo + 1)..<hi].reduce(1, *), Q = shape[hi]
        let I = shape[(hi + 1)...].reduce(1, *)
        for a in 0..<A {
            for p in 0..<P {
                for m in 0..<M {
                    for q in 0..<Q {
                        // source (a, p, m, q, :) -> destination (a, q, m, p, :)
                        let s = src + ((((a * P + p) * M + m) * Q + q) * I)
                        let d = dst + ((((a * Q + q) * M + m) * P + p) * I)
                        if I == 1 { d[0] = s[0] } else { d.update(from: s, count: I) }
                    }
                }
            }
        }
    }

    /// Elements `range` along `axis` (copies).
    public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
        let a = normalizedAxis(axis)
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[a],
                     "slice: range \(range) is outside axis \(axis) of shape \(shape)")
        let (outer, n, inner) = splitAround(a)
        var outShape = shape
        outShape[a] = range.count
        let out = Tensor(uninitializedShape: outShape)
        let m = range.count * inner
        for o in 0..<outer {
            (out.data + o * m).update(from: data + (o * n + range.lowerBound) * inner, count: m)
        }
        return Tensor.record(.slice, output: out, inputs: [self]) { [self] _, g in
            let d = gradAccumulator()
            for o in 0..<outer {
                Kernels.addInPlace(d + (o * n + range.lowerBound) * inner, g.data + o * m, count: m)
            }
        }
    }

    /// Joins tensors along `axis`; all other dimensions must agree.
    public static func concatenate(_ parts: [Tensor], axis: Int) -> Tensor {
        precondition(!parts.isEmpty, "concatenate: no tensors")
        let first = parts[0]
        let a = first.normalizedAxis(axis)
        for p in parts {
            precondition(p.rank == first.rank && p.shape[..<a] == first.shape[..<a]
                         && p.shape[(a + 1)...] == first.shape[(a + 1)...],
                         "concatenate: shapes \(parts.map(\.shape)) differ outside axis \(axis)")
        }
        let outer = first.shape[..<a].reduce(1, *)
        let inner = first.shape[(a + 1)...].reduce(1, *)
        let total = parts.reduce(0) { $0 + $1.shape[a] }
        var outShape = first.shape
        outShape[a] = total
        let out = Tensor(uninitializedShape: outShape)
        var start = 0
        for p in parts {
            let m = p.shape[a] * inner
            for o in 0..<outer {
                (out.data + (o * total + start) * inner).update(from: p.data + o * m, count: m)
            }
            start += p.shape[a]
        }
        return record(.concat, output: out, inputs: parts) { _, g in
            var start = 0
            for p in parts {
                let m = p.shape[a] * inner
                if p.requiresGrad {
                    let d = p.gradAccumulator()
                    for o in 0..<outer {
                        Kernels.addInPlace(d + o * m, g.data + (o * total + start) * inner, count: m)
                    }
                }
                start += p.shape[a]
            }
        }
    }

    /// Pads `axis` with `before` and `after` new positions, zeros or a reflection.
    /// Reflection needs `before` and `after` smaller than the axis.
    public func padded(axis: Int, before: Int, after: Int, mode: PaddingMode = .zero) -> Tensor {
        let a = normalizedAxis(axis)
        let (outer, n, inner) = splitAround(a)
        precondition(before >= 0 && after >= 0, "pad: negative padding \(before), \(after)")
        if mode == .reflect {
            precondition(before < n && after < n,
                         "pad: reflect padding \(before), \(after) needs an axis longer than both; axis \(axis) of \(shape)")
        }
        let m = n + before + after
        var outShape = shape
        outShape[a] = m
        let out = Tensor(uninitializedShape: outShape)
        // Source position along the axis for each output position, or -1 for a zero.
        let source: [Int] = (0..<m).map { j in
            let i = j - before
            if i >= 0 && i < n { return i }
            if mode == .zero { return -1 }
            return i < 0 ? -i : 2 * (n - 1) - i
        }
        for o in 0..<outer {
            for j in 0..<m {
                let dst = out.data + (o * m + j) * inner
                if source[j] < 0 {
                    dst.update(repeating: 0, count: inner)
                } else {
                    dst.update(from: data + (o * n + source[j]) * inner, count: inner)
                }
            }
        }
        return Tensor.record(mode == .zero ? .padZero : .padReflect, output: out, inputs: [self]) { [self] _, g in
            let d = gradAccumulator()
            for o in 0..<outer {
                for j in 0..<m where source[j] >= 0 {
                    Kernels.addInPlace(d + (o * n + source[j]) * inner, g.data + (o * m + j) * inner, count: inner)
                }
            }
        }
    }
}
