// The prior: block-sparse attention patterns against masked dense attention, cached
// token-by-token inference against the full forward, and learning.

import XCTest
import Foundation
import TensorCore
import JukeboxKit
import ModelKit

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
            let sampler = PriorSampler(prior: prior, batch: N, precision: .float32)
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

final class HalfPrecisionTests: XCTestCase {
    /// The float16 path gives the float32 path's logits up to the rounding of the weights, for
    /// batch sizes that exercise every row group of the kernel (1, 2, 3, 4, 5).
    func testHalfPrecisionSamplerMatchesFloat32() throws {
        try XCTSkipUnless(SamplingPrecision.halfKernelsAvailable, SamplingPrecision.halfKernelsUnavailableReason ?? "")
        var rng = RandomGenerator(seed: 8)
        for (config, batch) in [(testPriorConfig(order: 2, depth: 3, bins: 40), 1), (testPriorConfig(level: 1, depth: 3), 5),
                                (testPriorConfig(order: 9, depth: 4).with { $0.mergedDecoder = true }, 3)] {
            let prior = Prior(config: config, levels: 3, vocabulary: LabelVocabulary(), sampleRate: 1000, seed: 3)
            // Round the weights to Float16 first, as a bundle shipped in F16 is: both paths then
            // use the same weights and differ only in summation order.
            for p in prior.namedParameters() { for i in 0..<p.tensor.count { p.tensor.data[i] = Float(Float16(p.tensor.data[i])) } }
            var cond = PriorConditioning.unlabelled(batch)
            if prior.isUpsampler { cond.upperCodes = (0..<(batch * config.nCtx / 4)).map { _ in Int32(rng.int(below: config.bins)) } }
            else { cond.timing = [TimingInfo](repeating: TimingInfo(total: 50_000, offset: 0, length: config.nCtx * 128), count: batch) }
            let a = PriorSampler(prior: prior, batch: batch, precision: .float32)
            let b = PriorSampler(prior: prior, batch: batch, precision: .float16)
            a.reset(conditioning: cond)
            b.reset(conditioning: cond)
            var worst: Float = 0
            var previous = [Int32](repeating: 0, count: batch)
            for _ in 0..<config.nCtx {
                let la = a.withThreading { a.step(previous: previous) }, lb = b.step(previous: previous)
                for i in 0..<(batch * config.bins) { worst = Swift.max(worst, Swift.abs(la[i] - lb[i])) }
                previous = (0..<batch).map { _ in Int32(rng.int(below: config.bins)) }
            }
            XCTAssertLessThan(worst, 1e-3, "float16 logits differ by \(worst) (batch \(batch))")
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

final class PriorLearningTests: XCTestCase {
    /// Greedy-ish sampling (very low temperature) of `count` tokens after `prime`.
    static func continuation(_ prior: Prior, prime: [Int32], count: Int, conditioning: PriorConditioning) -> [Int32] {
        let sampler = PriorSampler(prior: prior, batch: 1, precision: .float32)
        sampler.prime(prime, conditioning: conditioning)
        var g = RandomGenerator(seed: 1)
        let order = UnsafeMutablePointer<Int32>.allocate(capacity: prior.config.bins)
        defer { order.deallocate() }
        var out: [Int32] = []
        var previous = prime.last!
        for _ in 0..<count {
            let logits = sampler.step(previous: [previous])
            previous = TokenFilter(temperature: 0.01).draw(logits, count: prior.config.bins, order: order, generator: &g)
            out.append(previous)
        }
        return out
    }

    /// A tiny prior learns a repeating sequence: loss near zero, and cached sampling at low
    /// temperature continues the pattern.
    func testTinyPriorLearnsARepeatingSequence() throws {
        let config = try PriorConfig.load(path: repoPath("configs/prior-tiny.json"))
        let pattern: [Int32] = [3, 17, 5, 60, 9, 9, 41]
        let prior = Prior(config: config, levels: 3, vocabulary: LabelVocabulary(), sampleRate: 8000, seed: 2)
        let adam = Adam(parameters: prior.namedParameters(), learningRate: 3e-3, warmupSteps: 10)
        var g = RandomGenerator(seed: 4)
        let (N, T) = (8, config.nCtx)
        func window(_ phase: Int) -> [Int32] { (0..<T).map { pattern[(phase + $0) % pattern.count] } }
        // `last` is the mean of the final 20 steps' losses, so one unlucky batch cannot decide.
        let steps = 800
        var first: Float = 0, last: Float = 0
        for s in 0..<steps {
            let tokens = (0..<N).flatMap { _ in window(g.int(below: pattern.count)) }
            var cond = PriorConditioning.unlabelled(N)
            cond.timing = [TimingInfo](repeating: TimingInfo(total: 80_000, offset: 0, length: T * 128), count: N)
            adam.zeroGrad()
            let loss = prior.loss(tokens, batch: N, conditioning: cond)
            if s == 0 { first = loss.item }
            if s >= steps - 20 { last += loss.item / 20 }
            loss.backward()
            clipGradientNorm(adam.parameters, maxNorm: 1)
            adam.update()
        }
        XCTAssertGreaterThan(first, 5, "an untrained prior over 64 codes starts near 6 bits")
        // Position 0 cannot know the phase (log2 7 ≈ 2.8 bits over 32 positions ≈ 0.09 bits/token).
        XCTAssertLessThan(last, 0.2, "loss fell from \(first) to \(last) bits/token")
        var cond = PriorConditioning.unlabelled(1)
        cond.timing = [TimingInfo(total: 80_000, offset: 0, length: T * 128)]
        let prime = window(2).prefix(8).map { $0 }
        let sampled = Self.continuation(prior, prime: prime, count: T - 8, conditioning: cond)
        XCTAssertEqual(sampled, Array(window(2)[8...]))
    }

    /// A tiny upsampler learns a deterministic mapping from upper codes: each upper code u
    /// becomes the four lower codes (u, u+1, u+2, u+3) mod bins.
    func testTinyUpsamplerLearnsAMapping() throws {
        let config = try PriorConfig.load(path: repoPath("configs/upsampler-tiny.json"), level: 1)
        let prior = Prior(config: config, levels: 3, vocabulary: LabelVocabulary(), sampleRate: 8000, seed: 3)
        XCTAssertTrue(prior.isUpsampler)
        let adam = Adam(parameters: prior.namedParameters(), learningRate: 3e-3, warmupSteps: 10)
        var g = RandomGenerator(seed: 5)
        let (N, T, bins) = (8, config.nCtx, Int32(config.bins))
        func lower(_ upper: [Int32]) -> [Int32] { upper.flatMap { u in (0..<4).map { (u + Int32($0)) % bins } } }
        var last: Float = 0
        for _ in 0..<300 {
            let upper = (0..<(N * T / 4)).map { _ in Int32(g.int(below: Int(bins))) }
            var cond = PriorConditioning.unlabelled(N)
            cond.upperCodes = upper
            adam.zeroGrad()
            let loss = prior.loss(lower(upper), batch: N, conditioning: cond)
            last = loss.item
            loss.backward()
            clipGradientNorm(adam.parameters, maxNorm: 1)
            adam.update()
        }
        XCTAssertLessThan(last, 0.3, "upsampler loss \(last) bits/token")
        let upper = (0..<(T / 4)).map { _ in Int32(g.int(below: Int(bins))) }
        var cond = PriorConditioning.unlabelled(1)
        cond.upperCodes = upper
        let target = lower(upper)
        let sampled = Self.continuation(prior, prime: [target[0]], count: T - 1, conditioning: cond)
        let agreement = zip(sampled, target.dropFirst()).filter { $0 == $1 }.count
        XCTAssertGreaterThanOrEqual(agreement, (T - 1) * 9 / 10, "sampled \(sampled) for \(target)")
    }

    /// The paper's configs, with their own widths and heads but 2 layers and n_ctx 256: one
    /// training step and a few cached sampling steps run and give finite values.
    func testPaperConfigsRunAtReducedDepth() throws {
        for name in ["prior-5b", "prior-1b", "upsampler-jukebox"] {
            var config = try PriorConfig.load(path: repoPath("configs/\(name).json"))
            config.depth = 2
            config.nCtx = 256
            config.blocks = Swift.min(config.blocks, 256 / 64) // keep blocks of 64 positions
            if name == "upsampler-jukebox" { config.level = 1 }
            let prior = Prior(config: config, levels: 3, vocabulary: LabelVocabulary(artists: ["a"], genres: ["g"]),
                              sampleRate: 44100, seed: 1)
            var g = RandomGenerator(seed: 2)
            let tokens = (0..<256).map { _ in Int32(g.int(below: 2048)) }
            var cond = PriorConditioning(artists: [1], genres: [[1]])
            if prior.isUpsampler {
                cond.upperCodes = (0..<64).map { _ in Int32(g.int(below: 2048)) }
            } else {
                cond.timing = [TimingInfo(total: 44100 * 120, offset: 44100 * 10, length: 256 * 128)]
            }
            let adam = Adam(parameters: prior.namedParameters())
            let loss = prior.loss(tokens, batch: 1, conditioning: cond)
            XCTAssertEqual(loss.item, 11, accuracy: 1.5, "\(name): an untrained prior is near log2(2048) bits")
            loss.backward()
            adam.update()
            let sampler = PriorSampler(prior: prior, batch: 1, precision: .float32)
            sampler.reset(conditioning: cond)
            var previous: Int32 = 0
            let order = UnsafeMutablePointer<Int32>.allocate(capacity: 2048)
            defer { order.deallocate() }
            for _ in 0..<4 {
                let logits = sampler.step(previous: [previous])
                XCTAssertTrue((0..<2048).allSatisfy { logits[$0].isFinite }, "\(name): logits not finite")
                previous = TokenFilter(temperature: 1, topK: 5).draw(logits, count: 2048, order: order, generator: &g)
            }
        }
    }
}

final class PriorTrainerTests: XCTestCase {
    /// A prior trained 10 steps straight equals one trained 5 + resume + 5, bit for bit; labels
    /// from a CSV end up in the vocabulary.
    func testResumeContinuesExactlyAndLabelsAreRead() throws {
        let stack = TinyStack.shared
        let data = try VQVAETrainerTests.makeData("prior-resume-data", files: 4, seconds: 3)
        let labels = temporaryDirectory("labels") + "/labels.csv"
        try "path,artist,genre\nclip0.wav,Ada,jazz\nclip1.wav,Ada,jazz;blues\nclip2.wav,Bo,\nclip3.wav,Bo,rock\n"
            .write(toFile: labels, atomically: true, encoding: .utf8)
        var config = try PriorConfig.load(path: repoPath("configs/prior-tiny.json"))
        config.train.evalEvery = 3
        let vqvae = stack.dir + "/vqvae/checkpoint.safetensors"
        let dirA = temporaryDirectory("prior-a"), dirB = temporaryDirectory("prior-b")
        let straight = try PriorTrainer(config: config, vqvaePath: vqvae, data: [data], labels: labels,
                                        outDirectory: dirA + "/run", seed: 4, resume: false) { _ in }
        XCTAssertEqual(straight.prior.vocabulary.artists, ["unknown", "ada", "bo"])
        XCTAssertEqual(straight.prior.vocabulary.genres, ["unknown", "blues", "jazz", "rock"])
        _ = try straight.train(totalSteps: 10) { _ in }
        let first = try PriorTrainer(config: config, vqvaePath: vqvae, data: [data], labels: labels,
                                     outDirectory: dirB + "/run", seed: 4, resume: false) { _ in }
        _ = try first.train(totalSteps: 5) { _ in }
        let second = try PriorTrainer(config: config, vqvaePath: vqvae, data: [data], labels: labels,
                                      outDirectory: dirB + "/run", seed: 77, resume: true) { _ in }
        XCTAssertEqual(second.step, 5)
        _ = try second.train(totalSteps: 10) { _ in }
        XCTAssertEqual(straight.prior.namedParameters().flatMap { $0.tensor.array },
                       second.prior.namedParameters().flatMap { $0.tensor.array })
        // Held-out loss was logged in bits per token.
        let log = try String(contentsOfFile: dirB + "/run/metrics.jsonl", encoding: .utf8)
        XCTAssertTrue(log.contains("heldout_bits_per_token"))
        // A prior checkpoint is refused where a VQ-VAE is expected, and vice versa.
        XCTAssertThrowsError(try VQVAE.load(dirB + "/run/checkpoint.safetensors"))
        XCTAssertThrowsError(try Prior.load(vqvae))
    }
}
