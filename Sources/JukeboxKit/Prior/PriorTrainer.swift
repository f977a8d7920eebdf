// `jukebox train prior`: Adam over random windows of codes, with the same run-folder contract as
// the VQ-VAE trainer: atomic checkpoints (weights, Adam moments, window generator, step), exact
// resume, Ctrl-C, and a stop on a non-finite loss that keeps the last good checkpoint.

import Foundation
import TensorCore
import ModelKit
import AudioDSP

/// What the prior trainer reports after each logged step.
public struct PriorProgress {
    public var step: Int
    public var totalSteps: Int
    /// Training loss in bits per token.
    public var bitsPerToken: Float
    public var stepsPerSecond: Double
    public var tokensPerSecond: Double
    /// Held-out bits per token, on steps where it was measured.
    public var heldOutBitsPerToken: Float?
}

/// Trains a ``Prior`` on the codes of one level.
public final class PriorTrainer {
    public let prior: Prior
    public let run: RunDirectory
    public let config: PriorConfig
    public let dataset: CodeDataset
    public let vqvae: VQVAE
    public private(set) var step = 0
    let optimizer: Adam
    var generator: RandomGenerator
    let seed: UInt64
    let heldOut: [TokenBatch]

    /// Sets up a new run in `outDirectory`, or resumes the one there.
    public init(config startConfig: PriorConfig, vqvaePath: String, data: [String], labels: String?,
                outDirectory: String, seed: UInt64, resume: Bool, log: (String) -> Void) throws {
        // Before anything is allocated or written: a run that cannot fit is refused (label
        // tables counted at their largest, as the data is not read yet).
        let vqvae = try VQVAE.load(vqvaePath)
        try startConfig.trainingMemory(batch: startConfig.train.batchSize, levels: vqvae.config.levels).check()
        self.vqvae = vqvae
        run = try RunDirectory(outDirectory, resume: resume)
        let checkpoint = resume ? try Checkpoint.read(run.checkpointPath) : nil
        var config = startConfig
        var vocabulary: LabelVocabulary?
        if let checkpoint {
            guard ["prior", "upsampler"].contains(checkpoint.kind) else {
                throw ConfigError("\(checkpoint.path): is a \(checkpoint.kind) checkpoint, expected a prior or upsampler")
            }
            config = try PriorConfig.decode(Data(try checkpoint.require("config").utf8), source: checkpoint.path)
            try PriorConfig.checkResume(given: startConfig, saved: config, run: outDirectory)
            vocabulary = try JSONDecoder().decode(LabelVocabulary.self, from: Data(try checkpoint.require("labels").utf8))
        }
        self.config = config
        guard config.level < vqvae.config.levels else {
            throw ConfigError("--level \(config.level): the VQ-VAE has levels 0...\(vqvae.config.levels - 1)")
        }
        let upsampler = config.isUpsampler(levels: vqvae.config.levels)
        if upsampler && vqvae.hops[config.level + 1] / vqvae.hops[config.level] != 1 << config.conditioner.downT {
            throw ConfigError("conditioner.down_t \(config.conditioner.downT) does not match the VQ-VAE's hop ratio "
                + "\(vqvae.hops[config.level + 1] / vqvae.hops[config.level]) between levels \(config.level + 1) and \(config.level)")
        }
        if let checkpoint, checkpoint.metadata["vqvae"] != vqvae.identity {
            throw ConfigError("\(checkpoint.path): was trained on codes of VQ-VAE \(checkpoint.metadata["vqvae"] ?? "?"), not \(vqvaePath) (\(vqvae.identity))")
        }
        let table = try labels.map { try LabelTable.load($0) }
        dataset = try CodeDataset(sources: data, level: config.level, upsampler: upsampler, vqvae: vqvae,
                                  cacheDirectory: outDirectory + "/codes", labels: table, minimumCodes: config.nCtx, log: log)
        let vocab = vocabulary ?? dataset.vocabulary
        guard vocab.artists.count <= config.maxArtists && vocab.genres.count <= config.maxGenres else {
            throw ConfigError("the labels have \(vocab.artists.count) artists and \(vocab.genres.count) genres; the config allows \(config.maxArtists) and \(config.maxGenres)")
        }
        self.seed = checkpoint.flatMap { UInt64($0.metadata["seed"] ?? "") } ?? seed
        prior = Prior(config: config, levels: vqvae.config.levels, vocabulary: vocab, sampleRate: vqvae.config.sampleRate,
                      seed: self.seed)
        if !upsampler {
            let rate = Double(vqvae.config.sampleRate)
            let lengths = dataset.train.map { Double($0.samples) / rate }.sorted()
            prior.songSeconds = lengths.isEmpty ? nil : lengths[lengths.count / 2]
        }
        let t = config.train
        optimizer = Adam(parameters: prior.namedParameters(), learningRate: t.learningRate, beta1: t.beta1, beta2: t.beta2,
                         epsilon: t.epsilon, weightDecay: t.weightDecay, warmupSteps: t.warmupSteps)
        (step, generator) = try run.start(from: checkpoint, optimizer: optimizer, fresh: RandomGenerator(seed: self.seed ^ 0x70CE),
                                          config: config.jsonString())
        // Fixed held-out windows (from the training songs when no song is held out).
        var evalGenerator = RandomGenerator(seed: self.seed ^ 0xE7A1)
        let evalSongs = dataset.test.isEmpty ? dataset.train : dataset.test
        var batches: [TokenBatch] = []
        for _ in 0..<4 {
            batches.append(CodeDataset.sampleBatch(evalSongs, batch: Swift.min(4, t.batchSize), config: config,
                                                   hop: vqvae.hops[config.level], vocabulary: vocab, upsampler: upsampler,
                                                   generator: &evalGenerator))
        }
        heldOut = batches
    }

    var upsampler: Bool { prior.isUpsampler }

    /// Writes the checkpoint for the current step (atomically).
    public func saveCheckpoint() throws {
        let tensors = prior.namedParameters().map { ($0.name, $0.tensor) } + optimizer.stateTensors()
        var metadata = priorMetadata(prior, vqvae: vqvae)
        metadata["seed"] = String(seed)
        metadata["generator"] = generator.stateWords.map(String.init).joined(separator: ",")
        try Checkpoint.write(run.checkpointPath, kind: upsampler ? "upsampler" : "prior", config: config.jsonString(),
                             step: step, tensors: tensors, metadata: metadata)
    }

    /// Mean held-out loss in bits per token.
    public func heldOutLoss() -> Float {
        Tensor.withoutGrad {
            let losses = heldOut.map { b in prior.loss(b.tokens, batch: b.conditioning.artists.count, conditioning: b.conditioning).item }
            return losses.reduce(0, +) / Float(losses.count)
        }
    }

    /// Trains until `totalSteps`, checkpointing as configured, at the end and on Ctrl-C.
    public func train(totalSteps: Int, report: (PriorProgress) -> Void) throws -> TrainingOutcome {
        let t = config.train
        var loop = TrainingLoop(run: run, schedule: t, totalSteps: totalSteps, startStep: step)
        let hop = vqvae.hops[config.level]
        while step < totalSteps {
            let batch = CodeDataset.sampleBatch(dataset.train, batch: t.batchSize, config: config, hop: hop,
                                                vocabulary: prior.vocabulary, upsampler: upsampler, generator: &generator)
            optimizer.zeroGrad()
            let loss = prior.loss(batch.tokens, batch: t.batchSize, conditioning: batch.conditioning)
            let bits = loss.item
            try loop.requireFinite(bits, "the loss", step: step + 1)
            loss.backward()
            let (lr, gradNorm) = try loop.update(optimizer, step: step + 1)
            step += 1
            let evalBits = loop.isEvalStep(step) ? heldOutLoss() : nil
            if loop.isLogStep(step, evaluated: evalBits != nil) {
                var (row, rate) = loop.logFields(step: step, loss: bits, lossName: "bits_per_token", learningRate: lr,
                                                 gradientNorm: gradNorm)
                if let evalBits { row["heldout_bits_per_token"] = rounded(evalBits) }
                run.log(row)
                report(PriorProgress(step: step, totalSteps: totalSteps, bitsPerToken: bits, stepsPerSecond: rate,
                                     tokensPerSecond: rate * Double(t.batchSize * config.nCtx), heldOutBitsPerToken: evalBits))
            }
            if let stopped = try loop.afterStep(step, save: saveCheckpoint) { return stopped }
        }
        try saveCheckpoint()
        return .finished(step: step)
    }
}

/// Metadata every prior checkpoint carries: what sampling and bundling need.
func priorMetadata(_ prior: Prior, vqvae: VQVAE) -> [String: String] {
    [
        "level": String(prior.config.level),
        "levels": String(prior.levels),
        "labels": prior.vocabulary.json,
        "vqvae": vqvae.identity,
        "sample_rate": String(vqvae.config.sampleRate),
        "hops": vqvae.hops.map(String.init).joined(separator: ","),
        "codebook_size": String(prior.config.bins),
    ].merging(prior.songSeconds.map { ["song_seconds": String(format: "%.1f", $0)] } ?? [:]) { $1 }
}

extension Prior {
    /// Loads a prior or upsampler checkpoint; returns the model and the VQ-VAE digest it was
    /// trained with.
    public static func load(_ path: String) throws -> (prior: Prior, vqvaeDigest: String) {
        let checkpoint = try Checkpoint.read(path)
        guard ["prior", "upsampler"].contains(checkpoint.kind) else {
            throw ConfigError("\(path): is a \(checkpoint.kind) checkpoint, expected a prior or upsampler")
        }
        let config = try PriorConfig.decode(Data(try checkpoint.require("config").utf8), source: path)
        let vocabulary = try JSONDecoder().decode(LabelVocabulary.self, from: Data(try checkpoint.require("labels").utf8))
        guard let levels = Int(try checkpoint.require("levels")), let rate = Int(try checkpoint.require("sample_rate")) else {
            throw ConfigError("\(path): metadata 'levels' or 'sample_rate' is not a number")
        }
        guard (1...16).contains(levels), config.level < levels, (1...CodeFile.maxSampleRate).contains(rate) else {
            throw ConfigError("\(path): metadata 'levels' \(levels) (1...16, above the prior's level \(config.level)) or 'sample_rate' \(rate) is out of range")
        }
        try checkpoint.requireRoom(forParameters: config.parameterCount(levels: levels, artists: vocabulary.artists.count,
                                                                         genres: vocabulary.genres.count))
        let prior = Prior(config: config, levels: levels, vocabulary: vocabulary, sampleRate: rate, seed: 0)
        try checkpoint.load(into: prior.namedParameters().map { ($0.name, $0.tensor) })
        if let text = checkpoint.metadata["song_seconds"] {
            guard let seconds = Double(text), seconds > 0, seconds.isFinite else {
                throw ConfigError("\(path): metadata 'song_seconds' '\(text)' is not a positive number")
            }
            prior.songSeconds = seconds
        }
        return (prior, try checkpoint.require("vqvae"))
    }
}
