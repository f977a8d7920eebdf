// A prior or upsampler over one level's codes (reference §2.2): the codes embedded and shifted
// right by one (position 0 holds the artist/genre start token), learned absolute positions, the
// conditioning x_cond (upper codes through the conditioner for upsamplers, the timing signal at
// the top level), the sparse transformer, and logits tied to the code embedding unless the
// decoder is merged. The loss is cross-entropy in bits per token.
//
// Shapes: tokens (N, T) with T ≤ n_ctx; x (N, T, width); logits (N, T, bins).

import Foundation
import TensorCore
import ModelKit

/// What a window of tokens is conditioned on.
public struct PriorConditioning {
    /// Artist id per item (N).
    public var artists: [Int32]
    /// Genre ids per item (each up to max_bow_genre_size).
    public var genres: [[Int32]]
    /// The window's place in its song, per item (top level only).
    public var timing: [TimingInfo]?
    /// Codes of the level above for the window, `(N, n_ctx / 2^down_t)` (upsamplers only).
    public var upperCodes: [Int32]?

    public init(artists: [Int32], genres: [[Int32]], timing: [TimingInfo]? = nil, upperCodes: [Int32]? = nil) {
        self.artists = artists
        self.genres = genres
        self.timing = timing
        self.upperCodes = upperCodes
    }

    /// Unknown artist and genre for `n` items.
    public static func unlabelled(_ n: Int) -> PriorConditioning {
        PriorConditioning(artists: [Int32](repeating: 0, count: n), genres: [[Int32]](repeating: [], count: n))
    }
}

/// A sparse-transformer prior over the codes of one level.
public final class Prior: Module {
    public let config: PriorConfig
    /// Number of VQ-VAE levels; the top level is `levels − 1`.
    public let levels: Int
    public let vocabulary: LabelVocabulary
    public let sampleRate: Int
    public let xEmb: Embedding
    public let posEmb: Tensor
    public let labels: LabelConditioner
    public let conditioner: UpsamplerConditioner?
    public let transformer: Transformer
    /// Untied output layer (merged decoder only).
    public let xOut: Linear?
    /// Median length in seconds of the songs a top prior was trained on, when recorded: what
    /// sampling gives the timing signal as the song's length by default.
    public var songSeconds: Double?

    public init(config: PriorConfig, levels: Int, vocabulary: LabelVocabulary, sampleRate: Int, seed: UInt64) {
        self.config = config
        self.levels = levels
        self.vocabulary = vocabulary
        self.sampleRate = sampleRate
        var g = RandomGenerator(seed: seed)
        xEmb = Embedding(count: config.bins, size: config.width, std: 0.02 * config.initScale, generator: &g)
        posEmb = Tensor.randomNormal([config.nCtx, config.width], std: 0.01 * config.initScale, generator: &g)
        posEmb.requiresGrad = true
        let upsampler = config.isUpsampler(levels: levels)
        labels = LabelConditioner(config: config, artists: vocabulary.artists.count, genres: vocabulary.genres.count,
                                  sampleRate: sampleRate, includeTime: !upsampler, generator: &g)
        conditioner = upsampler ? UpsamplerConditioner(config: config, generator: &g) : nil
        transformer = Transformer(config: config, generator: &g)
        if config.mergedDecoder {
            // PyTorch's default Linear init, as Jukebox leaves it: U(±1/√width) ≈ N(0, 1/(3·width)).
            xOut = Linear(inputSize: config.width, outputSize: config.bins, std: 1 / (3 * Float(config.width)).squareRoot(),
                          bias: false, generator: &g)
        } else {
            xOut = nil
        }
    }

    public var isUpsampler: Bool { conditioner != nil }

    /// The VQ-VAE levels whose codes this prior reads: its own, and the one above for an
    /// upsampler.
    public var codeLevels: [Int] { isUpsampler ? [config.level, config.level + 1] : [config.level] }

    public func namedParameters() -> [NamedParameter] {
        var p = parameters(of: xEmb, prefix: "x_emb") + [("pos_emb", posEmb)] + parameters(of: labels, prefix: "y_emb")
        if let conditioner { p += parameters(of: conditioner, prefix: "conditioner") }
        p += parameters(of: transformer, prefix: "transformer")
        if let xOut { p += parameters(of: xOut, prefix: "x_out") }
        return p
    }

    /// The conditioning added to every position, `(N, n_ctx, width)`, or nil when there is none.
    public func conditioning(_ c: PriorConditioning) -> Tensor? {
        let N = c.artists.count
        if let conditioner {
            guard let upper = c.upperCodes else { preconditionFailure("Prior: an upsampler needs the upper level's codes") }
            precondition(upper.count == N * config.nCtx >> config.conditioner.downT,
                         "Prior: \(upper.count) upper codes for \(N) windows of \(config.nCtx >> config.conditioner.downT)")
            return conditioner(upper, batch: N)
        }
        return c.timing.flatMap { labels.timing($0) }
    }

    /// Embedded input `(N, T, width)` of `tokens (N, T)`: start token, then the embeddings of
    /// tokens 0..<T−1, plus positions and `xCond` (first T positions).
    func embed(_ tokens: [Int32], batch N: Int, conditioning c: PriorConditioning, xCond: Tensor?) -> Tensor {
        let T = tokens.count / N
        let start = labels.start(artists: c.artists, genres: c.genres)             // (N, 1, w)
        var x = start
        if T > 1 {
            var shifted: [Int32] = []
            shifted.reserveCapacity(N * (T - 1))
            for n in 0..<N { shifted += tokens[(n * T)..<(n * T + T - 1)] }
            x = Tensor.concatenate([start, xEmb(shifted, shape: [N, T - 1])], axis: 1)
        }
        x = x + posEmb.slice(axis: 0, 0..<T)
        if let xCond { x = x + (T == xCond.shape[1] ? xCond : xCond.slice(axis: 1, 0..<T)) }
        return x
    }

    /// Logits `(N, T, bins)` for `tokens (N, T)`, T ≤ n_ctx. T is padded internally to a whole
    /// number of attention blocks; padding comes after the real tokens, so causality hides it.
    /// `capture(layer, k, v)` receives each layer's keys and values for the real positions.
    public func logits(_ tokens: [Int32], batch N: Int, conditioning c: PriorConditioning,
                       capture: ((Int, Tensor, Tensor) -> Void)? = nil) -> Tensor {
        let T = tokens.count / N
        precondition(T >= 1 && T <= config.nCtx && tokens.count == N * T, "Prior: \(tokens.count) tokens for batch \(N), n_ctx \(config.nCtx)")
        let L = config.blockLength
        let padded = (T + L - 1) / L * L
        var input = tokens
        if padded != T {
            input = []
            for n in 0..<N { input += tokens[(n * T)..<((n + 1) * T)] + [Int32](repeating: 0, count: padded - T) }
        }
        let xCond = conditioning(c)
        var h = transformer(embed(input, batch: N, conditioning: c, xCond: xCond), capture: capture.map { cap in
            { layer, k, v in cap(layer, padded == T ? k : k.slice(axis: 1, 0..<T), padded == T ? v : v.slice(axis: 1, 0..<T)) }
        })
        if padded != T { h = h.slice(axis: 1, 0..<T) }
        if let xCond, xOut == nil { h = h + (T == xCond.shape[1] ? xCond : xCond.slice(axis: 1, 0..<T)) }
        if let xOut { return xOut(h) }
        return Tensor.matmul(h, xEmb.weight, transposeB: true)
    }

    /// Mean cross-entropy of predicting every token of `tokens (N, T)`, in bits per token.
    public func loss(_ tokens: [Int32], batch N: Int, conditioning c: PriorConditioning) -> Tensor {
        let logits = logits(tokens, batch: N, conditioning: c)
        return Tensor.crossEntropy(logits: logits.reshaped([-1, config.bins]), targets: tokens) * Float(1 / M_LN2)
    }
}
