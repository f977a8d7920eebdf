// Hyperparameters of a prior or upsampler (reference §2.1–2.4). Defaults are the Jukebox
// upsampler's structural choices where they apply (attention 0.25 × width, MLP 1.0 × width,
// attn_order 2, tied output); widths and lengths are set per config file.

import Foundation
import ModelKit

/// A sparse-transformer prior over one level's codes.
public struct PriorConfig: JukeboxConfig, Equatable {
    public var comment = ""
    /// VQ-VAE level this prior generates (the top level is unconditional on codes).
    public var level = 2
    /// Codebook size.
    public var bins = 2048
    /// Context length in tokens.
    public var nCtx = 8192
    public var width = 1920
    public var depth = 72
    public var heads = 1
    /// Number of attention blocks the context is cut into: block length = n_ctx / blocks.
    public var blocks = 128
    /// Which attention patterns the layers cycle through (Jukebox's `attn_order`).
    public var attnOrder = 2
    /// Attention inner width as a fraction of width.
    public var attnWidthFactor: Float = 0.25
    /// MLP hidden width as a fraction of width.
    public var mlpFactor: Float = 1.0
    /// Scales the initial weight standard deviations (0.02 · init_scale for projections).
    public var initScale: Float = 0.4
    /// Untied output layer, no conditioning re-added after the transformer (the 5B top prior).
    public var mergedDecoder = false
    /// Label conditioning: the artist and genre vocabularies are built from the training data
    /// (with "unknown" first); these cap their sizes.
    public var maxArtists = 4111
    public var maxGenres = 120
    /// Genre words per item (a bag of words, summed).
    public var maxBowGenreSize = 5
    /// Timing signal (top level only): bins and the duration range in seconds.
    public var tBins = 128
    public var minDuration: Float = 60
    public var maxDuration: Float = 600
    /// Upsampler conditioner (levels below the top).
    public var conditioner = ConditionerConfig()
    /// Training settings.
    public var train = PriorTrainConfig()
    /// Sampling defaults.
    public var sample = PriorSampleConfig()

    public init() {}

    /// The config at `path` for the model of `level`. A config that states its level describes
    /// that level's model only; one that leaves it out (the upsampler configs, used at levels 1
    /// and 0) takes `level`. Throws ``LevelError`` when they disagree or neither names a level.
    public static func load(path: String, level: Int?) throws -> PriorConfig {
        var config = try load(path: path)
        let stated = try statedKeys(path: path).contains("level")
        switch (stated, level) {
        case (true, let requested?) where requested != config.level:
            throw LevelError.conflict(path: path, stated: config.level, requested: requested)
        case (false, nil):
            throw LevelError.unstated(path: path)
        case (false, let requested?):
            config.level = requested
            try config.validate()
        default:
            break
        }
        return config
    }

    /// Whether this prior is conditioned on the codes of the level above.
    public func isUpsampler(levels: Int) -> Bool { level < levels - 1 }

    /// Tokens per attention block.
    public var blockLength: Int { nCtx / blocks }

    /// Inner width of attention.
    public var attentionWidth: Int { Int(attnWidthFactor * Float(width)) }

    public func validate() throws {
        // Upper bounds keep every size computed from a config inside Int; whether a model fits
        // in memory is the memory estimate's question.
        if width < 1 || depth < 1 || heads < 1 { throw ConfigError("keys 'width', 'depth' and 'heads' must be at least 1") }
        if width > 1 << 20 || depth > 4096 || heads > width {
            throw ConfigError("keys 'width' (at most \(1 << 20)), 'depth' (at most 4096) and 'heads' (at most the width) are out of range")
        }
        if nCtx < 2 || nCtx > 1 << 20 { throw ConfigError("key 'n_ctx' must be in 2...\(1 << 20), got \(nCtx)") }
        if !(attnWidthFactor > 0 && attnWidthFactor <= 64) || !(mlpFactor > 0 && mlpFactor <= 64) {
            throw ConfigError("keys 'attn_width_factor' and 'mlp_factor' must be in (0, 64]")
        }
        if !initScale.isFinite || initScale < 0 { throw ConfigError("key 'init_scale' must be a finite number ≥ 0") }
        if maxArtists < 1 || maxArtists > 1 << 24 || maxGenres < 1 || maxGenres > 1 << 24 || maxBowGenreSize < 1 || maxBowGenreSize > 1024 {
            throw ConfigError("keys 'max_artists', 'max_genres' (1...\(1 << 24)) and 'max_bow_genre_size' (1...1024) are out of range")
        }
        if tBins > 1 << 20 || !minDuration.isFinite || !maxDuration.isFinite {
            throw ConfigError("keys 't_bins' (at most \(1 << 20)), 'min_duration' and 'max_duration' must be finite and in range")
        }
        if blocks < 1 || nCtx % blocks != 0 {
            throw ConfigError("key 'blocks' (\(blocks)) must divide 'n_ctx' (\(nCtx))")
        }
        if attentionWidth < heads || attentionWidth % heads != 0 {
            throw ConfigError("key 'heads' (\(heads)) must divide the attention width \(attentionWidth) (width × attn_width_factor)")
        }
        if Int(mlpFactor * Float(width)) < 1 { throw ConfigError("key 'mlp_factor' gives an empty MLP") }
        if AttentionPattern.layout(order: attnOrder, depth: 1) == nil {
            throw ConfigError("key 'attn_order' \(attnOrder) is not supported (0: dense, 1: row/column, 2: row/column/previous-row, 9: row/column/previous-row/dense)")
        }
        if level < 0 { throw ConfigError("key 'level' must be ≥ 0") }
        if bins < 2 || bins > 32768 { throw ConfigError("key 'bins' must be in 2...32768") }
        if tBins < 1 { throw ConfigError("key 't_bins' must be at least 1") }
        if !(maxDuration > minDuration) || minDuration < 0 {
            throw ConfigError("keys 'min_duration'/'max_duration' must satisfy 0 ≤ min < max")
        }
        try conditioner.validate()
        try train.validate()
        try sample.validate()
    }
}

/// A config and a requested level that do not go together.
public enum LevelError: Error, CustomStringConvertible, Equatable {
    /// The config states `stated`; `requested` was asked for.
    case conflict(path: String, stated: Int, requested: Int)
    /// The config states no level and none was asked for.
    case unstated(path: String)

    public var description: String {
        switch self {
        case .conflict(let path, let stated, let requested):
            "\(path): the config describes a level-\(stated) model, not level \(requested)"
        case .unstated(let path): "\(path): the config states no level; say which level it is for"
        }
    }
}

/// The upsampler's conditioner: embedding of the upper codes, a conv stack that upsamples ×4
/// with transposed convolutions, and a layer norm (reference §2.3).
public struct ConditionerConfig: Codable, Equatable {
    public var width = 1024
    public var depth = 16
    /// Dilation of residual block d is 3^(d mod cycle).
    public var dilationCycle = 8
    /// Scale of every residual branch (Jukebox's level-1 cond_res_scale gives 0.25).
    public var resScale: Float = 1.0
    /// Upsampling steps of 2 (the upper level's hop over this one's is 2^down_t).
    public var downT = 2

    public init() {}

    func validate() throws {
        if width < 1 || depth < 1 || width > 1 << 20 || depth > 4096 {
            throw ConfigError("keys 'conditioner.width' (1...\(1 << 20)) and 'conditioner.depth' (1...4096) are out of range")
        }
        if downT < 1 || downT > 16 { throw ConfigError("key 'conditioner.down_t' must be in 1...16") }
        if dilationCycle < 1 || pow(3, Double(Swift.min(dilationCycle, depth) - 1)) > Double(1 << 20) {
            throw ConfigError("key 'conditioner.dilation_cycle' must be at least 1 and keep dilations 3^(d mod cycle) within \(1 << 20)")
        }
        if !resScale.isFinite { throw ConfigError("key 'conditioner.res_scale' must be a finite number") }
    }
}

/// Optimiser and schedule of `jukebox train prior`.
public struct PriorTrainConfig: Codable, Equatable {
    public var learningRate: Float = 3e-4
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    public var weightDecay: Float = 0
    public var warmupSteps = 100
    public var gradientClip: Float = 1.0
    public var batchSize = 4
    public var steps = 10000
    public var checkpointEvery = 1000
    /// Held-out loss is measured every this many steps (0: never).
    public var evalEvery = 500
    public var logEvery = 10

    public init() {}

    func validate() throws {
        if batchSize < 1 || batchSize > 1 << 24 { throw ConfigError("key 'train.batch_size' must be in 1...\(1 << 24)") }
        try validateAdamSettings(learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon,
                                 weightDecay: weightDecay, gradientClip: gradientClip, warmupSteps: warmupSteps)
        if steps < 0 { throw ConfigError("key 'train.steps' must be ≥ 0") }
        if checkpointEvery < 1 || logEvery < 1 { throw ConfigError("keys 'train.checkpoint_every' and 'train.log_every' must be at least 1") }
        if evalEvery < 0 { throw ConfigError("key 'train.eval_every' must be ≥ 0") }
    }
}

/// Sampling defaults of a level.
public struct PriorSampleConfig: Codable, Equatable {
    public var temperature: Float = 0.99
    /// New tokens per window as a fraction of n_ctx (Jukebox: 0.5 at levels 2 and 1, 0.125 at 0).
    public var hopFraction: Float = 0.5

    public init() {}

    func validate() throws {
        if !(temperature > 0) { throw ConfigError("key 'sample.temperature' must be positive") }
        if !(hopFraction > 0 && hopFraction <= 1) { throw ConfigError("key 'sample.hop_fraction' must be in (0, 1]") }
    }
}
