// The VQ-VAE's hyperparameters, defaults from Jukebox's `vqvae` hparams (reference §1.1).

import Foundation
import ModelKit

/// Structure, loss weights and training settings of a three-level VQ-VAE.
public struct VQVAEConfig: JukeboxConfig, Equatable {
    /// Free text: what the config is for.
    public var comment = ""
    /// Audio sample rate in Hz.
    public var sampleRate = 44100
    /// Downsampling steps of each level's own block; the level's hop is 2^(sum up to it).
    public var downsT = [3, 2, 2]
    /// Stride of each downsampling conv (kernel 2·stride, padding stride/2).
    public var stridesT = [2, 2, 2]
    /// Channels of the latent vectors.
    public var embWidth = 64
    /// Codebook entries per level.
    public var lBins = 2048
    /// EMA decay of codebook counts and sums.
    public var lMu: Float = 0.99
    /// Codes whose averaged count falls below this are restarted.
    public var revivalThreshold: Float = 1.0
    /// Residual-block width and depth before the per-level multipliers.
    public var width = 32
    public var depth = 4
    /// Multiplies width and depth of each level's whole encoder and decoder.
    public var hvqvaeMultipliers = [2, 1, 1]
    /// Inner width of a residual block relative to its input.
    public var mConv: Float = 1.0
    /// Dilation of residual block d is growth^(d mod cycle); cycle 0 means no cycle.
    public var dilationGrowthRate = 3
    public var dilationCycle = 0
    /// Loss weights: commitment (β), multi-resolution spectral, lmix terms.
    public var commit: Float = 0.02
    public var multispectral: Float = 1.0
    public var lmixL2: Float = 1.0
    public var lmixLinf: Float = 0.02
    public var linfK = 2048
    /// Training settings.
    public var train = VQVAETrainConfig()

    public init() {}

    /// Number of levels.
    public var levels: Int { downsT.count }

    /// Samples per code at each level: 8, 32, 128 by default.
    public var hops: [Int] {
        var hops: [Int] = []
        var h = 1
        for (d, s) in zip(downsT, stridesT) {
            for _ in 0..<d { h *= s }
            hops.append(h)
        }
        return hops
    }

    public func validate() throws {
        guard !downsT.isEmpty, downsT.count == stridesT.count, downsT.count == hvqvaeMultipliers.count else {
            throw ConfigError("keys 'downs_t', 'strides_t' and 'hvqvae_multipliers' must list one value per level")
        }
        if downsT.count > 16 { throw ConfigError("key 'downs_t' lists \(downsT.count) levels; at most 16 are supported") }
        if let bad = downsT.firstIndex(where: { $0 < 1 || $0 > 20 }) { throw ConfigError("key 'downs_t' [\(bad)] must be in 1...20") }
        if stridesT.contains(where: { $0 < 2 || $0 % 2 != 0 || $0 > 64 }) {
            throw ConfigError("key 'strides_t' must hold even strides in 2...64 (kernel 2·stride, padding stride/2)")
        }
        // The top hop, computed in Double so that it cannot overflow before it is checked.
        let topHop = zip(downsT, stridesT).reduce(1.0) { $0 * pow(Double($1.1), Double($1.0)) }
        if topHop > Double(1 << 20) { throw ConfigError("keys 'downs_t' and 'strides_t' give a top hop of \(topHop) samples; at most \(1 << 20)") }
        if hvqvaeMultipliers.contains(where: { $0 < 1 || $0 > 64 }) { throw ConfigError("key 'hvqvae_multipliers' must be in 1...64") }
        if width < 1 || width > 1 << 16 { throw ConfigError("key 'width' must be in 1...\(1 << 16), got \(width)") }
        if depth < 1 || depth > 1024 { throw ConfigError("key 'depth' must be in 1...1024, got \(depth)") }
        if embWidth < 1 || embWidth > 1 << 16 { throw ConfigError("key 'emb_width' must be in 1...\(1 << 16), got \(embWidth)") }
        let deepest = depth * hvqvaeMultipliers.max()!
        let largestDilation = pow(Double(dilationGrowthRate), Double((dilationCycle > 0 ? Swift.min(dilationCycle, deepest) : deepest) - 1))
        if largestDilation > Double(1 << 20) {
            throw ConfigError("keys 'depth', 'dilation_growth_rate' and 'dilation_cycle' give a dilation of \(largestDilation); at most \(1 << 20) (use a cycle)")
        }
        if lBins < 2 || lBins > Int(Int16.max) + 1 {
            throw ConfigError("key 'l_bins' must be in 2...32768 (codes are stored as 16-bit), got \(lBins)")
        }
        if !(lMu > 0 && lMu < 1) { throw ConfigError("key 'l_mu' must be in (0, 1), got \(lMu)") }
        if sampleRate < 1000 || sampleRate > 384_000 { throw ConfigError("key 'sample_rate' \(sampleRate) is not a usable rate") }
        if !(mConv > 0 && mConv <= 64) { throw ConfigError("key 'm_conv' must be in (0, 64]") }
        if !(commit.isFinite && multispectral.isFinite && lmixL2.isFinite && lmixLinf.isFinite) {
            throw ConfigError("keys 'commit', 'multispectral', 'lmix_l2' and 'lmix_linf' must be finite")
        }
        if !revivalThreshold.isFinite { throw ConfigError("key 'revival_threshold' must be finite") }
        if dilationGrowthRate < 1 { throw ConfigError("key 'dilation_growth_rate' must be at least 1") }
        if dilationCycle < 0 { throw ConfigError("key 'dilation_cycle' must be ≥ 0 (0: no cycle)") }
        if linfK < 1 { throw ConfigError("key 'linf_k' must be at least 1") }
        try train.validate(hop: hops.last!)
    }
}

/// Optimiser and schedule of `jukebox train vqvae` (flags override them).
public struct VQVAETrainConfig: Codable, Equatable {
    public var learningRate: Float = 3e-4
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    public var weightDecay: Float = 0
    public var warmupSteps = 100
    public var gradientClip: Float = 1.0
    public var batchSize = 4
    /// Crop length in samples; a multiple of the top hop.
    public var sampleLength = 66048
    public var steps = 10000
    public var checkpointEvery = 1000
    /// Held-out spectral convergence is measured every this many steps (0: never).
    public var evalEvery = 500
    /// Progress line and metrics.jsonl row every this many steps.
    public var logEvery = 10

    public init() {}

    func validate(hop: Int) throws {
        if sampleLength <= 0 || sampleLength % hop != 0 {
            throw ConfigError("key 'train.sample_length' \(sampleLength) must be a positive multiple of the top hop \(hop)")
        }
        if sampleLength <= 1024 {
            throw ConfigError("key 'train.sample_length' \(sampleLength) must exceed 1024: the spectral loss's 2048-point STFT reflect-pads 1024 samples")
        }
        if sampleLength > 1 << 30 { throw ConfigError("key 'train.sample_length' must be at most \(1 << 30)") }
        if batchSize < 1 || batchSize > 1 << 24 { throw ConfigError("key 'train.batch_size' must be in 1...\(1 << 24)") }
        try validateAdamSettings(learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon,
                                 weightDecay: weightDecay, gradientClip: gradientClip, warmupSteps: warmupSteps)
        if steps < 0 { throw ConfigError("key 'train.steps' must be ≥ 0") }
        if checkpointEvery < 1 { throw ConfigError("key 'train.checkpoint_every' must be at least 1") }
        if logEvery < 1 { throw ConfigError("key 'train.log_every' must be at least 1") }
        if evalEvery < 0 { throw ConfigError("key 'train.eval_every' must be ≥ 0") }
    }
}
