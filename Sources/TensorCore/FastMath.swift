// A vectorised exponential for the softmax loops of attention.
//
// Shapes: x (count) — flat Float32 buffers; v — SIMD16<Float>, sixteen lanes.
//
// libm's expf costs a call and a table lookup per element; a (128 × 2048) score chunk needs a
// quarter of a million of them, which took longer than the two matrix products around it. Here
// sixteen lanes go through at once, as plain arithmetic the compiler keeps in vector registers:
//
//   e^x = 2^n · e^r,   n = round(x · log₂e),   r = x − n·ln2 ∈ [−ln2/2, ln2/2]
//
// n·ln2 is subtracted in two parts (Cody and Waite): ln2Hi has only 16 significant bits, so
// n · ln2Hi is exact for |n| ≤ 128 and r keeps its low bits. e^r is a degree-6 polynomial fitted
// by Remez exchange for relative error on that interval (1.9e−9, far below Float's 6e−8 half-ulp),
// so the rounding of the few float operations sets the accuracy: at most 1.3 ulp from the
// correctly rounded result on every 32nd Float of [−87.33, 88.72] (the tests assert 2). 2^n is
// built from its bits, (n + 127) << 23, after rounding with the 1.5 · 2²³ trick (adding it leaves
// n in the low mantissa bits), which needs no rounding instruction. Below
// ln(Float.leastNormalMagnitude) ≈ −87.34 the result flushes to 0 (−∞ included), above
// ln(Float.greatestFiniteMagnitude) ≈ 88.72 it is +∞; NaN stays NaN.
//
// No fused multiply-add: the package builds for baseline x86-64, where `addingProduct` would be a
// libm call per lane.

extension Kernels {
    /// e^x in every lane, within 2 ulp for x in [−87.33, 88.72]; 0 below about −87.34 (and for
    /// −∞), +∞ above about 88.72, NaN for NaN.
    @inline(__always)
    public static func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let log2e: Float = 1.442_695_04
        let ln2Hi: Float = 0.693_145_751_953_125     // 16 significant bits: n · ln2Hi is exact
        let ln2Lo: Float = 1.428_606_765_330_187e-06 // ln2 − ln2Hi
        let roundingShift = SIMD16<Float>(repeating: 12_582_912)   // 1.5 · 2²³
        let n = x * log2e + roundingShift - roundingShift
        let r = x - n * ln2Hi - n * ln2Lo
        var p = r * 1.383_684_576e-3 + 8.374_815_807e-3
        p = p * r + 4.166_822_508e-2
        p = p * r + 1.666_641_980e-1
        p = p * r + 4.999_999_106e-1
        p = p * r + 1
        p = p * r + 1
        // n + 1.5·2²³ has the bits 0x4B40_0000 + n; move n + 127 into the exponent field. 2^128
        // has no exponent field, so for x in (88.38, 88.72] the result is doubled after scaling by
        // 2^127 instead: that overflows only where e^x itself does.
        let top = n .> 127
        let scaleExponent = n.replacing(with: 127, where: top)
        let exponent = (unsafeBitCast(scaleExponent + roundingShift, to: SIMD16<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        var y = p * unsafeBitCast(exponent, to: SIMD16<Float>.self)
        y.replace(with: y + y, where: top)
        y.replace(with: 0, where: x .< -87.336_544)
        y.replace(with: .infinity, where: x .> 88.722_839)
        return y
    }

    /// x · σ(x) = x / (1 + e⁻ˣ) in every lane.
    @inline(__always)
    static func swish(_ x: SIMD16<Float>) -> SIMD16<Float> { x / (1 + exp(-x)) }

    /// d/dx x·σ(x) = σ(x)·(1 + x·(1 − σ(x))).
    @inline(__always)
    static func swishDerivative(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let s = 1 / (1 + exp(-x))
        return s * (1 + x * (1 - s))
    }

    /// GELU's tanh form, 0.5·x·(1 + tanh(u)) with u = √(2/π)(x + 0.044715x³), written as
    /// x·σ(2u) (the same function: 0.5(1 + tanh u) = σ(2u)), which needs one exponential.
    @inline(__always)
    static func geluTanh(_ x: SIMD16<Float>) -> SIMD16<Float> {
        x / (1 + exp(-geluTwiceInner(x)))
    }

    /// d/dx x·σ(2u) = σ(2u) + x·σ(2u)(1 − σ(2u))·2u′, 2u′ = 2√(2/π)(1 + 3·0.044715x²).
    @inline(__always)
    static func geluTanhDerivative(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let s = 1 / (1 + exp(-geluTwiceInner(x)))
        let twiceInnerSlope = (1 + 0.134_145 * x * x) * 1.595_769_1
        return s * (1 + x * (1 - s) * twiceInnerSlope)
    }

    /// 2u = 2√(2/π)·(x + 0.044715x³).
    @inline(__always)
    static func geluTwiceInner(_ x: SIMD16<Float>) -> SIMD16<Float> { (x + 0.044_715 * x * x * x) * 1.595_769_1 }

    /// `y[i] = f(x[i])` over `range`, sixteen lanes at a time (the tail padded with zeros).
    @inline(__always)
    static func map16(_ x: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ range: Range<Int>,
                      _ f: (SIMD16<Float>) -> SIMD16<Float>) {
        var i = range.lowerBound
        while i + 16 <= range.upperBound {
            UnsafeMutableRawPointer(y + i).storeBytes(of: f(UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)), as: SIMD16<Float>.self)
            i += 16
        }
        if i < range.upperBound {
            var v = SIMD16<Float>()
            for k in 0..<(range.upperBound - i) { v[k] = x[i + k] }
            let r = f(v)
            for k in 0..<(range.upperBound - i) { y[i + k] = r[k] }
        }
    }

    /// `z[i] = f(x[i], y[i])` over `range`, sixteen lanes at a time.
    @inline(__always)
    static func map16(_ x: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ z: UnsafeMutablePointer<Float>,
                      _ range: Range<Int>, _ f: (SIMD16<Float>, SIMD16<Float>) -> SIMD16<Float>) {
        var i = range.lowerBound
        while i + 16 <= range.upperBound {
            let a = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self), b = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(z + i).storeBytes(of: f(a, b), as: SIMD16<Float>.self)
            i += 16
        }
        if i < range.upperBound {
            var a = SIMD16<Float>(), b = SIMD16<Float>()
            for k in 0..<(range.upperBound - i) { a[k] = x[i + k]; b[k] = y[i + k] }
            let r = f(a, b)
            for k in 0..<(range.upperBound - i) { z[i + k] = r[k] }
        }
    }

    /// Largest of `x[0..<count]` (−∞ for an empty buffer). NaN entries are skipped.
    public static func maximum(_ x: UnsafePointer<Float>, count: Int) -> Float {
        let raw = UnsafeRawPointer(x)
        var m = SIMD16<Float>(repeating: -.infinity)
        var i = 0
        while i + 16 <= count {
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            m.replace(with: v, where: v .> m)
            i += 16
        }
        var result = m.max()
        while i < count {
            if x[i] > result { result = x[i] }
            i += 1
        }
        return result
    }

    /// Replaces `x[i]` by `e^(x[i] − shift)` for `i < count` and returns the sum of the results
    /// (summed in sixteen Float partial sums). With `shift` the row maximum this is the
    /// numerator of a softmax; with a saved log-sum-exp it is the softmax itself.
    public static func exponentiate(_ x: UnsafeMutablePointer<Float>, count: Int, subtracting shift: Float) -> Float {
        let raw = UnsafeMutableRawPointer(x)
        var sum = SIMD16<Float>()
        var i = 0
        while i + 16 <= count {
            let e = exp(raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) - shift)
            raw.storeBytes(of: e, toByteOffset: i * 4, as: SIMD16<Float>.self)
            sum += e
            i += 16
        }
        if i < count {
            // The tail goes through the same polynomial; padding lanes are −∞ and give 0.
            var v = SIMD16<Float>(repeating: -.infinity)
            for j in 0..<(count - i) { v[j] = x[i + j] }
            let e = exp(v - shift)
            for j in 0..<(count - i) { x[i + j] = e[j] }
            sum += e
        }
        return sum.sum()
    }
}
