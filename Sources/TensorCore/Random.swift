// A seeded random generator: xoshiro256** (Blackman and Vigna), state filled from the seed by
// splitmix64. Every random choice in jukebox (initialisation, crops, codebook restarts,
// sampling) draws from one of these, so a seed reproduces a run bit for bit, and the four
// state words go into checkpoints so a resumed run continues the same stream.

import Foundation

/// Reproducible pseudo-random numbers.
public struct RandomGenerator: RandomNumberGenerator, Sendable {
    /// The generator's complete state; restoring it continues the same sequence.
    public private(set) var state: (UInt64, UInt64, UInt64, UInt64)

    /// A generator whose sequence is determined by `seed`.
    public init(seed: UInt64) {
        var s = seed
        func splitmix() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    /// A generator continuing from a saved ``stateWords`` array.
    public init(stateWords w: [UInt64]) {
        precondition(w.count == 4 && w.contains { $0 != 0 }, "RandomGenerator: state must be four words, not all zero")
        state = (w[0], w[1], w[2], w[3])
    }

    /// The state as four words, for checkpoints.
    public var stateWords: [UInt64] { [state.0, state.1, state.2, state.3] }

    @inline(__always) private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        let result = Self.rotl(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = Self.rotl(state.3, 45)
        return result
    }

    /// Uniform in [0, 1) with 24 random bits.
    public mutating func uniform() -> Float {
        Float(next() >> 40) * (1 / Float(1 << 24))
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func uniformDouble() -> Double {
        Double(next() >> 11) * (1 / Double(UInt64(1) << 53))
    }

    /// Standard normal (Box–Muller; one of the pair is used, so each call costs two uniforms).
    public mutating func normal() -> Float {
        let u1 = 1 - uniformDouble()          // (0, 1], keeps log finite
        let u2 = uniformDouble()
        return Float((-2 * Foundation.log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }

    /// Uniform integer in `0..<bound` without modulo bias.
    public mutating func int(below bound: Int) -> Int {
        precondition(bound > 0, "RandomGenerator.int(below:): bound \(bound) must be positive")
        return Int(next(upperBound: UInt64(bound)))
    }

    /// A uniformly random permutation of `0..<n` (Fisher–Yates).
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n < 2 { return p }
        for i in stride(from: n - 1, to: 0, by: -1) {
            p.swapAt(i, int(below: i + 1))
        }
        return p
    }

    /// An index drawn with probability proportional to `weights[i]` (non-negative, not all
    /// zero). Used with softmax probabilities for token sampling.
    public mutating func categorical(_ weights: UnsafePointer<Float>, count: Int) -> Int {
        var total: Double = 0
        for i in 0..<count { total += Double(weights[i]) }
        precondition(total > 0 && total.isFinite, "categorical: weights sum to \(total)")
        let target = uniformDouble() * total
        var acc: Double = 0
        for i in 0..<count {
            acc += Double(weights[i])
            if target < acc { return i }
        }
        // Rounding can leave target == total: take the last index with weight.
        for i in stride(from: count - 1, through: 0, by: -1) where weights[i] > 0 { return i }
        return count - 1
    }

    /// `count` samples of N(0, std²) into `dst`.
    public mutating func fillNormal(_ dst: UnsafeMutablePointer<Float>, count: Int, std: Float) {
        for i in 0..<count { dst[i] = normal() * std }
    }

    /// `count` samples of U(low, high) into `dst`.
    public mutating func fillUniform(_ dst: UnsafeMutablePointer<Float>, count: Int, low: Float, high: Float) {
        for i in 0..<count { dst[i] = low + (high - low) * uniform() }
    }
}

extension Tensor {
    /// A tensor of N(0, std²) samples.
    public static func randomNormal(_ shape: [Int], std: Float = 1, generator: inout RandomGenerator) -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        generator.fillNormal(t.data, count: t.count, std: std)
        return t
    }

    /// A tensor of U(low, high) samples.
    public static func randomUniform(_ shape: [Int], low: Float, high: Float, generator: inout RandomGenerator) -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        generator.fillUniform(t.data, count: t.count, low: low, high: high)
        return t
    }
}
