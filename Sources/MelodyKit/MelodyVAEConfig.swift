// Hyperparameters of the 2-bar melody VAE (MusicVAE's `cat-mel_2bar` models; reference values
// from Magenta's configs.py and lstm_models.py, see shared/reference/symbolic-diffusion-data.md §2).

import Foundation
import ModelKit

/// Shapes, loss and training settings of a melody VAE.
public struct MelodyVAEConfig: JukeboxConfig, Equatable {
    public var comment = ""
    /// Event classes: 0 no-event, 1 note-off, 2 + (pitch − 21) note-on for MIDI 21–108.
    public var classes = 90
    /// Steps per chunk: 2 bars of 16 sixteenths.
    public var steps = 32
    /// Units per direction of each bidirectional encoder layer.
    public var encoderUnits = [512]
    /// Units of each decoder layer.
    public var decoderUnits = [256, 256]
    /// Latent size.
    public var zSize = 256
    /// Loss: summed cross-entropy + β · mean(max(KL − free_bits · ln 2, 0)).
    public var freeBits: Float = 0
    public var maxBeta: Float = 0.2
    /// β = (1 − rate^step) · max_beta with rate = beta_rate^(beta_reference_steps / train.steps):
    /// the reference's 0.99999 over its 200k steps, rescaled so that β follows the same curve
    /// over our step budget (the run's `train.steps` as it started, so a resumed run keeps it).
    public var betaRate: Double = 0.99999
    public var betaReferenceSteps = 200_000
    /// Scheduled sampling: a step feeds back a sample of the model's own output with
    /// probability 1 − k / (k + exp(step / k)) (inverse sigmoid), k this rate.
    public var samplingRate: Double = 1000
    public var train = MelodyVAETrainConfig()

    public init() {}

    public func validate() throws {
        if classes != 90 { throw ConfigError("key 'classes' must be 90 (the melody event encoding)") }
        if steps < 2 || steps > 4096 { throw ConfigError("key 'steps' must be in 2...4096") }
        for (key, units) in [("encoder_units", encoderUnits), ("decoder_units", decoderUnits)] {
            if units.isEmpty || units.count > 16 || units.contains(where: { $0 < 1 || $0 > 1 << 16 }) {
                throw ConfigError("key '\(key)' must list 1 to 16 layer sizes in 1...\(1 << 16)")
            }
        }
        if zSize < 1 || zSize > 1 << 16 { throw ConfigError("key 'z_size' must be in 1...\(1 << 16)") }
        if !(freeBits >= 0 && freeBits.isFinite) { throw ConfigError("key 'free_bits' must be ≥ 0") }
        if !(maxBeta >= 0 && maxBeta.isFinite) { throw ConfigError("key 'max_beta' must be ≥ 0") }
        if !(betaRate > 0 && betaRate <= 1) { throw ConfigError("key 'beta_rate' must be in (0, 1]") }
        if betaReferenceSteps < 1 { throw ConfigError("key 'beta_reference_steps' must be at least 1") }
        if !(samplingRate > 0 && samplingRate.isFinite) { throw ConfigError("key 'sampling_rate' must be positive") }
        try train.validate()
    }

    /// β at `step` of a run of `totalSteps`.
    public func beta(step: Int, totalSteps: Int) -> Float {
        let rate = pow(betaRate, Double(betaReferenceSteps) / Double(Swift.max(totalSteps, 1)))
        return Float((1 - pow(rate, Double(step))) * Double(maxBeta))
    }

    /// Probability that a decoder step is fed the model's own sample at `step`.
    public func samplingProbability(step: Int) -> Double {
        let k = samplingRate
        let e = exp(Swift.min(Double(step) / k, 700))
        return 1 - k / (k + e)
    }
}

/// Optimiser and schedule of `jukebox train melody-vae`.
public struct MelodyVAETrainConfig: Codable, Equatable, TrainingSchedule {
    /// lr = (learning_rate − min_learning_rate) · decay_rate^step + min_learning_rate.
    public var learningRate: Float = 1e-3
    public var minLearningRate: Float = 1e-5
    public var decayRate: Float = 0.9999
    public var gradientClip: Float = 1.0
    /// A step whose gradient norm reaches this is skipped (the reference zeroes it).
    public var skipGradientNorm: Float = 1e4
    public var batchSize = 64
    public var steps = 20000
    /// Transposition augmentation: a uniform shift in −transpose...transpose semitones.
    public var transpose = 5
    public var checkpointEvery = 500
    public var evalEvery = 500
    public var logEvery = 10

    public init() {}

    func validate() throws {
        if batchSize < 1 || batchSize > 1 << 20 { throw ConfigError("key 'train.batch_size' must be in 1...\(1 << 20)") }
        if !(learningRate > 0 && learningRate.isFinite) || !(minLearningRate >= 0 && minLearningRate <= learningRate) {
            throw ConfigError("keys 'train.learning_rate' (positive) and 'train.min_learning_rate' (0...learning_rate) are out of range")
        }
        if !(decayRate > 0 && decayRate <= 1) { throw ConfigError("key 'train.decay_rate' must be in (0, 1]") }
        if !(gradientClip > 0) || !(skipGradientNorm > 0) { throw ConfigError("keys 'train.gradient_clip' and 'train.skip_gradient_norm' must be positive") }
        if steps < 0 { throw ConfigError("key 'train.steps' must be ≥ 0") }
        if transpose < 0 || transpose > 24 { throw ConfigError("key 'train.transpose' must be in 0...24") }
        if checkpointEvery < 1 || logEvery < 1 { throw ConfigError("keys 'train.checkpoint_every' and 'train.log_every' must be at least 1") }
        if evalEvery < 0 { throw ConfigError("key 'train.eval_every' must be ≥ 0") }
    }

    /// The learning rate of step `step`.
    public func learningRate(step: Int) -> Float {
        (learningRate - minLearningRate) * Float(pow(Double(decayRate), Double(step))) + minLearningRate
    }
}
