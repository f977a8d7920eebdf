import ArgumentParser
import Foundation
import JukeboxKit
import ModelKit

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a VQ-VAE, a prior, the melody VAE or the melody diffusion prior.",
        subcommands: [TrainVQVAE.self, TrainPrior.self, TrainMelodyVAE.self, TrainMelodyPrior.self])
}

struct TrainVQVAE: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vqvae",
        abstract: "Train the hierarchical VQ-VAE on audio files, or extend a trained one by levels.",
        discussion: """
            Trains on random crops of the audio under --data (folders are searched recursively; \
            a .txt file lists one path per line). Files are split 90/10 into train and held-out \
            by a hash of their path. The run folder --out gets checkpoint.safetensors (every \
            checkpoint_every steps, at the end and on Ctrl-C), metrics.jsonl and config.json.
            --resume continues a run exactly where its checkpoint left off; --steps is the total \
            step count, so `--steps 2000 --resume` trains until step 2000.

            Example:
              jukebox train vqvae --config configs/vqvae-small.json --data music/ --out runs/vqvae
            """)

    @Option(help: "VQ-VAE config JSON (see configs/).")
    var config: String

    @Option(parsing: .upToNextOption, help: "Audio folders, files or .txt lists of files.")
    var data: [String]

    @Option(help: "Run folder for checkpoints and metrics.")
    var out: String

    @Option(parsing: .unconditional, help: "Total training steps (default: the config's train.steps).")
    var steps: Int?

    @Option(parsing: .unconditional, help: "Crops per batch (default: the config's train.batch_size).")
    var batch: Int?

    @Option(parsing: .unconditional, help: "Crop length in samples, a multiple of the top hop (default: the config's).")
    var sampleLength: Int?

    @Option(parsing: .unconditional, help: "Seed for initialisation, crops and codebook restarts.")
    var seed: UInt64 = 0

    @Flag(help: "Continue the run in --out from its checkpoint.")
    var resume = false

    @Option(help: ArgumentHelp(
        "Extend this trained VQ-VAE checkpoint with the levels the config adds above it.",
        discussion: "Its levels are copied and kept as they are; only the new levels train. Codes of the kept levels, and priors over them, stay valid with the extended VQ-VAE (a bundle takes them as they are).",
        valueName: "checkpoint"))
    var extend: String?

    func validate() throws {
        if data.isEmpty { throw ValidationError("--data needs at least one folder or file") }
        if extend != nil && resume { throw ValidationError("--extend starts a run; to continue it, give --resume alone") }
        if let steps, steps < 0 { throw ValidationError("--steps must be ≥ 0, got \(steps)") }
        if let batch, batch < 1 { throw ValidationError("--batch must be at least 1, got \(batch)") }
    }

    func run() throws {
        try refuseOverwritingInputs(outputs: runFolderOutputs(out),
                                    inputs: [("--config", config)] + (extend.map { [("--extend", $0)] } ?? []) + data.map { ("--data", $0) })
        var cfg = try reportingErrors { try VQVAEConfig.load(path: config) }
        if let batch { cfg.train.batchSize = batch }
        if let sampleLength {
            cfg.train.sampleLength = sampleLength
            try reportingErrors { try cfg.validate() }
        }
        Interrupt.install(whenCut: "the step in progress did not end within seconds; stopped, keeping the last checkpoint in \(out) (continue with --resume)")
        let trainer = try reportingErrors {
            try namingTheBatch(batch, config: config) {
                try VQVAETrainer(config: cfg, data: data, outDirectory: out, seed: seed, resume: resume, extending: extend)
            }
        }
        let total = steps ?? trainer.config.train.steps
        let meter = ProgressMeter(total: total, done: trainer.step)
        printError("training vqvae: \(trainer.model.parameterCount) parameters, step \(trainer.step) → \(total), run folder \(out)")
        let outcome = try reportingErrors {
            try trainer.train(totalSteps: total) { p in
                var line = String(format: "step %d/%d  loss %.4f", p.step, p.totalSteps, p.loss)
                for (i, level) in trainer.trainedLevels.enumerated() {
                    line += String(format: "  L%d lmix %.3f spec %.3f codes %d ppl %.0f", level, p.lmix[i], p.spectral[i],
                                   p.usedCodes[i], p.perplexity[i])
                }
                line += String(format: "  %.2f steps/s", p.stepsPerSecond)
                if let db = p.evalConvergenceDB {
                    line += "  held-out SC " + db.map { String(format: "%.1f", $0) }.joined(separator: "/") + " dB"
                }
                meter.report(done: p.step, line, force: p.evalConvergenceDB != nil)
            }
        }
        try finishTraining(outcome, meter: meter, checkpoint: trainer.run.checkpointPath)
    }
}

struct TrainPrior: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prior",
        abstract: "Train a top-level prior or an upsampler on VQ-VAE codes.",
        discussion: """
            --data takes code files made by `jukebox encode` (the fast path: encode the dataset \
            once) or audio files, which are encoded with --vqvae once and cached in the run \
            folder. The level decides the kind: the top level trains an unconditional prior \
            with a timing signal, lower levels an upsampler conditioned on the level above. \
            Artist and genre labels come from --labels (JSON {"FILE": {"artist": ..., "genre": \
            ...}} or CSV path,artist,genre) or else from folder names (data/ARTIST/...). \
            Progress shows bits per token; metrics.jsonl also logs the held-out loss.

            Example:
              jukebox encode --vqvae runs/vqvae/checkpoint.safetensors music/*.ogg --out-dir codes/
              jukebox train prior --config configs/prior-small.json --vqvae runs/vqvae/checkpoint.safetensors \\
                  --level 2 --data codes/ --out runs/prior
            """)

    @Option(help: "Prior config JSON (see configs/).")
    var config: String

    @Option(help: "The VQ-VAE checkpoint whose codes the prior models.")
    var vqvae: String

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "VQ-VAE level to model (the top level is a prior, lower ones upsamplers).",
        discussion: "Default: the level the config states. A config that states a level describes that level's model, so another --level is refused; the upsampler configs state none and serve levels 1 and 0."))
    var level: Int?

    @Option(parsing: .upToNextOption, help: "Code files, audio files or folders of them.")
    var data: [String]

    @Option(help: "Run folder for checkpoints and metrics.")
    var out: String

    @Option(help: "Artist/genre labels: a JSON or CSV file.")
    var labels: String?

    @Option(parsing: .unconditional, help: "Total training steps (default: the config's train.steps).")
    var steps: Int?

    @Option(parsing: .unconditional, help: "Windows per batch (default: the config's train.batch_size).")
    var batch: Int?

    @Option(parsing: .unconditional, help: "Seed for initialisation and window sampling.")
    var seed: UInt64 = 0

    @Option(parsing: .unconditional, help: "New tokens per sampling window as a fraction of n_ctx, stored with the model (default: the config's; Jukebox uses 0.125 at level 0).")
    var hopFraction: Float?

    @Flag(help: "Continue the run in --out from its checkpoint.")
    var resume = false

    func validate() throws {
        if data.isEmpty { throw ValidationError("--data needs at least one code file, audio file or folder") }
        if let hopFraction, !(hopFraction > 0 && hopFraction <= 1) { throw ValidationError("--hop-fraction must be in (0, 1]") }
        if let level, level < 0 { throw ValidationError("--level must be ≥ 0, got \(level)") }
        if let steps, steps < 0 { throw ValidationError("--steps must be ≥ 0, got \(steps)") }
        if let batch, batch < 1 { throw ValidationError("--batch must be at least 1, got \(batch)") }
    }

    func run() throws {
        try refuseOverwritingInputs(outputs: runFolderOutputs(out),
                                    inputs: [("--config", config), ("--vqvae", vqvae)] + (labels.map { [("--labels", $0)] } ?? [])
                                        + data.map { ("--data", $0) })
        var cfg = try reportingErrors {
            do {
                return try PriorConfig.load(path: config, level: level)
            } catch LevelError.conflict(_, let stated, let requested) {
                throw ConfigError("--level \(requested) contradicts --config \(config), which states \"level\": \(stated) "
                                  + "(a config that states a level describes that level's model; leave --level out or use a config for level \(requested))")
            } catch LevelError.unstated {
                throw ConfigError("--config \(config) states no level: give --level")
            }
        }
        if let batch { cfg.train.batchSize = batch }
        if let hopFraction { cfg.sample.hopFraction = hopFraction }
        Interrupt.install(whenCut: "the step in progress did not end within seconds; stopped, keeping the last checkpoint in \(out) (continue with --resume)")
        let trainer = try reportingErrors {
            try namingTheBatch(batch, config: config) {
                try PriorTrainer(config: cfg, vqvaePath: vqvae, data: data, labels: labels, outDirectory: out, seed: seed,
                                 resume: resume) { printError($0) }
            }
        }
        let total = steps ?? trainer.config.train.steps
        let meter = ProgressMeter(total: total, done: trainer.step)
        printError("training \(trainer.prior.isUpsampler ? "upsampler" : "prior") for level \(cfg.level): \(trainer.prior.parameterCount) parameters, "
            + "\(trainer.dataset.train.count) training and \(trainer.dataset.test.count) held-out songs, step \(trainer.step) → \(total)")
        let outcome = try reportingErrors {
            try trainer.train(totalSteps: total) { p in
                var line = String(format: "step %d/%d  %.3f bits/token  %.2f steps/s  %.0f tokens/s", p.step, p.totalSteps,
                                  p.bitsPerToken, p.stepsPerSecond, p.tokensPerSecond)
                if let h = p.heldOutBitsPerToken { line += String(format: "  held-out %.3f bits/token", h) }
                meter.report(done: p.step, line, force: p.heldOutBitsPerToken != nil)
            }
        }
        try finishTraining(outcome, meter: meter, checkpoint: trainer.run.checkpointPath)
    }
}

/// Runs `body` (a trainer's set-up), saying which setting a run too large for memory came
/// from: `--batch` when given, else the config's batch size.
func namingTheBatch<T>(_ batch: Int?, config: String, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as MemoryError {
        let fits = e.estimate.largestBatch(fitting: e.available)
        let source = batch.map { "--batch \($0)" } ?? "--config \(config) (train.batch_size \(e.estimate.batch))"
        throw ConfigError("\(source): the run \(e); "
                          + (fits >= 1 ? "a batch of at most about \(fits) fits" : "even a batch of 1 does not fit: use a smaller config"))
    }
}

/// Ends a training command: the last progress line, where the checkpoint is, and exit status
/// 130 after Ctrl-C.
func finishTraining(_ outcome: TrainingOutcome, meter: ProgressMeter, checkpoint: String) throws {
    meter.finish()
    switch outcome {
    case .finished(let step): printError("finished at step \(step); checkpoint \(checkpoint)")
    case .interrupted(let step):
        printError("interrupted at step \(step); checkpoint written, continue with --resume")
        throw ExitCode(130)
    }
}
