// `jukebox train melody-prior --kind diffusion|mdn`: a latent prior (the diffusion denoiser or
// the autoregressive TransformerMDN) on latent sequences of a trained melody VAE, with the
// run-folder contract of the other trainers (atomic checkpoints with the Adam moments, the
// generator and the latent transform; exact resume; Ctrl-C; a stop on a non-finite loss). Adam,
// lr × decay every `decay_every` steps, global-norm clipping, no EMA; the two priors differ only
// in their model, loss and reference settings (diffusion: 1e-3, ×0.98 per 10k steps, batch 64;
// MDN: 3e-4, ×0.98 per 4k steps, batch 128).

import Foundation
import TensorCore
import ModelKit
import MIDI

/// Optimiser and schedule of a latent prior: Adam, lr × decay every `decay_every` steps.
public struct MelodyPriorTrainConfig: Codable, Equatable, TrainingSchedule {
    public var learningRate: Float
    public var decay: Float
    public var decayEvery: Int
    public var gradientClip: Float
    public var batchSize: Int
    public var steps: Int
    public var checkpointEvery: Int
    public var evalEvery: Int
    public var logEvery: Int
    /// Transposition augmentation of the training latents: each training melody long enough for
    /// a sequence is also encoded moved by every shift in −transpose...transpose semitones (0:
    /// none, as the reference; a deviation our small folk corpus needs).
    public var transpose = 0

    /// The defaults are the diffusion prior's reference settings (`train_ncsn.py`), 30k steps.
    public init(learningRate: Float = 1e-3, decay: Float = 0.98, decayEvery: Int = 10000, gradientClip: Float = 1.0,
                batchSize: Int = 64, steps: Int = 30000, checkpointEvery: Int = 500, evalEvery: Int = 1000, logEvery: Int = 10) {
        (self.learningRate, self.decay, self.decayEvery, self.gradientClip) = (learningRate, decay, decayEvery, gradientClip)
        (self.batchSize, self.steps, self.checkpointEvery, self.evalEvery, self.logEvery) = (batchSize, steps, checkpointEvery, evalEvery, logEvery)
    }

    func validate() throws {
        if !(learningRate > 0 && learningRate.isFinite) || !(decay > 0 && decay <= 1) || decayEvery < 1 {
            throw ConfigError("keys 'train.learning_rate' (positive), 'train.decay' (0, 1] and 'train.decay_every' (≥ 1) are out of range")
        }
        if !(gradientClip > 0) { throw ConfigError("key 'train.gradient_clip' must be positive") }
        if batchSize < 1 || batchSize > 1 << 20 || steps < 0 { throw ConfigError("keys 'train.batch_size' and 'train.steps' are out of range") }
        if checkpointEvery < 1 || logEvery < 1 || evalEvery < 0 { throw ConfigError("keys 'train.checkpoint_every', 'train.log_every' and 'train.eval_every' are out of range") }
        if transpose < 0 || transpose > 24 { throw ConfigError("key 'train.transpose' must be in 0...24") }
    }

    /// The learning rate of step `step`: lr · decay^⌊step / decay_every⌋.
    public func learningRate(step: Int) -> Float { learningRate * Float(pow(Double(decay), Double(step / decayEvery))) }
}

/// The config of a latent prior: sequences of `length` latents of `latent_dims` dimensions (0
/// until the data decides) and the training settings.
public protocol MelodyPriorConfig: JukeboxConfig, Equatable {
    var latentDims: Int { get set }
    var length: Int { get }
    var train: MelodyPriorTrainConfig { get set }
}

/// A model of latent sequences `(B, L, D)` in [−1, 1] that ``MelodyPriorTrainer`` trains.
public protocol LatentPrior: Module {
    associatedtype Config: MelodyPriorConfig
    /// The kind its checkpoints carry.
    static var checkpointKind: String { get }
    init(config: Config, seed: UInt64)
    var config: Config { get }
    /// The loss of a batch of sequences `x (B, L, D)`, a scalar; it may draw noise from `generator`.
    func trainingLoss(_ x: Tensor, generator: inout RandomGenerator) -> Tensor
}

extension MelodyDiffusionConfig: MelodyPriorConfig {}

extension Denoiser: LatentPrior {
    public static let checkpointKind = "melody-diffusion"

    /// The ε-MSE at noise levels drawn as the reference draws them.
    public func trainingLoss(_ x: Tensor, generator: inout RandomGenerator) -> Tensor {
        loss(x, schedule: config.schedule, generator: &generator)
    }
}

/// Trains the diffusion prior.
public typealias MelodyDiffusionTrainer = MelodyPriorTrainer<Denoiser>

/// What the trainer reports after each logged step.
public struct MelodyPriorProgress {
    public var step: Int
    public var totalSteps: Int
    public var loss: Float
    public var stepsPerSecond: Double
    /// The held-out loss on evaluation steps.
    public var heldOutLoss: Float?
}

/// Trains a latent prior in a run folder.
public final class MelodyPriorTrainer<Model: LatentPrior> {
    public let model: Model
    public let run: RunDirectory
    public let config: Model.Config
    public let transform: LatentTransform
    public let vaeDigest: String
    public let train: LatentSequences
    public let heldOut: LatentSequences
    public private(set) var step = 0
    let optimizer: Adam
    var generator: RandomGenerator
    let seed: UInt64

    /// A new run in `outDirectory` (or, with `resume`, the run there continued from its
    /// checkpoint, with its own config, seed and latent transform) on the latents of the VAE at
    /// `vaePath` of the melodies in `data`. Encoding progress goes to `log`.
    public init(config startConfig: Model.Config, vaePath: String, data: [String], outDirectory: String,
                seed: UInt64, resume: Bool, log: (String) -> Void = { _ in }) throws {
        let vae = try MelodyVAE.load(vaePath)
        run = try RunDirectory(outDirectory, resume: resume)
        let checkpoint = resume ? try Checkpoint.read(run.checkpointPath, kind: Model.checkpointKind) : nil
        var config = startConfig
        var savedTransform: LatentTransform?
        if let checkpoint {
            config = try Model.Config.decode(Data(try checkpoint.require("config").utf8), source: checkpoint.path)
            savedTransform = try JSONDecoder().decode(LatentTransform.self, from: Data(try checkpoint.require("transform").utf8))
            guard checkpoint.metadata["vae"] == vae.digest else {
                throw ConfigError("\(checkpoint.path): was trained on latents of VAE \(checkpoint.metadata["vae"] ?? "?"), not \(vaePath)")
            }
        }
        self.seed = checkpoint.flatMap { UInt64($0.metadata["seed"] ?? "") } ?? seed
        let latents = try LatentTrainingData(vae: vae, sources: data, length: config.length, transform: savedTransform,
                                             seed: self.seed, transpose: config.train.transpose, log: log)
        if config.latentDims == 0 {
            config.latentDims = latents.transform.kept.count
        } else if config.latentDims != latents.transform.kept.count {
            throw ConfigError("the config says latent_dims \(config.latentDims), but \(latents.transform.kept.count) dimensions have mean σ < 1 under this VAE")
        }
        if checkpoint != nil {
            var given = startConfig
            given.latentDims = config.latentDims
            try Model.Config.checkResume(given: given, saved: config, run: outDirectory)
        }
        self.config = config
        (transform, train, heldOut) = (latents.transform, latents.train, latents.heldOut)
        vaeDigest = vae.digest
        model = Model(config: config, seed: self.seed)
        optimizer = Adam(parameters: model.namedParameters(), learningRate: config.train.learningRate, warmupSteps: 0)
        (step, generator) = try run.start(from: checkpoint, optimizer: optimizer, fresh: RandomGenerator(seed: self.seed ^ 0xD1FF),
                                          config: config.jsonString())
    }

    /// Writes the checkpoint for the current step (atomically).
    public func saveCheckpoint() throws {
        let tensors = model.namedParameters().map { ($0.name, $0.tensor) } + optimizer.stateTensors()
        try Checkpoint.write(run.checkpointPath, kind: Model.checkpointKind, config: config.jsonString(), step: step, tensors: tensors,
                             metadata: ["seed": String(seed), "generator": generator.stateWords.map(String.init).joined(separator: ","),
                                        "transform": transform.json, "vae": vaeDigest])
    }

    /// Mean held-out loss over up to 4 fixed batches (fixed noise), or nil without held-out data.
    public func heldOutLoss() -> Float? {
        guard heldOut.count > 0 else { return nil }
        var g = RandomGenerator(seed: seed ^ 0xE7A1)
        return Tensor.withoutGrad {
            var total: Float = 0, batches = 0
            var start = 0
            while start < heldOut.count && batches < 4 {
                let indices = Array(start..<Swift.min(start + config.train.batchSize, heldOut.count))
                total += model.trainingLoss(heldOut.batch(indices), generator: &g).item
                batches += 1
                start += indices.count
            }
            return total / Float(batches)
        }
    }

    /// Trains until `totalSteps`, checkpointing as configured, at the end and on Ctrl-C.
    public func train(totalSteps: Int, report: (MelodyPriorProgress) -> Void) throws -> TrainingOutcome {
        let t = config.train
        var loop = TrainingLoop(run: run, schedule: t, totalSteps: totalSteps, startStep: step)
        while step < totalSteps {
            let indices = (0..<t.batchSize).map { _ in generator.int(below: train.count) }
            optimizer.zeroGrad()
            let loss = model.trainingLoss(train.batch(indices), generator: &generator)
            let value = loss.item
            try loop.requireFinite(value, "the loss", step: step + 1)
            loss.backward()
            optimizer.learningRate = t.learningRate(step: step)
            let (lr, norm) = try loop.update(optimizer, step: step + 1)
            step += 1
            let evaluation = loop.isEvalStep(step) ? heldOutLoss() : nil
            if loop.isLogStep(step, evaluated: evaluation != nil) {
                var (row, rate) = loop.logFields(step: step, loss: value, lossName: "loss", learningRate: lr, gradientNorm: norm)
                if let evaluation { row["heldout_loss"] = rounded(evaluation) }
                run.log(row)
                report(MelodyPriorProgress(step: step, totalSteps: totalSteps, loss: value, stepsPerSecond: rate, heldOutLoss: evaluation))
            }
            if let stopped = try loop.afterStep(step, save: saveCheckpoint) { return stopped }
        }
        try saveCheckpoint()
        return .finished(step: step)
    }
}
