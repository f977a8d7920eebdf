// `jukebox train vqvae`: Adam with warm-up and clipping over batches of random crops, with
// atomic checkpoints that hold everything needed to continue exactly: weights, Adam moments,
// codebooks with their EMA state, the restart generator, the loader's generator and the step.

import Foundation
import TensorCore
import ModelKit
import AudioDSP

/// What the trainer reports after each logged step.
public struct VQVAEProgress {
    public var step: Int
    public var totalSteps: Int
    public var loss: Float
    public var lmix: [Float], spectral: [Float], commit: [Float]
    public var usedCodes: [Int], perplexity: [Float]
    public var stepsPerSecond: Double
    /// Held-out spectral convergence per level in dB, on steps where it was measured.
    public var evalConvergenceDB: [Double]?
}

/// Trains a ``VQVAE`` on an audio dataset in a run folder.
public final class VQVAETrainer {
    public let model: VQVAE
    public let run: RunDirectory
    public let config: VQVAEConfig
    public private(set) var step = 0
    let optimizer: Adam
    let loader: AudioLoader
    let evalBatch: Tensor
    /// Draws codebook initialisation and restarts.
    var generator: RandomGenerator
    let seed: UInt64

    /// Levels this run trains: all, or the levels added to the VQ-VAE it extends.
    public let trainedLevels: [Int]

    /// Sets up a new run in `outDirectory` (which must not hold one), or continues the run there
    /// when `resume` is set (the checkpoint's config, seed and data statistics win).
    ///
    /// `extending` names a trained VQ-VAE checkpoint whose levels the config repeats: they are
    /// copied and kept as they are, and only the levels the config adds are trained, so codes of
    /// the kept levels, and priors over them, stay valid for the new VQ-VAE.
    public init(config startConfig: VQVAEConfig, data: [String], outDirectory: String, seed: UInt64,
                resume: Bool, extending basePath: String? = nil) throws {
        // Before anything is allocated or written: a run that cannot fit is refused.
        try startConfig.trainingMemory(batch: startConfig.train.batchSize, sampleLength: startConfig.train.sampleLength).check()
        run = try RunDirectory(outDirectory, resume: resume)
        let checkpoint = resume ? try Checkpoint.read(run.checkpointPath, kind: "vqvae") : nil
        var config = startConfig
        if let checkpoint {
            config = try VQVAEConfig.decode(Data(try checkpoint.require("config").utf8), source: checkpoint.path)
            try VQVAEConfig.checkResume(given: startConfig, saved: config, run: outDirectory)
        }
        self.config = config
        self.seed = checkpoint.flatMap { UInt64($0.metadata["seed"] ?? "") } ?? seed
        let dataset = try AudioDataset(sources: data, sampleRate: config.sampleRate,
                                       sampleLength: config.train.sampleLength, runDirectory: outDirectory)
        let bandwidth: Bandwidth
        if let checkpoint {
            bandwidth = try JSONDecoder().decode(Bandwidth.self, from: Data(try checkpoint.require("bandwidth").utf8))
        } else {
            bandwidth = try Bandwidth.estimate(dataset: dataset)
        }
        model = VQVAE(config: config, seed: self.seed, bandwidth: bandwidth)
        var kept = 0
        if let checkpoint {
            kept = Int(checkpoint.metadata["kept_levels"] ?? "0") ?? 0
            model.lineage = try VQVAELineage.parse(checkpoint.metadata["extends"] ?? "", source: checkpoint.path)
        } else if let basePath {
            let base = try VQVAE.load(basePath)
            try base.requireDecoders(Array(0..<base.config.levels), source: basePath)
            try model.adoptLevels(of: base, source: basePath)
            kept = base.config.levels
        }
        trainedLevels = Array(kept..<config.levels)
        let t = config.train
        optimizer = Adam(parameters: model.namedParameters(levels: trainedLevels), learningRate: t.learningRate, beta1: t.beta1,
                         beta2: t.beta2, epsilon: t.epsilon, weightDecay: t.weightDecay, warmupSteps: t.warmupSteps)
        generator = RandomGenerator(seed: self.seed ^ 0x5EED_0F_C0DE)
        var loaderState = RandomGenerator(seed: self.seed ^ 0x10AD).stateWords
        if let checkpoint {
            try checkpoint.load(into: model.namedParameters() + model.stateTensors())
            step = checkpoint.step
            try optimizer.loadState(checkpoint.tensors, step: step)
            generator = try checkpoint.generator()
            loaderState = try checkpoint.generator("loader").stateWords
            let initialized = try checkpoint.require("codebooks_initialized").split(separator: ",").map { $0 == "1" }
            for (b, flag) in zip(model.bottlenecks, initialized) { b.initialized = flag }
            run.truncateMetrics(after: step)
        } else {
            try run.saveConfig(config.jsonString())
        }
        loader = AudioLoader(dataset: dataset, split: .train, batchSize: t.batchSize, generatorState: loaderState)
        // A fixed held-out batch: from the test split when there is one, with its own generator.
        let heldOut = AudioLoader(dataset: dataset, split: dataset.test.isEmpty ? .train : .test,
                                  batchSize: Swift.min(t.batchSize, 4), seed: self.seed ^ 0xE7A1, prefetch: 1)
        evalBatch = try heldOut.next()
    }

    /// Writes the checkpoint for the current step (atomically).
    public func saveCheckpoint() throws {
        let tensors = model.namedParameters().map { ($0.name, $0.tensor) } + model.stateTensors() + optimizer.stateTensors()
        try Checkpoint.write(run.checkpointPath, kind: "vqvae", config: config.jsonString(), step: step, tensors: tensors,
                             metadata: vqvaeMetadata(model, seed: seed).merging([
                                 "generator": generator.stateWords.map(String.init).joined(separator: ","),
                                 "loader": loader.generatorState.map(String.init).joined(separator: ","),
                                 "kept_levels": String(trainedLevels.first ?? config.levels),
                             ]) { $1 })
    }

    /// Trains until `totalSteps` (the step count includes steps of earlier runs), writing a
    /// checkpoint every `checkpoint_every` steps, at the end, and on Ctrl-C. A non-finite loss
    /// throws and leaves the last good checkpoint in place.
    public func train(totalSteps: Int, report: (VQVAEProgress) -> Void) throws -> TrainingOutcome {
        var loop = TrainingLoop(run: run, schedule: config.train, totalSteps: totalSteps, startStep: step)
        while step < totalSteps {
            let batch = try loader.next()
            optimizer.zeroGrad()
            let result = model.step(batch, training: true, levels: trainedLevels, generator: &generator)
            let loss = result.loss.item
            try loop.requireFinite(loss, "the loss", step: step + 1)
            result.loss.backward()
            let (lr, gradNorm) = try loop.update(optimizer, step: step + 1)
            step += 1
            let evalDB = loop.isEvalStep(step) ? evaluateHeldOut() : nil
            if loop.isLogStep(step, evaluated: evalDB != nil) {
                var (row, rate) = loop.logFields(step: step, loss: loss, lossName: "loss", learningRate: lr, gradientNorm: gradNorm)
                row["lmix"] = result.lmix.map { rounded($0) }
                row["spectral"] = result.spectral.map { rounded($0) }
                row["commit"] = result.commit.map { rounded($0) }
                row["used_codes"] = result.bottleneck.map(\.usedCodes)
                row["perplexity"] = result.bottleneck.map { rounded($0.perplexity) }
                row["live_codes"] = result.bottleneck.map(\.liveCodes)
                if let evalDB { row["eval_sc_db"] = evalDB.map { rounded(Float($0)) } }
                run.log(row)
                report(VQVAEProgress(step: step, totalSteps: totalSteps, loss: loss, lmix: result.lmix,
                                     spectral: result.spectral, commit: result.commit,
                                     usedCodes: result.bottleneck.map(\.usedCodes),
                                     perplexity: result.bottleneck.map(\.perplexity), stepsPerSecond: rate,
                                     evalConvergenceDB: evalDB))
            }
            if let stopped = try loop.afterStep(step, save: saveCheckpoint) { return stopped }
        }
        try saveCheckpoint()
        return .finished(step: step)
    }

    /// Spectral convergence (dB) of each level's reconstruction of the held-out batch.
    public func evaluateHeldOut() -> [Double] {
        var g = RandomGenerator(seed: 0)   // unused in evaluation: codebooks do not update
        let result = Tensor.withoutGrad { model.step(evalBatch, training: false, generator: &g) }
        return result.reconstructions.map { SpectralLoss.spectralConvergence($0, evalBatch).meanDecibels }
    }
}

extension VQVAE {
    /// Copies the weights and codebooks of every level of `base` into the same levels of this
    /// model, which must repeat their structure (it may add levels above them), and records
    /// `base` in the lineage.
    func adoptLevels(of base: VQVAE, source: String) throws {
        let (a, b) = (base.config, config)
        let k = a.levels
        guard k < b.levels else {
            throw ConfigError("\(source): has \(k) levels; the config must add levels to extend it (it has \(b.levels))")
        }
        guard a.sampleRate == b.sampleRate, a.embWidth == b.embWidth, a.lBins == b.lBins, a.width == b.width,
              a.depth == b.depth, a.mConv == b.mConv, a.dilationGrowthRate == b.dilationGrowthRate,
              a.dilationCycle == b.dilationCycle, Array(b.downsT.prefix(k)) == a.downsT,
              Array(b.stridesT.prefix(k)) == a.stridesT, Array(b.hvqvaeMultipliers.prefix(k)) == a.hvqvaeMultipliers else {
            throw ConfigError("\(source): its levels are not the config's first \(k) levels (sample rate, widths, depths, "
                + "codebook, downs_t, strides_t and hvqvae_multipliers must repeat them)")
        }
        let mine = Dictionary(uniqueKeysWithValues: inferenceTensors())
        for (name, tensor) in base.inferenceTensors() {
            guard let target = mine[name], target.shape == tensor.shape else {
                throw ConfigError("\(source): tensor \(name) \(tensor.shape) has no counterpart in the extended VQ-VAE")
            }
            target.data.update(from: tensor.data, count: tensor.count)
        }
        for l in 0..<k { bottlenecks[l].initialized = true }
        lineage = [VQVAELineage(digest: base.identity, levels: k)]
            + base.lineage.map { VQVAELineage(digest: $0.digest, levels: Swift.min($0.levels, k)) }
    }
}

/// Metadata every VQ-VAE checkpoint carries: what sampling and encoding need.
func vqvaeMetadata(_ model: VQVAE, seed: UInt64) -> [String: String] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]     // the same figures give the same bytes
    let bandwidth = String(decoding: try! encoder.encode(model.bandwidth), as: UTF8.self)
    return [
        "seed": String(seed),
        "sample_rate": String(model.config.sampleRate),
        "hops": model.hops.map(String.init).joined(separator: ","),
        "codebook_size": String(model.config.lBins),
        "bandwidth": bandwidth,
        "codebooks_initialized": model.bottlenecks.map { $0.initialized ? "1" : "0" }.joined(separator: ","),
        "digest": model.digest,
    ].merging(model.lineage.isEmpty ? [:] : ["extends": VQVAELineage.format(model.lineage)]) { $1 }
}

extension VQVAE {
    /// Identifies these weights: a digest of the parameters and codebooks.
    public var digest: String {
        Checkpoint.digest(inferenceTensors())
    }

    /// Loads a VQ-VAE for encoding and decoding from a `vqvae` checkpoint.
    public static func load(_ path: String) throws -> VQVAE {
        let checkpoint = try Checkpoint.read(path, kind: "vqvae")
        let config = try VQVAEConfig.decode(Data(try checkpoint.require("config").utf8), source: path)
        let bandwidth = try JSONDecoder().decode(Bandwidth.self, from: Data(try checkpoint.require("bandwidth").utf8))
        var decoderLevels = Array(0..<config.levels)
        if let listed = checkpoint.metadata["decoders"] {
            let levels = listed.split(separator: ",").compactMap { Int($0) }
            guard levels.count == listed.split(separator: ",").count, !levels.isEmpty,
                  levels.allSatisfy({ (0..<config.levels).contains($0) }) else {
                throw ConfigError("\(path): metadata 'decoders' is '\(listed)', not a list of levels below \(config.levels)")
            }
            decoderLevels = levels.sorted()
        }
        try checkpoint.requireRoom(forParameters: config.parameterCount(decoderLevels: decoderLevels))
        let model = VQVAE(config: config, seed: 0, bandwidth: bandwidth)
        model.decoderLevels = decoderLevels
        // EMA state (k_sum, k_elem) and optimizer moments are training state: ignored here.
        try checkpoint.load(into: model.inferenceTensors(), allowingExtraPrefixes: ["optim.", "bottlenecks."])
        for b in model.bottlenecks { b.initialized = true }
        model.loadedDigest = checkpoint.metadata["digest"]
        model.lineage = try VQVAELineage.parse(checkpoint.metadata["extends"] ?? "", source: path)
        return model
    }
}
