// The prior: block-sparse attention patterns against masked dense attention, cached
// token-by-token inference against the full forward, and learning.

import XCTest
import Foundation
import TensorCore
import JukeboxKit

/// A small prior config for tests.
func testPriorConfig(level: Int = 2, order: Int = 2, nCtx: Int = 64, blocks: Int = 8, width: Int = 32, depth: Int = 3,
                     heads: Int = 2, bins: Int = 16) -> PriorConfig {
    var c = PriorConfig()
    c.level = level
    c.bins = bins
    c.nCtx = nCtx
    c.width = width
    c.depth = depth
    c.heads = heads
    c.blocks = blocks
    c.attnOrder = order
    c.initScale = 1
    c.minDuration = 0
    c.maxDuration = 100
    c.tBins = 16
    c.conditioner.width = 16
    c.conditioner.depth = 2
    return c
}

final class AttentionPatternTests: XCTestCase {
    /// Whether query i may see key j under `pattern` with block length L (the reference rule).
    static func allowed(_ pattern: AttentionPattern, _ i: Int, _ j: Int, _ L: Int) -> Bool {
        switch pattern {
        case .dense: return j <= i
        case .row: return j <= i && j / L == i / L
        case .column: return j <= i && j % L == i % L
        case .previousRow: return j / L == i / L - 1
        }
    }

    /// Each pattern's block-sparse computation against dense attention with the equivalent mask.
    func testPatternsMatchMaskedDenseAttention() {
        var rng = RandomGenerator(seed: 1)
        let (N, T, S, H, L) = (2, 32, 8, 2, 8)
        for pattern in AttentionPattern.allCases {
            var c = testPriorConfig(order: 0, nCtx: T, blocks: T / L, width: 4 * S)
            c.heads = H
            let q = Tensor.randomNormal([N, T, S], generator: &rng), k = Tensor.randomNormal([N, T, S], generator: &rng)
            let v = Tensor.randomNormal([N, T, S], generator: &rng)
            let attention = FactoredAttentionProbe(pattern: pattern, config: c)
            let out = attention.attend(q, k, v)
            let ref = Tensor.referenceAttention(q: q.array, k: k.array, v: v.array, B: N, Tq: T, Tk: T, heads: H, D: S / H) {
                Self.allowed(pattern, $0, $1, L)
            }
            XCTAssertLessThan(maxAbs(out.array, ref), 1e-4, "\(pattern)")
        }
    }

    func testAttentionOrderLayouts() {
        XCTAssertEqual(AttentionPattern.layout(order: 2, depth: 6), [.row, .column, .previousRow, .row, .column, .previousRow])
        XCTAssertEqual(AttentionPattern.layout(order: 0, depth: 2), [.dense, .dense])
        XCTAssertNil(AttentionPattern.layout(order: 7, depth: 2))
    }
}

/// Runs one factored-attention layer's pattern on given q, k, v.
struct FactoredAttentionProbe {
    let layer: FactoredAttention
    init(pattern: AttentionPattern, config: PriorConfig) {
        var g = RandomGenerator(seed: 0)
        layer = FactoredAttention(width: config.width, stateWidth: config.attentionWidth, heads: config.heads, pattern: pattern,
                                  blockLength: config.blockLength, initScale: 1, generator: &g)
    }
    func attend(_ q: Tensor, _ k: Tensor, _ v: Tensor) -> Tensor { layer.attend(q, k, v) }
}

final class PriorCacheTests: XCTestCase {
    /// Logits of token-by-token cached inference equal the full forward, for a top-level prior
    /// of every attention pattern and for an upsampler, and after a prime.
    func testCachedSamplingEqualsFullForward() {
        var cases: [(String, PriorConfig)] = AttentionPattern.allCases.map { p in
            ("pattern \(p)", testPriorConfig(order: 0, depth: 1).with { $0.attnOrderOverride(p) })
        }
        cases.append(("order 2 prior", testPriorConfig(order: 2, depth: 4)))
        cases.append(("upsampler", testPriorConfig(level: 1, order: 2, depth: 3)))
        cases.append(("merged decoder", testPriorConfig(order: 9, depth: 4).with { $0.mergedDecoder = true }))
        var rng = RandomGenerator(seed: 5)
        for (name, base) in cases {
            // Larger weights than the default make attention far from uniform, so a wrong key
            // set shows up clearly in the logits.
            let config = base.with { $0.initScale = 10 }
            let prior = Prior(config: config, levels: 3, vocabulary: LabelVocabulary(artists: ["a", "b"], genres: ["g"]),
                              sampleRate: 1000, seed: 3)
            let N = 2, T = config.nCtx
            let tokens = (0..<(N * T)).map { _ in Int32(rng.int(below: config.bins)) }
            var cond = PriorConditioning(artists: [1, 2], genres: [[1], []])
            if prior.isUpsampler {
                cond.upperCodes = (0..<(N * T / 4)).map { _ in Int32(rng.int(below: config.bins)) }
            } else {
                cond.timing = [TimingInfo(total: 50_000, offset: 1000, length: T * 128), TimingInfo(total: 9000, offset: 0, length: T * 128)]
            }
            let full = Tensor.withoutGrad { prior.logits(tokens, batch: N, conditioning: cond) }   // (N, T, bins)
            let sampler = PriorSampler(prior: prior, batch: N)
            sampler.reset(conditioning: cond)
            var worst: Float = 0
            for t in 0..<T {
                let previous = t == 0 ? [Int32](repeating: 0, count: N) : (0..<N).map { tokens[$0 * T + t - 1] }
                let logits = sampler.step(previous: previous)
                for n in 0..<N {
                    for b in 0..<config.bins {
                        worst = Swift.max(worst, Swift.abs(logits[n * config.bins + b] - full.data[(n * T + t) * config.bins + b]))
                    }
                }
            }
            XCTAssertLessThan(worst, 1e-4, "\(name): cached logits differ from the full forward by \(worst)")

            // Prime with 37 tokens (not a block multiple), then continue token by token.
            let P = 37
            sampler.prime((0..<N).flatMap { tokens[($0 * T)..<($0 * T + P)] }, conditioning: cond)
            worst = 0
            for t in P..<T {
                let logits = sampler.step(previous: (0..<N).map { tokens[$0 * T + t - 1] })
                for n in 0..<N {
                    for b in 0..<config.bins {
                        worst = Swift.max(worst, Swift.abs(logits[n * config.bins + b] - full.data[(n * T + t) * config.bins + b]))
                    }
                }
            }
            XCTAssertLessThan(worst, 1e-4, "\(name): primed cached logits differ by \(worst)")
        }
    }
}

extension PriorConfig {
    func with(_ change: (inout PriorConfig) -> Void) -> PriorConfig {
        var c = self
        change(&c)
        return c
    }

    /// A one-pattern order for tests: 0 dense, 1 alternates row/column (depth 1 → row), …
    mutating func attnOrderOverride(_ p: AttentionPattern) {
        switch p {
        case .dense: attnOrder = 0
        case .row: attnOrder = 1
        case .column: attnOrder = 1; depth = 2
        case .previousRow: attnOrder = 2; depth = 3
        }
    }
}
