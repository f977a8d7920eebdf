// `jukebox bench prior`: a top-level prior of width 512, depth 8, 4 heads, n_ctx 2048 in 32
// blocks, attention cycling row/column/previous-row, 2048 codes (about 8.4 M parameters):
// cached sampling speed at batch 1 and 8, and one training step at batch 4.

import Foundation
import TensorCore
import ModelKit

/// The benchmark prior's config.
public func benchmarkPriorConfig() -> PriorConfig {
    var c = PriorConfig()
    c.level = 2
    c.bins = 2048
    c.nCtx = 2048
    c.width = 512
    c.depth = 8
    c.heads = 4
    c.blocks = 32
    c.attnOrder = 2
    c.initScale = 0.7
    c.tBins = 64
    c.minDuration = 0
    c.maxDuration = 600
    return c
}

/// The cases of `jukebox bench prior`.
public func priorBenchmarks(repeats: Int = 3) -> [BenchmarkResult] {
    let config = benchmarkPriorConfig()
    let prior = Prior(config: config, levels: 3, vocabulary: LabelVocabulary(), sampleRate: 44100, seed: 1)
    var results: [BenchmarkResult] = []
    let params = Double(prior.parameterCount)
    let precisions: [SamplingPrecision] = SamplingPrecision.halfKernelsAvailable ? [.float16, .float32] : [.float32]
    for precision in precisions {
    for batch in [1, 8] {
        let sampler = PriorSampler(prior: prior, batch: batch, precision: precision)
        var cond = PriorConditioning.unlabelled(batch)
        cond.timing = [TimingInfo](repeating: TimingInfo(total: 44100 * 60, offset: 0, length: 2048 * 128), count: batch)
        let tokens = 256
        let order = UnsafeMutablePointer<Int32>.allocate(capacity: config.bins)
        defer { order.deallocate() }
        var g = RandomGenerator(seed: 1)
        let seconds = Benchmark.median(repeats: repeats) { sampler.withThreading {
            sampler.reset(conditioning: cond)
            var previous = [Int32](repeating: 0, count: batch)
            for _ in 0..<tokens {
                let logits = sampler.step(previous: previous)
                for n in 0..<batch {
                    previous[n] = TokenFilter(temperature: 0.99).draw(logits + n * config.bins, count: config.bins,
                                                                       order: order, generator: &g)
                }
            }
        } }
        let rate = Double(batch * tokens) / seconds
        let suffix = precision == precisions[0] ? "" : "-\(precision.rawValue)"
        results.append(BenchmarkResult(name: "prior-sample-b\(batch)\(suffix)", milliseconds: seconds * 1e3,
                                       gflops: 2 * params * rate / 1e9,
                                       sgemmGflops: Benchmark.sgemmGflops(m: batch, n: config.width, k: config.width, repeats: repeats),
                                       extra: [("tokens_per_s", rate),
                                               ("weights_gb_per_s", (precision == .float16 ? 2 : 4) * params * rate / Double(batch) / 1e9)],
                                       note: precision.rawValue))
    }
    }
    // One training step at batch 4 over the full context.
    let batch = 4
    var g = RandomGenerator(seed: 2)
    let tokens = (0..<(batch * config.nCtx)).map { _ in Int32(g.int(below: config.bins)) }
    var cond = PriorConditioning.unlabelled(batch)
    cond.timing = [TimingInfo](repeating: TimingInfo(total: 44100 * 60, offset: 0, length: 2048 * 128), count: batch)
    let adam = Adam(parameters: prior.namedParameters())
    let step = Benchmark.median(repeats: repeats) {
        adam.zeroGrad()
        let loss = prior.loss(tokens, batch: batch, conditioning: cond)
        loss.backward()
        clipGradientNorm(adam.parameters, maxNorm: 1)
        adam.update()
    }
    // About 6 FLOP per parameter per token for the dense layers (forward and backward).
    let flop = 6 * params * Double(batch * config.nCtx)
    results.append(BenchmarkResult(name: "prior-train-step", milliseconds: step * 1e3, gflops: flop / step / 1e9,
                                   sgemmGflops: Benchmark.sgemmGflops(m: batch * config.nCtx, n: config.width, k: config.width,
                                                                      repeats: repeats),
                                   extra: [("tokens_per_s", Double(batch * config.nCtx) / step),
                                           ("peak_rss_mb", Benchmark.peakResidentMegabytes())]))
    return results
}
