import ArgumentParser
import Foundation
import JukeboxKit

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a VQ-VAE or a prior.",
        subcommands: [TrainVQVAE.self])
}

struct TrainVQVAE: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vqvae",
        abstract: "Train the three-level VQ-VAE on audio files.",
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

    @Option(help: "Total training steps (default: the config's train.steps).")
    var steps: Int?

    @Option(help: "Crops per batch (default: the config's train.batch_size).")
    var batch: Int?

    @Option(help: "Crop length in samples, a multiple of the top hop (default: the config's).")
    var sampleLength: Int?

    @Option(help: "Seed for initialisation, crops and codebook restarts.")
    var seed: UInt64 = 0

    @Flag(help: "Continue the run in --out from its checkpoint.")
    var resume = false

    func validate() throws {
        if data.isEmpty { throw ValidationError("--data needs at least one folder or file") }
        if let steps, steps < 0 { throw ValidationError("--steps must be ≥ 0, got \(steps)") }
        if let batch, batch < 1 { throw ValidationError("--batch must be at least 1, got \(batch)") }
    }

    func run() throws {
        var cfg = try VQVAEConfig.load(path: config)
        if let batch { cfg.train.batchSize = batch }
        if let sampleLength {
            cfg.train.sampleLength = sampleLength
            try cfg.validate()
        }
        Interrupt.install()
        let trainer = try reportingErrors { try VQVAETrainer(config: cfg, data: data, outDirectory: out, seed: seed, resume: resume) }
        let total = steps ?? trainer.config.train.steps
        let meter = ProgressMeter(total: total, done: trainer.step)
        printError("training vqvae: \(trainer.model.parameterCount) parameters, step \(trainer.step) → \(total), run folder \(out)")
        let outcome = try reportingErrors {
            try trainer.train(totalSteps: total) { p in
                var line = String(format: "step %d/%d  loss %.4f", p.step, p.totalSteps, p.loss)
                for l in 0..<p.lmix.count {
                    line += String(format: "  L%d lmix %.3f spec %.3f codes %d ppl %.0f", l, p.lmix[l], p.spectral[l],
                                   p.usedCodes[l], p.perplexity[l])
                }
                line += String(format: "  %.2f steps/s", p.stepsPerSecond)
                if let db = p.evalConvergenceDB {
                    line += "  held-out SC " + db.map { String(format: "%.1f", $0) }.joined(separator: "/") + " dB"
                }
                meter.report(done: p.step, line, force: p.evalConvergenceDB != nil)
            }
        }
        meter.finish()
        switch outcome {
        case .finished(let step): printError("finished at step \(step); checkpoint \(trainer.run.checkpointPath)")
        case .interrupted(let step):
            printError("interrupted at step \(step); checkpoint written, continue with --resume")
            throw ExitCode(130)
        }
    }
}
