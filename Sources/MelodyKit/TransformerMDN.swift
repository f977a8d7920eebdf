// The autoregressive baseline of Mittal et al. 2021 (reference: magenta/symbolic-music-diffusion,
// `models/autoregressive.py::TransformerMDN`, `models/shared.py::MDN`, `train_mdn.py::mdn_loss`,
// `sample_mdn.py`; facts in shared/reference/symbolic-diffusion*.md): a causal transformer over
// the same latent sequences as the diffusion prior, with a mixture density output.
//
// Model: the inputs shifted right by one position (position 0 sees a zero start vector, position
// i the latents before i); Dense(D → width) + sinusoidal positions; pre-LN transformer layers
// with a causal mask; LN → Dense(dense_width) → dense residual blocks without FiLM → LN; then
// three dense heads: mixture logits (K), means (K·D) and log scales (K·D), read as K
// component-major diagonal Gaussians per position. σ = exp(log scale) as in the reference: no
// floor, no temperature.
//
// Loss: the negative log-likelihood of each latent in nats (summed over its D dimensions),
// averaged over positions and sequences, as `mdn_loss`:
//   log p(x) = logsumexp_k a_k,  a_k = log π_k + Σ_d (−½ z_kd² − log σ_kd) − (D/2)·log 2π,
//   z_kd = (x_d − μ_kd) / σ_kd.
// Built from primitives. The log-sum-exp subtracts each row's maximum, held constant (the value
// does not depend on it, so neither does the gradient): the largest term is exp(0) = 1, nothing
// overflows, and a far-off latent whose every density underflows in linear terms still gets a
// finite log-likelihood.
//
// Sampling: one latent at a time, left to right: a component from the softmax of the logits,
// then μ + σ·ε. Each step reruns the trunk over the prefix (no key/value cache: a sequence is 8
// latents here) and the blocks and heads on the newest position only.
//
// Shapes: x (B, L, D); features (B, L, Dw); logits (N, K); means, log scales (N, K, D), with
// N = B·L rows.

import Foundation
import TensorCore
import ModelKit

/// Shapes and training settings of the TransformerMDN. The defaults are the reference's
/// (`configs/mdn-base.cfg`, `mdn-mel-32seq-512.cfg`, `train_mdn.py`) at 8 latents.
public struct MelodyMDNConfig: MelodyPriorConfig, Equatable {
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
    /// Gaussians in each position's mixture.
    public var components = 100
    public var train = MelodyPriorTrainConfig(learningRate: 3e-4, decayEvery: 4000, batchSize: 128, steps: 250_000,
                                              checkpointEvery: 500, evalEvery: 1000)

    public init() {}

    public func validate() throws {
        if latentDims < 0 || latentDims > 1 << 16 { throw ConfigError("key 'latent_dims' must be in 0...\(1 << 16)") }
        if length < 1 || length > 4096 { throw ConfigError("key 'length' must be in 1...4096") }
        for (key, value) in [("width", width), ("mlp_width", mlpWidth), ("dense_width", denseWidth)] where value < 1 || value > 1 << 16 {
            throw ConfigError("key '\(key)' must be in 1...\(1 << 16)")
        }
        if layers < 0 || layers > 256 || denseBlocks < 0 || denseBlocks > 256 { throw ConfigError("keys 'layers' and 'dense_blocks' must be in 0...256") }
        if heads < 1 || width % heads != 0 { throw ConfigError("key 'heads' (\(heads)) must divide 'width' (\(width))") }
        if width % 2 != 0 { throw ConfigError("key 'width' must be even (sinusoidal positions)") }
        if components < 1 || components > 4096 { throw ConfigError("key 'components' must be in 1...4096") }
        try train.validate()
    }
}

/// A mixture of K diagonal Gaussians over D dimensions for each of N rows.
public struct MixtureDensity {
    /// Unnormalised log weights `(N, K)`.
    public let logits: Tensor
    /// `(N, K, D)`.
    public let means: Tensor
    /// log σ, `(N, K, D)`.
    public let logScales: Tensor

    /// `logits (N, K)`, `means (N, K, D)`, `logScales (N, K, D)`.
    public init(logits: Tensor, means: Tensor, logScales: Tensor) {
        precondition(logits.rank == 2 && means.rank == 3 && means.shape == logScales.shape
                     && Array(means.shape[0..<2]) == logits.shape,
                     "MixtureDensity: logits \(logits.shape), means \(means.shape), log scales \(logScales.shape) do not fit")
        (self.logits, self.means, self.logScales) = (logits, means, logScales)
    }

    /// −log p(x) in nats for `x (N, D)`: `(N)`.
    public func negativeLogLikelihood(_ x: Tensor) -> Tensor {
        let (N, D) = (means.shape[0], means.shape[2])
        precondition(x.shape == [N, D], "MixtureDensity: x \(x.shape) is not (\(N), \(D))")
        let z = (x.reshaped([N, 1, D]) - means) * (-logScales).exp()                     // (N, K, D)
        let logDensity = (z.square() * -0.5 - logScales).sum(axis: 2) - Float(Double(D) * 0.5 * log(2 * Double.pi))
        let a = logits.logSoftmax() + logDensity                                          // (N, K)
        let m = a.max(axis: 1).values                                                     // (N), no gradient
        let logLikelihood = (a - m.reshaped([N, 1])).exp().sum(axis: 1).log() + m         // (N)
        return -logLikelihood
    }

    /// One draw per row: a component from the softmax of the logits, then μ + σ·ε. `(N·D)`
    /// values, row-major.
    public func sample(generator: inout RandomGenerator) -> [Float] {
        let (N, K, D) = (means.shape[0], means.shape[1], means.shape[2])
        let weights = Tensor.withoutGrad { logits.softmax() }
        var out = [Float](repeating: 0, count: N * D)
        for n in 0..<N {
            let k = generator.categorical(weights.data + n * K, count: K)
            for d in 0..<D {
                let i = (n * K + k) * D + d
                out[n * D + d] = means.data[i] + Foundation.exp(logScales.data[i]) * generator.normal()
            }
        }
        return out
    }
}

/// The causal transformer with a mixture density output.
public final class TransformerMDN: Module {
    public let config: MelodyMDNConfig
    let input: Linear
    let layers: [TransformerLayer]
    let lnDense: LayerNorm, toDense: Linear
    let blocks: [DenseResBlock]
    let lnOut: LayerNorm
    let logits: Linear, means: Linear, logScales: Linear
    let positions: Tensor                                         // (1, L, W)

    /// A model with flax's initialisation from `seed`; `config.latentDims` must be set.
    public init(config c: MelodyMDNConfig, seed: UInt64) {
        precondition(c.latentDims >= 1, "TransformerMDN: latent_dims is not set")
        config = c
        var g = RandomGenerator(seed: seed)
        input = lecunLinear(c.latentDims, c.width, &g)
        layers = (0..<c.layers).map { _ in TransformerLayer(width: c.width, heads: c.heads, mlpWidth: c.mlpWidth, causal: true, generator: &g) }
        lnDense = LayerNorm(size: c.width, eps: 1e-6)
        toDense = lecunLinear(c.width, c.denseWidth, &g)
        blocks = (0..<c.denseBlocks).map { _ in DenseResBlock(width: c.denseWidth, generator: &g) }
        lnOut = LayerNorm(size: c.denseWidth, eps: 1e-6)
        logits = lecunLinear(c.denseWidth, c.components, &g)
        means = lecunLinear(c.denseWidth, c.components * c.latentDims, &g)
        logScales = lecunLinear(c.denseWidth, c.components * c.latentDims, &g)
        positions = sinusoidalFeatures((0..<c.length).map(Float.init), size: c.width).reshaped([1, c.length, c.width])
    }

    public func namedParameters() -> [NamedParameter] {
        var p = parameters(of: input, prefix: "input")
        for (i, layer) in layers.enumerated() { p += parameters(of: layer, prefix: "layers.\(i)") }
        p += parameters(of: lnDense, prefix: "ln_dense") + parameters(of: toDense, prefix: "dense")
        for (i, block) in blocks.enumerated() { p += parameters(of: block, prefix: "blocks.\(i)") }
        return p + parameters(of: lnOut, prefix: "ln_out") + parameters(of: logits, prefix: "mdn.logits")
            + parameters(of: means, prefix: "mdn.means") + parameters(of: logScales, prefix: "mdn.log_scales")
    }

    /// Dense features `(B, T, Dw)` of positions 0..<T, each computed from the latents before it,
    /// for `x (B, T, D)` with T ≤ L (the last latent of x is never seen).
    func trunk(_ x: Tensor) -> Tensor {
        let T = x.shape[1]
        precondition(x.rank == 3 && T >= 1 && T <= config.length && x.shape[2] == config.latentDims,
                     "TransformerMDN: input \(x.shape) is not (B, 1...\(config.length), \(config.latentDims))")
        let shifted = x.padded(axis: 1, before: 1, after: 0).slice(axis: 1, 0..<T)    // (B, T, D), zeros first
        var h = input(shifted) + positions.slice(axis: 1, 0..<T)
        for layer in layers { h = layer(h) }
        return toDense(lnDense(h))
    }

    /// The mixtures of the rows of `features (B, T, Dw)`, N = B·T.
    func mixture(_ features: Tensor) -> MixtureDensity {
        var h = features
        for block in blocks { h = block(h) }
        let N = h.count / config.denseWidth, K = config.components, D = config.latentDims
        h = lnOut(h).reshaped([N, config.denseWidth])
        return MixtureDensity(logits: logits(h), means: means(h).reshaped([N, K, D]), logScales: logScales(h).reshaped([N, K, D]))
    }

    /// The mixture of each position of `x (B, T, D)` given the latents before it, rows (b, t).
    public func callAsFunction(_ x: Tensor) -> MixtureDensity { mixture(trunk(x)) }

    /// The mean negative log-likelihood of the latents of `x (B, L, D)`, in nats per latent.
    public func loss(_ x: Tensor) -> Tensor {
        self(x).negativeLogLikelihood(x.reshaped([x.count / config.latentDims, config.latentDims])).mean()
    }
}

extension TransformerMDN: LatentPrior {
    public static let checkpointKind = "melody-mdn"

    /// The negative log-likelihood; it draws no noise.
    public func trainingLoss(_ x: Tensor, generator: inout RandomGenerator) -> Tensor { loss(x) }
}

/// Trains the TransformerMDN.
public typealias MelodyMDNTrainer = MelodyPriorTrainer<TransformerMDN>

/// Autoregressive generation.
public struct MDNSampler {
    public let model: TransformerMDN

    /// A sampler of `model`.
    public init(model: TransformerMDN) { self.model = model }

    /// `count` sequences `(count, length, D)` (length at most L, default L) drawn one latent at
    /// a time. `prefix (count, P, D)`, when given, are the first P latents, kept as they are
    /// (continuation); the others are drawn given everything before them.
    public func sample(count: Int, length: Int? = nil, prefix: Tensor? = nil, generator: inout RandomGenerator,
                       progress: ((_ done: Int, _ total: Int) -> Void)? = nil) -> Tensor {
        let D = model.config.latentDims, L = length ?? model.config.length
        let P = prefix?.shape[1] ?? 0
        precondition(L >= 1 && L <= model.config.length && P <= L, "MDNSampler: length \(L) or prefix \(P) out of range")
        precondition(prefix == nil || prefix!.shape == [count, P, D], "MDNSampler: prefix \(prefix!.shape) is not (\(count), P, \(D))")
        var x = [Float](repeating: 0, count: count * L * D)                               // (count, L, D)
        if let prefix {
            for n in 0..<count {
                for j in 0..<(P * D) { x[n * L * D + j] = prefix.data[n * P * D + j] }
            }
        }
        return Tensor.withoutGrad {
            for i in P..<L {
                // Positions 0...i; position i's own value is not seen (shift), so it may be anything.
                var window: [Float] = []
                window.reserveCapacity(count * (i + 1) * D)
                for n in 0..<count { window += x[(n * L * D)..<(n * L * D + (i + 1) * D)] }
                let features = model.trunk(Tensor(window, shape: [count, i + 1, D])).slice(axis: 1, i..<(i + 1))
                let drawn = model.mixture(features).sample(generator: &generator)         // (count·D)
                for n in 0..<count {
                    for d in 0..<D { x[(n * L + i) * D + d] = drawn[n * D + d] }
                }
                progress?(i - P + 1, L - P)
            }
            return Tensor(x, shape: [count, L, D])
        }
    }
}
