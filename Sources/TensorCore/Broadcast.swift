// NumPy-style broadcasting of two shapes, reduced to the fewest dimensions so that the inner
// loop of an elementwise kernel runs over one long contiguous (or constant) stretch.
//
// Example: (B, T, C) + (C) collapses to dims (B*T, C) with strides a (C, 1), b (0, 1);
// (B, T, C) * (B, T, 1) collapses to dims (B*T, C) with strides a (C, 1), b (1, 0).

/// How two shapes broadcast against each other.
struct Broadcast {
    /// The broadcast result shape.
    let shape: [Int]
    /// Collapsed loop extents (at least one).
    let dims: [Int]
    /// Element strides of each operand along `dims`; 0 where it is broadcast.
    let aStrides: [Int]
    let bStrides: [Int]

    init(_ aShape: [Int], _ bShape: [Int], op: String) {
        let rank = max(aShape.count, bShape.count)
        let a = Array(repeating: 1, count: rank - aShape.count) + aShape
        let b = Array(repeating: 1, count: rank - bShape.count) + bShape
        var out = [Int](repeating: 1, count: rank)
        for i in 0..<rank {
            precondition(a[i] == b[i] || a[i] == 1 || b[i] == 1,
                         "\(op): shapes \(aShape) and \(bShape) do not broadcast")
            out[i] = (a[i] == 1) ? b[i] : a[i]
        }
        shape = out
        var sa = [Int](repeating: 0, count: rank), sb = sa
        var accA = 1, accB = 1
        for i in stride(from: rank - 1, through: 0, by: -1) {
            sa[i] = a[i] == 1 ? 0 : accA
            sb[i] = b[i] == 1 ? 0 : accB
            accA *= a[i]
            accB *= b[i]
        }
        // Merge dimension i into i+1 whenever both operands walk them as one.
        var dims: [Int] = [], da: [Int] = [], db: [Int] = []
        for i in stride(from: rank - 1, through: 0, by: -1) where out[i] != 1 {
            // A zero stride continues a zero stride, so broadcast stretches merge as well.
            if let last = dims.last, da.last! * last == sa[i], db.last! * last == sb[i] {
                dims[dims.count - 1] *= out[i]
            } else {
                dims.append(out[i])
                da.append(sa[i])
                db.append(sb[i])
            }
        }
        if dims.isEmpty { dims = [1]; da = [1]; db = [1] }
        self.dims = dims.reversed()
        self.aStrides = da.reversed()
        self.bStrides = db.reversed()
    }

    /// Number of result elements.
    var count: Int { dims.reduce(1, *) }
    /// Length of the innermost loop.
    var inner: Int { dims[dims.count - 1] }
    /// Number of inner loops.
    var rows: Int { count / inner }

    /// Element offsets of each operand at the start of inner loop `row`.
    @inline(__always)
    func offsets(row: Int) -> (Int, Int) {
        var r = row, oa = 0, ob = 0
        var i = dims.count - 2
        while i >= 0 {
            let d = dims[i]
            let idx = r % d
            r /= d
            oa += idx * aStrides[i]
            ob += idx * bStrides[i]
            i -= 1
        }
        return (oa, ob)
    }
}

extension Tensor {
    /// Sums this tensor (a broadcast result) down to `target`, the shape of a broadcast operand.
    /// The inverse of broadcasting, used by the backward of every broadcasting operation.
    public func sumToShape(_ target: [Int]) -> Tensor {
        if target == shape { return self }
        let plan = Broadcast(shape, target, op: "sumToShape")
        precondition(plan.shape == shape, "sumToShape: \(target) does not broadcast to \(shape)")
        let out = Tensor.zeros(target)
        let g = data, o = out.data
        let inner = plan.inner
        let sg = plan.aStrides[plan.dims.count - 1], so = plan.bStrides[plan.dims.count - 1]
        for row in 0..<plan.rows {
            let (og, oo) = plan.offsets(row: row)
            if so == 0 {
                var acc: Float = 0
                for j in 0..<inner { acc += g[og + j * sg] }
                o[oo] += acc
            } else {
                for j in 0..<inner { o[oo + j] += g[og + j * sg] }
            }
        }
        return out
    }
}
