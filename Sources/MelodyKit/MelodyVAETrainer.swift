// `jukebox train melody-vae`: MusicVAE's training (Magenta base_model.py, lstm_models.py) on
// 2-bar windows, with the run-folder contract of the other trainers: atomic checkpoints
// (weights, Adam moments, generator, step), exact resume, Ctrl-C, a stop on a non-finite loss.
//
// Per step: z = μ + σ·ε from the encoder; the decoder is fed the true previous event, or with
// the scheduled-sampling probability a sample of its own output; loss = cross-entropy summed
// over the steps (batch mean) + β · mean(max(KL − free_bits·ln 2, 0)); the learning rate
// decays exponentially; gradients are clipped to a global norm of 1, and a step whose norm
// reaches 10⁴ is skipped (the reference applies a zero update there).

import Foundation
import TensorCore
import ModelKit
import MIDI

/// What the trainer reports after each logged step.
public struct MelodyVAEProgress {
    public var step: Int
    public var totalSteps: Int
    /// Reconstruction loss in nats per window, KL in bits per window.
    public var reconstruction: Float
    public var klBits: Float
    /// Share of steps whose argmax equals the target (with the step's own inputs).
    public var accuracy: Float
    public var beta: Float
    public var samplingProbability: Double
    public var stepsPerSecond: Double
    /// Held-out figures on evaluation steps.
    public var heldOut: MelodyVAEEvaluation?
}

/// Held-out reconstruction: argmax decoding from μ, no teacher forcing.
public struct MelodyVAEEvaluation: Codable, Equatable {
    /// Share of steps decoded right, over all steps, over note-on targets, and over the rest.
    public var accuracy: Double
    public var noteOnAccuracy: Double
    public var otherAccuracy: Double
    /// Mean KL per window in bits.
    public var klBits: Double
    /// Latent dimensions whose mean posterior σ over the windows is below 1.
    public var activeDimensions: Int
    public var windows: Int
}

/// Trains a ``MelodyVAE`` in a run folder.
public final class MelodyVAETrainer {
    public let model: MelodyVAE
    public let run: RunDirectory
    public let config: MelodyVAEConfig
    public let dataset: MelodyDataset
    public private(set) var step = 0
    let optimizer: Adam
    var generator: RandomGenerator
    let seed: UInt64
    /// Fixed windows for the held-out figures (training windows when nothing is held out).
    let evaluationWindows: [Melody]

    public init(config startConfig: MelodyVAEConfig, data: [String], outDirectory: String, seed: UInt64, resume: Bool,
                log: (String) -> Void = { _ in }) throws {
        try startConfig.trainingMemory(batch: startConfig.train.batchSize).check()
        run = try RunDirectory(outDirectory, resume: resume)
        let checkpoint = resume ? try Checkpoint.read(run.checkpointPath, kind: "melody-vae") : nil
        var config = startConfig
        if let checkpoint {
            config = try MelodyVAEConfig.decode(Data(try checkpoint.require("config").utf8), source: checkpoint.path)
            try MelodyVAEConfig.checkResume(given: startConfig, saved: config, run: outDirectory)
        }
        self.config = config
        dataset = try MelodyDataset(sources: data, steps: config.steps, log: log)
        self.seed = checkpoint.flatMap { UInt64($0.metadata["seed"] ?? "") } ?? seed
        model = MelodyVAE(config: config, seed: self.seed)
        optimizer = Adam(parameters: model.namedParameters(), learningRate: config.train.learningRate, warmupSteps: 0)
        (step, generator) = try run.start(from: checkpoint, optimizer: optimizer, fresh: RandomGenerator(seed: self.seed ^ 0x3E10),
                                          config: config.jsonString())
        let pool = dataset.heldOut.isEmpty ? dataset.train : dataset.heldOut
        var pick = RandomGenerator(seed: self.seed ^ 0xE7A1)
        evaluationWindows = pool.count <= 512 ? pool : (0..<512).map { _ in pool[pick.int(below: pool.count)] }
    }

    /// Writes the checkpoint for the current step (atomically).
    public func saveCheckpoint() throws {
        let tensors = model.namedParameters().map { ($0.name, $0.tensor) } + optimizer.stateTensors()
        try Checkpoint.write(run.checkpointPath, kind: "melody-vae", config: config.jsonString(), step: step, tensors: tensors,
                             metadata: ["seed": String(seed), "generator": generator.stateWords.map(String.init).joined(separator: ","),
                                        "digest": model.digest])
    }

    /// The loss of one batch of `events (B·T)` and its parts; draws ε and the scheduled
    /// samples from `generator`.
    func loss(_ events: [Int32], batch: Int) -> (total: Tensor, reconstruction: Float, kl: Float, accuracy: Float) {
        let T = config.steps, V = config.classes
        let (mu, sigma) = model.encode(events, batch: batch)
        let epsilon = Tensor.randomNormal(mu.shape, std: 1, generator: &generator)
        let z = mu + sigma * epsilon
        // Scheduled sampling: which steps feed back the model's own sample, drawn up front.
        let p = config.samplingProbability(step: step)
        let feedSample = (0..<(batch * T)).map { _ in Double(generator.uniform()) < p }
        let choose: ((Int, Int, UnsafePointer<Float>) -> Int32?)?
        if feedSample.contains(true) {
            choose = { [self] b, t, logits in
                guard feedSample[b * T + t] else { return nil }
                return sampleCategorical(logits, count: V)
            }
        } else {
            choose = nil
        }
        let logits = model.decode(z, targets: events, batch: batch, choose: choose)
        let crossEntropy = Tensor.crossEntropy(logits: logits, targets: events) * Float(T)
        let kl = model.klDivergence(mu: mu, sigma: sigma)
        let freeNats = config.freeBits * Float(M_LN2)
        let klCost = (kl - freeNats).relu().mean()
        let beta = config.beta(step: step, totalSteps: config.train.steps)
        var right = 0
        for r in 0..<(batch * T) {
            let row = logits.data + r * V
            var best = 0
            for i in 1..<V where row[i] > row[best] { best = i }
            if best == Int(events[r]) { right += 1 }
        }
        return (crossEntropy + klCost * beta, crossEntropy.item, kl.mean().item / Float(M_LN2),
                Float(right) / Float(batch * T))
    }

    /// An event drawn from softmax(`logits`).
    func sampleCategorical(_ logits: UnsafePointer<Float>, count: Int) -> Int32 {
        var m = logits[0]
        for i in 1..<count { m = Swift.max(m, logits[i]) }
        var total: Float = 0
        for i in 0..<count { total += Foundation.exp(logits[i] - m) }
        var u = generator.uniform() * total
        for i in 0..<count {
            u -= Foundation.exp(logits[i] - m)
            if u <= 0 { return Int32(i) }
        }
        return Int32(count - 1)
    }

    /// Held-out reconstruction from μ by argmax decoding.
    public func evaluate() -> MelodyVAEEvaluation {
        MelodyVAEEvaluator(model: model).evaluate(evaluationWindows)
    }

    /// Trains until `totalSteps`, checkpointing as configured, at the end and on Ctrl-C.
    public func train(totalSteps: Int, report: (MelodyVAEProgress) -> Void) throws -> TrainingOutcome {
        let t = config.train
        var loop = TrainingLoop(run: run, schedule: t, totalSteps: totalSteps, startStep: step)
        while step < totalSteps {
            let events = dataset.sampleBatch(batch: t.batchSize, transpose: t.transpose, generator: &generator)
            optimizer.zeroGrad()
            let (loss, reconstruction, klBits, accuracy) = self.loss(events, batch: t.batchSize)
            let value = loss.item
            try loop.requireFinite(value, "the loss", step: step + 1)
            loss.backward()
            let norm = clipGradientNorm(optimizer.parameters, maxNorm: t.gradientClip)
            try loop.requireFinite(norm, "the gradient norm", step: step + 1)
            let lr = t.learningRate(step: step)
            if norm < t.skipGradientNorm {
                optimizer.learningRate = lr
                optimizer.update()
            }
            step += 1
            let evaluation = loop.isEvalStep(step) ? evaluate() : nil
            if loop.isLogStep(step, evaluated: evaluation != nil) {
                var (row, rate) = loop.logFields(step: step, loss: value, lossName: "loss", learningRate: lr, gradientNorm: norm)
                row["reconstruction_nats"] = rounded(reconstruction)
                row["kl_bits"] = rounded(klBits)
                row["accuracy"] = rounded(accuracy)
                row["beta"] = rounded(config.beta(step: step, totalSteps: config.train.steps))
                row["sampling_probability"] = rounded(Float(config.samplingProbability(step: step)))
                if let evaluation {
                    row["heldout_accuracy"] = rounded(Float(evaluation.accuracy))
                    row["heldout_kl_bits"] = rounded(Float(evaluation.klBits))
                    row["heldout_active_dimensions"] = evaluation.activeDimensions
                }
                run.log(row)
                report(MelodyVAEProgress(step: step, totalSteps: totalSteps, reconstruction: reconstruction, klBits: klBits,
                                         accuracy: accuracy, beta: config.beta(step: step, totalSteps: config.train.steps),
                                         samplingProbability: config.samplingProbability(step: step), stepsPerSecond: rate,
                                         heldOut: evaluation))
            }
            if let stopped = try loop.afterStep(step, save: saveCheckpoint) { return stopped }
        }
        try saveCheckpoint()
        return .finished(step: step)
    }
}

/// Reconstruction figures of a VAE on windows: argmax decoding from μ.
public struct MelodyVAEEvaluator {
    public let model: MelodyVAE

    public init(model: MelodyVAE) { self.model = model }

    public func evaluate(_ windows: [Melody], batch: Int = 64) -> MelodyVAEEvaluation {
        let T = model.config.steps
        var right = 0, total = 0, noteOnRight = 0, noteOn = 0, klSum = 0.0
        var sigmaSums = [Double](repeating: 0, count: model.config.zSize)
        Tensor.withoutGrad {
            var start = 0
            while start < windows.count {
                let part = windows[start..<Swift.min(start + batch, windows.count)]
                let events = part.flatMap { $0.events.map { Int32($0) } }
                let (mu, sigma) = model.encode(events, batch: part.count)
                let decoded = model.greedyDecode(mu, steps: T)
                for (i, target) in events.enumerated() {
                    let hit = decoded[i] == target
                    total += 1
                    if hit { right += 1 }
                    if target >= 2 { noteOn += 1; if hit { noteOnRight += 1 } }
                }
                let kl = model.klDivergence(mu: mu, sigma: sigma)
                for i in 0..<kl.count { klSum += Double(kl.data[i]) }
                for b in 0..<part.count {
                    for d in 0..<model.config.zSize { sigmaSums[d] += Double(sigma.data[b * model.config.zSize + d]) }
                }
                start += part.count
            }
        }
        let n = Double(Swift.max(windows.count, 1))
        return MelodyVAEEvaluation(accuracy: Double(right) / Double(Swift.max(total, 1)),
                                   noteOnAccuracy: Double(noteOnRight) / Double(Swift.max(noteOn, 1)),
                                   otherAccuracy: Double(right - noteOnRight) / Double(Swift.max(total - noteOn, 1)),
                                   klBits: klSum / n / M_LN2,
                                   activeDimensions: sigmaSums.filter { $0 / n < 1 }.count, windows: windows.count)
    }
}

extension MelodyVAE {
    /// Identifies these weights.
    public var digest: String { Checkpoint.digest(namedParameters().map { ($0.name, $0.tensor) }) }

    /// Loads a melody VAE checkpoint.
    public static func load(_ path: String) throws -> MelodyVAE {
        let checkpoint = try Checkpoint.read(path, kind: "melody-vae")
        let config = try MelodyVAEConfig.decode(Data(try checkpoint.require("config").utf8), source: path)
        try checkpoint.requireRoom(forParameters: config.parameterCount)
        let model = MelodyVAE(config: config, seed: 0)
        try checkpoint.load(into: model.namedParameters().map { ($0.name, $0.tensor) })
        return model
    }
}

extension MelodyVAEConfig {
    /// Parameters of the VAE this config builds.
    public var parameterCount: Int {
        func lstm(_ input: Int, _ units: Int) -> Int { (input + units) * 4 * units + 4 * units }
        var total = 0, input = classes
        for units in encoderUnits {
            total += 2 * lstm(input, units)
            input = 2 * units
        }
        total += 2 * (input * zSize + zSize) + zSize * 2 * decoderUnits.reduce(0, +) + 2 * decoderUnits.reduce(0, +)
        input = classes + zSize
        for units in decoderUnits {
            total += lstm(input, units)
            input = units
        }
        return total + input * classes + classes
    }

    /// Memory of a training run with `batch` windows: the LSTMs keep their gates and cells for
    /// every step (5 floats per unit and step), the decoder's inputs and logits, with a margin.
    public func trainingMemory(batch: Int) -> MemoryEstimate {
        let units = 2 * encoderUnits.reduce(0, +) + decoderUnits.reduce(0, +)
        let perWindow = 4 * Double(steps) * 2 * (6 * Double(units) + 3 * Double(classes + zSize))
        return MemoryEstimate(fixedBytes: 16 * Double(parameterCount), bytesPerItem: perWindow, batch: batch,
                              parameters: parameterCount, item: "windows of \(steps) steps")
    }
}
