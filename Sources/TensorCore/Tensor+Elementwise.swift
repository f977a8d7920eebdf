// Elementwise arithmetic with broadcasting, scalar arithmetic, and pointwise functions.
// Binary gradients are composed from the forward kernels plus `sumToShape`; pointwise
// functions have a one-pass backward kernel each, as they sit on the hot path of every model.

import Foundation

enum BinaryKind { case add, sub, mul, div }

extension Tensor {
    static func binary(_ kind: BinaryKind, _ a: Tensor, _ b: Tensor, op: String) -> Tensor {
        let plan = Broadcast(a.shape, b.shape, op: op)
        let out = Tensor(uninitializedShape: plan.shape)
        let pa = a.data, pb = b.data, po = out.data
        let inner = plan.inner
        let sa = plan.aStrides[plan.dims.count - 1], sb = plan.bStrides[plan.dims.count - 1]
        let rowsPerRange = Swift.max(1, Parallel.minimumElementsPerThread / Swift.max(inner, 1))
        Parallel.forRanges(plan.rows, grain: rowsPerRange) { rows in
            for row in rows {
                let (oa, ob) = plan.offsets(row: row)
                let x = pa + oa, y = pb + ob, z = po + row * inner
                switch (kind, sa, sb) {
                case (.add, 1, 1): for j in 0..<inner { z[j] = x[j] + y[j] }
                case (.add, 1, 0): let c = y[0]; for j in 0..<inner { z[j] = x[j] + c }
                case (.add, _, _): let c = x[0]; for j in 0..<inner { z[j] = c + y[j] }
                case (.sub, 1, 1): for j in 0..<inner { z[j] = x[j] - y[j] }
                case (.sub, 1, 0): let c = y[0]; for j in 0..<inner { z[j] = x[j] - c }
                case (.sub, _, _): let c = x[0]; for j in 0..<inner { z[j] = c - y[j] }
                case (.mul, 1, 1): for j in 0..<inner { z[j] = x[j] * y[j] }
                case (.mul, 1, 0): let c = y[0]; for j in 0..<inner { z[j] = x[j] * c }
                case (.mul, _, _): let c = x[0]; for j in 0..<inner { z[j] = c * y[j] }
                case (.div, 1, 1): for j in 0..<inner { z[j] = x[j] / y[j] }
                case (.div, 1, 0): let c = y[0]; for j in 0..<inner { z[j] = x[j] / c }
                case (.div, _, _): let c = x[0]; for j in 0..<inner { z[j] = c / y[j] }
                }
            }
        }
        return out
    }

    /// Elementwise sum with NumPy broadcasting: `(B, T, C) + (C)` adds a row to every position.
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        let out = binary(.add, a, b, op: "add")
        return record(.add, output: out, inputs: [a, b]) { _, g in
            if a.requiresGrad { a.accumulateGrad(g.sumToShape(a.shape)) }
            if b.requiresGrad { b.accumulateGrad(g.sumToShape(b.shape)) }
        }
    }

    /// Elementwise difference with broadcasting.
    public static func - (a: Tensor, b: Tensor) -> Tensor {
        let out = binary(.sub, a, b, op: "sub")
        return record(.sub, output: out, inputs: [a, b]) { _, g in
            if a.requiresGrad { a.accumulateGrad(g.sumToShape(a.shape)) }
            if b.requiresGrad { b.accumulateGrad(-g.sumToShape(b.shape)) }
        }
    }

    /// Elementwise product with broadcasting.
    public static func * (a: Tensor, b: Tensor) -> Tensor {
        let out = binary(.mul, a, b, op: "mul")
        return record(.mul, output: out, inputs: [a, b]) { _, g in
            if a.requiresGrad { a.accumulateGrad(binary(.mul, g, b, op: "mul").sumToShape(a.shape)) }
            if b.requiresGrad { b.accumulateGrad(binary(.mul, g, a, op: "mul").sumToShape(b.shape)) }
        }
    }

    /// Elementwise quotient with broadcasting.
    public static func / (a: Tensor, b: Tensor) -> Tensor {
        let out = binary(.div, a, b, op: "div")
        return record(.div, output: out, inputs: [a, b]) { out, g in
            let gOverB = binary(.div, g, b, op: "div")
            if a.requiresGrad { a.accumulateGrad(gOverB.sumToShape(a.shape)) }
            // d(a/b)/db = -a/b² = -out/b
            if b.requiresGrad { b.accumulateGrad(-binary(.mul, gOverB, out, op: "mul").sumToShape(b.shape)) }
        }
    }

    /// `x + c` for every element.
    public func adding(_ c: Float) -> Tensor {
        let out = Tensor(uninitializedShape: shape)
        let x = data, y = out.data
        Parallel.forRanges(count) { r in for i in r { y[i] = x[i] + c } }
        return Tensor.record(.addScalar, output: out, inputs: [self]) { [self] _, g in
            accumulateGrad(g)
        }
    }

    /// `x * c` for every element.
    public func scaled(by c: Float) -> Tensor {
        let out = Tensor(uninitializedShape: shape)
        let x = data, y = out.data
        Parallel.forRanges(count) { r in for i in r { y[i] = x[i] * c } }
        return Tensor.record(.mulScalar, output: out, inputs: [self]) { [self] _, g in
            accumulateGrad(g.scaled(by: c))
        }
    }

    /// `x ^ p` for every element (x > 0 unless p is a whole number).
    public func pow(_ p: Float) -> Tensor {
        let out = Tensor(uninitializedShape: shape)
        let x = data, y = out.data
        Parallel.forRanges(count) { r in for i in r { y[i] = Foundation.pow(x[i], p) } }
        return Tensor.record(.powScalar, output: out, inputs: [self]) { [self] _, g in
            let d = Tensor(uninitializedShape: shape)
            let gx = g.data, dx = d.data
            for i in 0..<count { dx[i] = gx[i] * p * Foundation.pow(x[i], p - 1) }
            accumulateGrad(d)
        }
    }

    public static func + (a: Tensor, c: Float) -> Tensor { a.adding(c) }
    public static func + (c: Float, a: Tensor) -> Tensor { a.adding(c) }
    public static func - (a: Tensor, c: Float) -> Tensor { a.adding(-c) }
    public static func - (c: Float, a: Tensor) -> Tensor { (-a).adding(c) }
    public static func * (a: Tensor, c: Float) -> Tensor { a.scaled(by: c) }
    public static func * (c: Float, a: Tensor) -> Tensor { a.scaled(by: c) }
    public static func / (a: Tensor, c: Float) -> Tensor { a.scaled(by: 1 / c) }
    public static prefix func - (a: Tensor) -> Tensor { a.unary(.neg) }
}

/// Pointwise functions with their derivative, written in terms of the input x and output y.
enum UnaryKind {
    case neg, exp, log, sqrt, square, abs, relu, sigmoid, tanh, quickGELU, swish, geluTanh

    var op: Op {
        switch self {
        case .neg: .neg
        case .exp: .exp
        case .log: .log
        case .sqrt: .sqrt
        case .square: .square
        case .abs: .abs
        case .relu: .relu
        case .sigmoid: .sigmoid
        case .tanh: .tanh
        case .quickGELU: .quickGELU
        case .swish: .swish
        case .geluTanh: .geluTanh
        }
    }
}

@inline(__always) private func logistic(_ x: Float) -> Float { 1 / (1 + Foundation.exp(-x)) }

extension Tensor {
    func unary(_ kind: UnaryKind) -> Tensor {
        let out = Tensor(uninitializedShape: shape)
        let x = data, y = out.data
        Parallel.forRanges(count, grain: kind == .relu || kind == .neg || kind == .square ? 1 << 15 : 1 << 13) { r in
            switch kind {
            case .neg: for i in r { y[i] = -x[i] }
            case .exp: for i in r { y[i] = Foundation.exp(x[i]) }
            case .log: for i in r { y[i] = Foundation.log(x[i]) }
            case .sqrt: for i in r { y[i] = x[i].squareRoot() }
            case .square: for i in r { y[i] = x[i] * x[i] }
            case .abs: for i in r { y[i] = Swift.abs(x[i]) }
            case .relu: for i in r { y[i] = Swift.max(x[i], 0) }
            case .sigmoid: for i in r { y[i] = logistic(x[i]) }
            case .tanh: for i in r { y[i] = Foundation.tanh(x[i]) }
            case .quickGELU: for i in r { y[i] = x[i] * logistic(1.702 * x[i]) }
            case .swish: Kernels.map16(x, y, r) { Kernels.swish($0) }
            case .geluTanh: Kernels.map16(x, y, r) { Kernels.geluTanh($0) }
            }
        }
        return Tensor.record(kind.op, output: out, inputs: [self]) { [self] out, g in
            accumulateGrad(unaryBackward(kind, output: out, gradient: g))
        }
    }

    /// `dx = f'(x) * dy` in one pass.
    private func unaryBackward(_ kind: UnaryKind, output: Tensor, gradient: Tensor) -> Tensor {
        let d = Tensor(uninitializedShape: shape)
        let x = data, y = output.data, dy = gradient.data, dx = d.data
        Parallel.forRanges(count, grain: 1 << 14) { r in
            switch kind {
            case .neg: for i in r { dx[i] = -dy[i] }
            case .exp: for i in r { dx[i] = dy[i] * y[i] }
            case .log: for i in r { dx[i] = dy[i] / x[i] }
            case .sqrt: for i in r { dx[i] = dy[i] * 0.5 / y[i] }
            case .square: for i in r { dx[i] = dy[i] * 2 * x[i] }
            case .abs: for i in r { dx[i] = x[i] > 0 ? dy[i] : (x[i] < 0 ? -dy[i] : 0) }
            case .relu: for i in r { dx[i] = x[i] > 0 ? dy[i] : 0 }
            case .sigmoid: for i in r { dx[i] = dy[i] * y[i] * (1 - y[i]) }
            case .tanh: for i in r { dx[i] = dy[i] * (1 - y[i] * y[i]) }
            case .quickGELU:
                for i in r {
                    let s = logistic(1.702 * x[i])
                    dx[i] = dy[i] * (s + 1.702 * x[i] * s * (1 - s))
                }
            case .swish: Kernels.map16(x, dy, dx, r) { Kernels.swishDerivative($0) * $1 }
            case .geluTanh: Kernels.map16(x, dy, dx, r) { Kernels.geluTanhDerivative($0) * $1 }
            }
        }
        return d
    }

    /// `eˣ`.
    public func exp() -> Tensor { unary(.exp) }
    /// Natural logarithm.
    public func log() -> Tensor { unary(.log) }
    /// Square root.
    public func sqrt() -> Tensor { unary(.sqrt) }
    /// `x²`.
    public func square() -> Tensor { unary(.square) }
    /// `|x|` (gradient 0 at 0).
    public func abs() -> Tensor { unary(.abs) }
    /// `max(x, 0)`.
    public func relu() -> Tensor { unary(.relu) }
    /// `1 / (1 + e⁻ˣ)`.
    public func sigmoid() -> Tensor { unary(.sigmoid) }
    /// Hyperbolic tangent.
    public func tanh() -> Tensor { unary(.tanh) }
    /// `x · σ(1.702 x)`, Jukebox's activation.
    public func quickGELU() -> Tensor { unary(.quickGELU) }
    /// `x · σ(x)` (SiLU), in one vectorised pass.
    public func swish() -> Tensor { unary(.swish) }
    /// `0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³)))`, GELU's tanh approximation (flax's `gelu`),
    /// in one vectorised pass.
    public func geluTanh() -> Tensor { unary(.geluTanh) }
}
