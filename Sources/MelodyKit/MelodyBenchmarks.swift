// The model cases of `jukebox bench melody`: training steps of the melody VAE, the diffusion
// denoiser and the TransformerMDN baseline, and a step of the diffusion sampler.

import Foundation
import TensorCore
import ModelKit

/// `melody-vae-train-step`: a teacher-forced training step (forward, backward, clipping, Adam)
/// of `configs/melody-vae-small.json`'s shapes at batch 64 on random events, next to raw sgemm
/// on the encoder layer's whole input product measured in the same run.
public func melodyVAEBenchmarks(repeats: Int = 5) -> [BenchmarkResult] {
    var config = MelodyVAEConfig()
    config.encoderUnits = [256]
    config.decoderUnits = [256, 256]
    config.zSize = 256
    let model = MelodyVAE(config: config, seed: 1)
    let optimizer = Adam(parameters: model.namedParameters(), learningRate: 1e-4, warmupSteps: 0)
    var g = RandomGenerator(seed: 2)
    let (B, T, V) = (64, config.steps, config.classes)
    let events = (0..<(B * T)).map { _ in Int32(g.int(below: V)) }
    let epsilon = Tensor.randomNormal([B, config.zSize], std: 1, generator: &g)
    func step() {
        optimizer.zeroGrad()
        let (mu, sigma) = model.encode(events, batch: B)
        let z = mu + sigma * epsilon
        let logits = model.decode(z, targets: events, batch: B)
        let loss = Tensor.crossEntropy(logits: logits, targets: events) * Float(T)
            + model.klDivergence(mu: mu, sigma: sigma).mean() * 0.2
        loss.backward()
        _ = clipGradientNorm(optimizer.parameters, maxNorm: 1)
        optimizer.update()
    }
    // Useful work of the products: each LSTM layer (B·T × (In + H)) @ ((In + H) × 4H) forward
    // and about twice that backward; the output layer likewise.
    let rows = Double(B * T)
    func lstm(_ input: Int, _ units: Int) -> Double { 2 * rows * Double(input + units) * 4 * Double(units) }
    var forward = 2 * lstm(V, 256)                                    // both encoder directions
    forward += lstm(V + config.zSize, 256) + lstm(256, 256)           // decoder layers
    forward += 2 * rows * 256 * Double(V)                              // output layer
    let flop = 3 * forward
    let times = Benchmark.interleavedMedians(repeats: repeats, [step, Benchmark.rawSgemm(m: B * T, n: 4 * 256, k: V + 256)])
    let sgemmFlop = lstm(V, 256)
    return [BenchmarkResult(name: "melody-vae-train-step", milliseconds: times[0] * 1e3, gflops: flop / times[0] / 1e9,
                            sgemmGflops: sgemmFlop / times[1] / 1e9)]
}

extension Denoiser {
    /// Floating-point work of one forward pass over `batch` sequences: the products of every
    /// position (projections, attention scores and mixing, MLPs, dense blocks) and of the FiLM
    /// generators, run per sequence (`filmRuns` nil) or that many times.
    public func forwardFLOP(batch: Int, filmRuns: Int? = nil) -> Double {
        let c = config
        let (L, D, W, M, Dw) = (Double(c.length), Double(c.latentDims), Double(c.width), Double(c.mlpWidth), Double(c.denseWidth))
        let layer = 2 * W * 3 * W + 2 * 2 * L * W + 2 * W * W + 2 * 2 * W * M
        var perPosition = 2 * D * W + Double(c.layers) * layer + 2 * W * Dw + Double(c.denseBlocks) * 2 * 2 * Dw * Dw
        perPosition += 2 * Dw * D
        let (F, Fw) = (Double(c.noiseFeatures), Double(c.filmWidth))
        let film = Double(c.denseBlocks) * 2 * (F * Fw + Fw * Fw + 2 * Fw * Dw)
        return Double(batch) * L * perPosition + Double(filmRuns ?? batch) * film
    }
}

/// `diffusion-train-step` and `diffusion-sample`: `configs/melody-diffusion-small.json`'s
/// denoiser over 42 latent dimensions (the reference's count) — a training step at batch 64
/// (forward, backward, clipping, Adam), and one denoising step of 100 sequences as sampling runs
/// it (reported as sequences × steps per second, and the time of 100 melodies × 1000 steps) —
/// each next to raw sgemm on a dense block's product of the same rows, measured in the same run.
public func diffusionBenchmarks(repeats: Int = 5) -> [BenchmarkResult] {
    var config = MelodyDiffusionConfig()
    config.latentDims = 42
    (config.layers, config.mlpWidth, config.denseWidth) = (4, 512, 512)
    let model = Denoiser(config: config, seed: 1)
    let optimizer = Adam(parameters: model.namedParameters(), learningRate: 1e-3, warmupSteps: 0)
    let schedule = config.schedule
    var g = RandomGenerator(seed: 2)
    let (B, L, D) = (config.train.batchSize, config.length, config.latentDims)
    let x0 = Tensor((0..<(B * L * D)).map { _ in g.uniform() * 2 - 1 }, shape: [B, L, D])
    func trainStep() {
        optimizer.zeroGrad()
        model.loss(x0, schedule: schedule, generator: &g).backward()
        _ = clipGradientNorm(optimizer.parameters, maxNorm: 1)
        optimizer.update()
    }
    let trainTimes = Benchmark.interleavedMedians(repeats: repeats, [trainStep, Benchmark.rawSgemm(m: B * L, n: config.denseWidth, k: config.denseWidth)])
    let denseFlop = { (rows: Int) in 2 * Double(rows) * Double(config.denseWidth) * Double(config.denseWidth) }
    var results = [BenchmarkResult(name: "diffusion-train-step", milliseconds: trainTimes[0] * 1e3,
                                   gflops: 3 * model.forwardFLOP(batch: B) / trainTimes[0] / 1e9,
                                   sgemmGflops: denseFlop(B * L) / trainTimes[1] / 1e9)]
    // One step of the sampler (the network and the update) on 100 sequences.
    let count = 100
    let sampler = DiffusionSampler(model: model)
    func sampleStep() {
        var s = RandomGenerator(seed: 3)
        _ = sampler.sample(count: count, steps: 1, eta: 1, generator: &s)
    }
    let sampleTimes = Benchmark.interleavedMedians(repeats: repeats, [sampleStep, Benchmark.rawSgemm(m: count * L, n: config.denseWidth, k: config.denseWidth)])
    results.append(BenchmarkResult(name: "diffusion-sample", milliseconds: sampleTimes[0] * 1e3,
                                   gflops: model.forwardFLOP(batch: count, filmRuns: 1) / sampleTimes[0] / 1e9,
                                   sgemmGflops: denseFlop(count * L) / sampleTimes[1] / 1e9,
                                   extra: [("sequence_steps_per_s", Double(count) / sampleTimes[0]),
                                           ("s_per_100x1000", sampleTimes[0] * 1000)]))
    return results
}

extension TransformerMDN {
    /// Floating-point work of one forward pass over `batch` sequences: per position the input,
    /// each layer's q|k|v, attention scores and mixing over all L keys (as for the denoiser,
    /// though the mask leaves about half), output projection and MLP, the dense projection and
    /// blocks, and the three heads.
    public func forwardFLOP(batch: Int) -> Double {
        let c = config
        let (L, D, W, M, Dw, K) = (Double(c.length), Double(c.latentDims), Double(c.width), Double(c.mlpWidth),
                                   Double(c.denseWidth), Double(c.components))
        let layer = 2 * W * 3 * W + 2 * 2 * L * W + 2 * W * W + 2 * 2 * W * M
        let perPosition = 2 * D * W + Double(c.layers) * layer + 2 * W * Dw + Double(c.denseBlocks) * 2 * 2 * Dw * Dw
            + 2 * Dw * (K + 2 * K * D)
        return Double(batch) * L * perPosition
    }
}

/// `mdn-train-step`: a training step (forward, backward, clipping, Adam) of
/// `configs/melody-mdn-small.json`'s TransformerMDN over 42 latent dimensions (the reference's
/// count) at its batch of 128 on random latents, next to raw sgemm on the product that
/// dominates, the means head's (all B·L rows, 512 → 100 · 42), measured in the same run.
public func mdnBenchmarks(repeats: Int = 5) -> [BenchmarkResult] {
    var c = MelodyMDNConfig()
    (c.latentDims, c.length, c.layers, c.mlpWidth, c.denseWidth) = (42, 8, 4, 512, 512)
    let model = TransformerMDN(config: c, seed: 1)
    let optimizer = Adam(parameters: model.namedParameters(), learningRate: c.train.learningRate, warmupSteps: 0)
    var g = RandomGenerator(seed: 2)
    let (B, L, D) = (c.train.batchSize, c.length, c.latentDims)
    let x = Tensor.randomUniform([B, L, D], low: -1, high: 1, generator: &g)
    func step() {
        optimizer.zeroGrad()
        model.loss(x).backward()
        _ = clipGradientNorm(optimizer.parameters, maxNorm: 1)
        optimizer.update()
    }
    let head = c.components * c.latentDims
    let times = Benchmark.interleavedMedians(repeats: repeats, [step, Benchmark.rawSgemm(m: B * L, n: head, k: c.denseWidth)])
    return [BenchmarkResult(name: "mdn-train-step", milliseconds: times[0] * 1e3, gflops: 3 * model.forwardFLOP(batch: B) / times[0] / 1e9,
                            sgemmGflops: 2 * Double(B * L) * Double(c.denseWidth) * Double(head) / times[1] / 1e9)]
}
