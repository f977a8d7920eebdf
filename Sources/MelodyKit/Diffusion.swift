// The latent diffusion model of Mittal et al. 2021 (reference: magenta/symbolic-music-diffusion,
// `models/ncsn.py::TransformerDDPM`, `utils/ebm_utils.py`, `utils/losses.py`; facts in
// shared/reference/symbolic-diffusion*.md): a DDPM over sequences of melody latents.
//
// Schedule: N = 1000 steps, β linear from 1e-6 to 0.01, ᾱ_t = Π (1 − β_s), ᾱ_0 = 1. Training
// draws t ~ U{1..N} and a continuous ᾱ ~ U(ᾱ_{t−1}, ᾱ_t); x_t = √ᾱ·x0 + √(1−ᾱ)·ε; the network
// sees (x_t, √ᾱ) and predicts ε under mean-squared error.
//
// Denoiser: Dense(D → width) + sinusoidal positions; pre-LN transformer layers (no mask);
// LN → Dense(dense_width) → residual dense blocks whose two LNs are each followed by the same
// FiLM (scale·x + shift) from the noise level; LN → Dense(D). Only the FiLM blocks see the
// noise level. flax defaults: LN ε 1e-6, GELU's tanh approximation, LeCun-normal kernels
// (here untruncated N(0, 1/fan_in)), zero biases.
//
// Shapes: x (B, L, D) with L latents of D dimensions; noise levels √ᾱ (B).

import Foundation
import TensorCore
import ModelKit

/// The noise schedule.
public struct DiffusionSchedule: Equatable {
    /// β_1 … β_N.
    public let betas: [Double]
    /// ᾱ_0 = 1, ᾱ_1 … ᾱ_N.
    public let alphaBars: [Double]

    public init(steps: Int = 1000, betaStart: Double = 1e-6, betaEnd: Double = 0.01) {
        precondition(steps >= 1, "a schedule needs a step")
        betas = (0..<steps).map { steps == 1 ? betaStart : betaStart + (betaEnd - betaStart) * Double($0) / Double(steps - 1) }
        var product = 1.0
        alphaBars = [1] + betas.map { product *= 1 - $0; return product }
    }

    public var steps: Int { betas.count }

    /// A training noise level ᾱ: t ~ U{1..N}, then ᾱ ~ U(ᾱ_t, ᾱ_{t−1}).
    public func trainingAlphaBar(_ generator: inout RandomGenerator) -> Double {
        let t = 1 + generator.int(below: steps)
        let u = Double(generator.uniform())
        return alphaBars[t] + (alphaBars[t - 1] - alphaBars[t]) * u
    }
}

/// Shapes and training settings of the diffusion prior.
public struct MelodyDiffusionConfig: JukeboxConfig, Equatable {
    public var comment = ""
    /// Latent dimensions per position (the VAE's dimensions with mean σ < 1; the data decides,
    /// 0 until it has).
    public var latentDims = 0
    /// Latents per sequence (2 bars each).
    public var length = 8
    public var width = 128
    public var layers = 6
    public var heads = 8
    public var mlpWidth = 2048
    public var denseWidth = 2048
    public var denseBlocks = 2
    /// Width of the noise level's sinusoidal features and of the FiLM generator's hidden layers.
    public var noiseFeatures = 128
    public var filmWidth = 512
    /// The noise level √ᾱ is multiplied by this before its sinusoidal features.
    public var noiseScale: Float = 5000
    public var diffusionSteps = 1000
    public var betaStart: Double = 1e-6
    public var betaEnd: Double = 0.01
    public var train = MelodyPriorTrainConfig()

    public init() {}

    public func validate() throws {
        if latentDims < 0 || latentDims > 1 << 16 { throw ConfigError("key 'latent_dims' must be in 0...\(1 << 16)") }
        if length < 1 || length > 4096 { throw ConfigError("key 'length' must be in 1...4096") }
        for (key, value) in [("width", width), ("mlp_width", mlpWidth), ("dense_width", denseWidth), ("film_width", filmWidth)]
            where value < 1 || value > 1 << 16 {
            throw ConfigError("key '\(key)' must be in 1...\(1 << 16)")
        }
        if layers < 0 || layers > 256 || denseBlocks < 0 || denseBlocks > 256 { throw ConfigError("keys 'layers' and 'dense_blocks' must be in 0...256") }
        if heads < 1 || width % heads != 0 { throw ConfigError("key 'heads' (\(heads)) must divide 'width' (\(width))") }
        if noiseFeatures < 2 || noiseFeatures % 2 != 0 || width % 2 != 0 { throw ConfigError("keys 'noise_features' and 'width' must be even") }
        if !(noiseScale > 0 && noiseScale.isFinite) { throw ConfigError("key 'noise_scale' must be positive") }
        if diffusionSteps < 1 || diffusionSteps > 100_000 { throw ConfigError("key 'diffusion_steps' must be in 1...100000") }
        if !(betaStart > 0 && betaStart <= betaEnd && betaEnd < 1) { throw ConfigError("keys 'beta_start' and 'beta_end' must satisfy 0 < start ≤ end < 1") }
        try train.validate()
    }

    public var schedule: DiffusionSchedule { DiffusionSchedule(steps: diffusionSteps, betaStart: betaStart, betaEnd: betaEnd) }
}

/// A residual dense block with its own FiLM generator.
final class FiLMBlock: Module {
    let film0: Linear, film1: Linear, scale: Linear, shift: Linear
    let ln0: LayerNorm, dense0: Linear, ln1: LayerNorm, dense1: Linear

    init(_ c: MelodyDiffusionConfig, _ g: inout RandomGenerator) {
        film0 = lecunLinear(c.noiseFeatures, c.filmWidth, &g)
        film1 = lecunLinear(c.filmWidth, c.filmWidth, &g)
        scale = lecunLinear(c.filmWidth, c.denseWidth, &g)
        shift = lecunLinear(c.filmWidth, c.denseWidth, &g)
        ln0 = LayerNorm(size: c.denseWidth, eps: 1e-6)
        dense0 = lecunLinear(c.denseWidth, c.denseWidth, &g)
        ln1 = LayerNorm(size: c.denseWidth, eps: 1e-6)
        dense1 = lecunLinear(c.denseWidth, c.denseWidth, &g)
    }

    /// `x (B, L, W)`, `noise (B, noiseFeatures)` or `(1, noiseFeatures)` when every sequence
    /// is at the same level.
    func callAsFunction(_ x: Tensor, noise: Tensor) -> Tensor {
        let N = noise.shape[0], W = x.shape[2]
        let f = film1(film0(noise).swish())
        let s = scale(f).reshaped([N, 1, W]), b = shift(f).reshaped([N, 1, W])
        let h = dense0((ln0(x) * s + b).swish())
        return x + dense1((ln1(h) * s + b).swish())
    }

    func namedParameters() -> [NamedParameter] {
        parameters(of: film0, prefix: "film.dense_0") + parameters(of: film1, prefix: "film.dense_1")
            + parameters(of: scale, prefix: "film.scale") + parameters(of: shift, prefix: "film.shift")
            + parameters(of: ln0, prefix: "ln_0") + parameters(of: dense0, prefix: "dense_0")
            + parameters(of: ln1, prefix: "ln_1") + parameters(of: dense1, prefix: "dense_1")
    }
}

/// The ε-predicting network.
public final class Denoiser: Module {
    public let config: MelodyDiffusionConfig
    let input: Linear
    let layers: [TransformerLayer]
    let lnDense: LayerNorm, toDense: Linear
    let blocks: [FiLMBlock]
    let lnOut: LayerNorm, output: Linear
    let positions: Tensor

    public init(config c: MelodyDiffusionConfig, seed: UInt64) {
        precondition(c.latentDims >= 1, "Denoiser: latent_dims is not set")
        config = c
        var g = RandomGenerator(seed: seed)
        input = lecunLinear(c.latentDims, c.width, &g)
        layers = (0..<c.layers).map { _ in TransformerLayer(width: c.width, heads: c.heads, mlpWidth: c.mlpWidth, causal: false, generator: &g) }
        lnDense = LayerNorm(size: c.width, eps: 1e-6)
        toDense = lecunLinear(c.width, c.denseWidth, &g)
        blocks = (0..<c.denseBlocks).map { _ in FiLMBlock(c, &g) }
        lnOut = LayerNorm(size: c.denseWidth, eps: 1e-6)
        output = lecunLinear(c.denseWidth, c.latentDims, &g)
        positions = sinusoidalFeatures((0..<c.length).map(Float.init), size: c.width).reshaped([1, c.length, c.width])
    }

    /// ε̂ for `x (B, L, D)` at noise levels `sqrtAlphaBar (B)`.
    public func callAsFunction(_ x: Tensor, sqrtAlphaBar: [Float]) -> Tensor {
        precondition(x.rank == 3 && x.shape[1] == config.length && x.shape[2] == config.latentDims,
                     "Denoiser: input \(x.shape) is not (B, \(config.length), \(config.latentDims))")
        precondition(sqrtAlphaBar.count == x.shape[0], "Denoiser: \(sqrtAlphaBar.count) noise levels for \(x.shape[0]) sequences")
        // Sampling puts every sequence at the same level: the FiLM generators then run once.
        let levels = sqrtAlphaBar.allSatisfy { $0 == sqrtAlphaBar[0] } ? [sqrtAlphaBar[0]] : sqrtAlphaBar
        let noise = sinusoidalFeatures(levels.map { $0 * config.noiseScale }, size: config.noiseFeatures)
        var h = input(x) + positions
        for layer in layers { h = layer(h) }
        h = toDense(lnDense(h))
        for block in blocks { h = block(h, noise: noise) }
        return output(lnOut(h))
    }

    public func namedParameters() -> [NamedParameter] {
        var p = parameters(of: input, prefix: "input")
        for (i, layer) in layers.enumerated() { p += parameters(of: layer, prefix: "layers.\(i)") }
        p += parameters(of: lnDense, prefix: "ln_dense") + parameters(of: toDense, prefix: "dense")
        for (i, block) in blocks.enumerated() { p += parameters(of: block, prefix: "blocks.\(i)") }
        return p + parameters(of: lnOut, prefix: "ln_out") + parameters(of: output, prefix: "output")
    }

    /// The training loss of clean sequences `x0 (B, L, D)`: mean (ε − ε̂)² at noise levels drawn
    /// as the reference draws them.
    public func loss(_ x0: Tensor, schedule: DiffusionSchedule, generator: inout RandomGenerator) -> Tensor {
        let B = x0.shape[0], per = x0.count / B
        let alphaBars = (0..<B).map { _ in schedule.trainingAlphaBar(&generator) }
        let epsilon = Tensor.randomNormal(x0.shape, std: 1, generator: &generator)
        let noisy = Tensor(uninitializedShape: x0.shape)
        for b in 0..<B {
            let a = Float(alphaBars[b].squareRoot()), s = Float((1 - alphaBars[b]).squareRoot())
            for i in (b * per)..<((b + 1) * per) { noisy.data[i] = a * x0.data[i] + s * epsilon.data[i] }
        }
        let predicted = self(noisy, sqrtAlphaBar: alphaBars.map { Float($0.squareRoot()) })
        return (predicted - epsilon).square().mean()
    }
}

/// Generation by the reverse process.
public struct DiffusionSampler {
    public let model: Denoiser
    public let schedule: DiffusionSchedule

    public init(model: Denoiser) {
        self.model = model
        schedule = model.config.schedule
    }

    /// `count` sequences `(count, L, D)` by ancestral DDPM sampling over all N steps (the
    /// reference's `diffusion_dynamics`), or by DDIM over `steps` evenly spaced levels with
    /// noise `eta` (η = 1 is DDPM-like, 0 deterministic). `keep` pastes re-noised known values
    /// at each step where `mask` is 1 (infilling), both `(count, L, D)`.
    public func sample(count: Int, steps: Int? = nil, eta: Double = 0, generator: inout RandomGenerator,
                       keep: (values: [Float], mask: [Float])? = nil,
                       progress: ((_ done: Int, _ total: Int) -> Void)? = nil) -> Tensor {
        let c = model.config, per = c.length * c.latentDims, N = schedule.steps
        let levels: [Int]                                          // t values visited, descending
        if let steps, steps < N {
            levels = (0..<steps).map { N - $0 * N / steps }
        } else {
            levels = Array((1...N).reversed())
        }
        var x = (0..<(count * per)).map { _ in generator.normal() }
        let ancestral = steps == nil || steps! >= N
        return Tensor.withoutGrad {
            for (k, t) in levels.enumerated() {
                defer { progress?(k + 1, levels.count) }
                let previous = k + 1 < levels.count ? levels[k + 1] : 0
                let aT = schedule.alphaBars[t], aPrev = schedule.alphaBars[previous]
                let eps = model(Tensor(x, shape: [count, c.length, c.latentDims]),
                                sqrtAlphaBar: [Float](repeating: Float(aT.squareRoot()), count: count)).array
                // The step's coefficients, once per step rather than per value.
                let sqrtAT = aT.squareRoot(), sqrtOneMinusAT = (1 - aT).squareRoot(), sqrtAPrev = aPrev.squareRoot()
                let beta = schedule.betas[t - 1]
                // DDPM: posterior mean c0·x̂0 + ct·x_t, standard deviation √β̃ (none at the end).
                let c0 = beta * sqrtAPrev / (1 - aT), ct = (1 - aPrev) * (1 - beta).squareRoot() / (1 - aT)
                let ddpmStd = previous > 0 ? Swift.max(beta * (1 - aPrev) / (1 - aT), 1e-20).squareRoot() : 0
                // DDIM: noise σ and the weight of the direction to x_t.
                let sigma = previous > 0 ? eta * ((1 - aPrev) / (1 - aT) * (1 - aT / aPrev)).squareRoot() : 0
                let direction = Swift.max(0, 1 - aPrev - sigma * sigma).squareRoot()
                for i in 0..<x.count {
                    let x0 = Swift.min(1, Swift.max(-1, (Double(x[i]) - sqrtOneMinusAT * Double(eps[i])) / sqrtAT))
                    var next: Double
                    if ancestral {
                        next = c0 * x0 + ct * Double(x[i])
                        if previous > 0 { next += ddpmStd * Double(generator.normal()) }
                    } else {
                        // ε consistent with the clipped x̂0.
                        let epsilon = (Double(x[i]) - sqrtAT * x0) / sqrtOneMinusAT
                        next = sqrtAPrev * x0 + direction * epsilon + (sigma > 0 ? sigma * Double(generator.normal()) : 0)
                    }
                    x[i] = Float(next)
                }
                if let keep {
                    // The known part, noised to the level just reached (itself at the end).
                    for i in 0..<x.count where keep.mask[i] > 0 {
                        let known = Double(keep.values[i])
                        x[i] = previous > 0 ? Float(sqrtAPrev * known + (1 - aPrev).squareRoot() * Double(generator.normal()))
                                            : Float(known)
                    }
                }
            }
            return Tensor(x, shape: [count, c.length, c.latentDims])
        }
    }
}
