// `jukebox train melody-prior --kind diffusion`: the denoiser on latent sequences of a trained
// melody VAE, with the run-folder contract of the other trainers (atomic checkpoints with the
// Adam moments, the generator and the latent transform; exact resume; Ctrl-C; a stop on a
// non-finite loss). Adam 1e-3, ×0.98 every 10k steps, global-norm clipping at 1, no EMA.

import Foundation
import TensorCore
import ModelKit
import MIDI

/// What the trainer reports after each logged step.
public struct MelodyDiffusionProgress {
    public var step: Int
    public var totalSteps: Int
    public var loss: Float
    public var stepsPerSecond: Double
    /// Held-out ε-MSE on evaluation steps.
    public var heldOutLoss: Float?
}

/// Trains a ``Denoiser`` in a run folder.
public final class MelodyDiffusionTrainer {
    public let model: Denoiser
    public let run: RunDirectory
    public let config: MelodyDiffusionConfig
    public let transform: LatentTransform
    public let vaeDigest: String
    public let train: LatentSequences
    public let heldOut: LatentSequences
    public private(set) var step = 0
    let optimizer: Adam
    var generator: RandomGenerator
    let seed: UInt64

    public init(config startConfig: MelodyDiffusionConfig, vaePath: String, data: [String], outDirectory: String,
                seed: UInt64, resume: Bool, log: (String) -> Void = { _ in }) throws {
        let vae = try MelodyVAE.load(vaePath)
        run = try RunDirectory(outDirectory, resume: resume)
        let checkpoint = resume ? try Checkpoint.read(run.checkpointPath, kind: "melody-diffusion") : nil
        var config = startConfig
        var savedTransform: LatentTransform?
        if let checkpoint {
            config = try MelodyDiffusionConfig.decode(Data(try checkpoint.require("config").utf8), source: checkpoint.path)
            savedTransform = try JSONDecoder().decode(LatentTransform.self, from: Data(try checkpoint.require("transform").utf8))
            guard checkpoint.metadata["vae"] == vae.digest else {
                throw ConfigError("\(checkpoint.path): was trained on latents of VAE \(checkpoint.metadata["vae"] ?? "?"), not \(vaePath)")
            }
        }
        self.seed = checkpoint.flatMap { UInt64($0.metadata["seed"] ?? "") } ?? seed
        let split = try MelodyDataset.splitMelodies(sources: data, log: log)
        let encoder = LatentEncoder(vae: vae)
        log("encoding \(split.train.count) training and \(split.heldOut.count) held-out melodies with the VAE")
        let encodedTrain = encoder.encode(split.train, seed: self.seed ^ 0x1A7E)
        let encodedHeldOut = encoder.encode(split.heldOut, seed: self.seed ^ 0x2A7E)
        let transform = try savedTransform ?? encoder.fitTransform(encodedTrain, length: config.length)
        if config.latentDims == 0 {
            config.latentDims = transform.kept.count
        } else if config.latentDims != transform.kept.count {
            throw ConfigError("the config says latent_dims \(config.latentDims), but \(transform.kept.count) dimensions have mean σ < 1 under this VAE")
        }
        if checkpoint != nil {
            var given = startConfig
            given.latentDims = config.latentDims
            try MelodyDiffusionConfig.checkResume(given: given, saved: config, run: outDirectory)
        }
        self.config = config
        self.transform = transform
        vaeDigest = vae.digest
        train = encoder.sequences(encodedTrain, length: config.length, transform: transform)
        heldOut = encoder.sequences(encodedHeldOut, length: config.length, transform: transform)
        guard train.count > 0 else {
            throw ConfigError("\(data.joined(separator: ", ")): no melody has \(config.length) consecutive 2-bar chunks with notes")
        }
        model = Denoiser(config: config, seed: self.seed)
        optimizer = Adam(parameters: model.namedParameters(), learningRate: config.train.learningRate, warmupSteps: 0)
        (step, generator) = try run.start(from: checkpoint, optimizer: optimizer, fresh: RandomGenerator(seed: self.seed ^ 0xD1FF),
                                          config: config.jsonString())
    }

    /// Writes the checkpoint for the current step (atomically).
    public func saveCheckpoint() throws {
        let tensors = model.namedParameters().map { ($0.name, $0.tensor) } + optimizer.stateTensors()
        try Checkpoint.write(run.checkpointPath, kind: "melody-diffusion", config: config.jsonString(), step: step, tensors: tensors,
                             metadata: ["seed": String(seed), "generator": generator.stateWords.map(String.init).joined(separator: ","),
                                        "transform": transform.json, "vae": vaeDigest])
    }

    /// Mean held-out loss over up to 4 fixed batches (fixed noise), or nil without held-out data.
    public func heldOutLoss() -> Float? {
        guard heldOut.count > 0 else { return nil }
        var g = RandomGenerator(seed: seed ^ 0xE7A1)
        let schedule = config.schedule
        return Tensor.withoutGrad {
            var total: Float = 0, batches = 0
            var start = 0
            while start < heldOut.count && batches < 4 {
                let indices = Array(start..<Swift.min(start + config.train.batchSize, heldOut.count))
                total += model.loss(heldOut.batch(indices), schedule: schedule, generator: &g).item
                batches += 1
                start += indices.count
            }
            return total / Float(batches)
        }
    }

    /// Trains until `totalSteps`, checkpointing as configured, at the end and on Ctrl-C.
    public func train(totalSteps: Int, report: (MelodyDiffusionProgress) -> Void) throws -> TrainingOutcome {
        let t = config.train, schedule = config.schedule
        var loop = TrainingLoop(run: run, schedule: t, totalSteps: totalSteps, startStep: step)
        while step < totalSteps {
            let indices = (0..<t.batchSize).map { _ in generator.int(below: train.count) }
            optimizer.zeroGrad()
            let loss = model.loss(train.batch(indices), schedule: schedule, generator: &generator)
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
                report(MelodyDiffusionProgress(step: step, totalSteps: totalSteps, loss: value, stepsPerSecond: rate, heldOutLoss: evaluation))
            }
            if let stopped = try loop.afterStep(step, save: saveCheckpoint) { return stopped }
        }
        try saveCheckpoint()
        return .finished(step: step)
    }
}
