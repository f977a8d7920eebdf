import ArgumentParser
import Foundation
import ModelKit
import MelodyKit
import MIDI

struct TrainMelodyVAE: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "melody-vae",
        abstract: "Train the 2-bar melody VAE (MusicVAE) on MIDI files.",
        discussion: """
            Trains on random 2-bar windows (1-bar hop) of the melodies in the MIDI files under \
            --data, each transposed by up to ±train.transpose semitones. A folder holding train/ \
            and validation/ (what `make melody-data` writes under data/melody) is read as that \
            split; other sources are split 90/10 by file name. Files from abc2midi are aligned on \
            their accented downbeats. The run folder --out gets checkpoint.safetensors, \
            metrics.jsonl (loss, reconstruction, KL, β, scheduled-sampling probability; held-out \
            accuracy of argmax decoding from μ, KL and active dimensions every eval_every steps) \
            and config.json; --resume continues exactly.

            Example:
              make melody-data
              jukebox train melody-vae --config configs/melody-vae-small.json --data data/melody --out runs/melody-vae
            """)

    @Option(help: "Melody VAE config JSON (see configs/melody-vae-*.json).")
    var config: String

    @Option(parsing: .upToNextOption, help: "MIDI folders or files.")
    var data: [String]

    @Option(help: "Run folder for checkpoints and metrics.")
    var out: String

    @Option(parsing: .unconditional, help: "Total training steps (default: the config's train.steps).")
    var steps: Int?

    @Option(parsing: .unconditional, help: "Windows per batch (default: the config's train.batch_size).")
    var batch: Int?

    @Option(parsing: .unconditional, help: "Seed for initialisation, batches, ε and scheduled sampling.")
    var seed: UInt64 = 0

    @Flag(help: "Continue the run in --out from its checkpoint.")
    var resume = false

    func validate() throws {
        if data.isEmpty { throw ValidationError("--data needs at least one folder or MIDI file") }
        if let steps, steps < 0 { throw ValidationError("--steps must be ≥ 0, got \(steps)") }
        if let batch, !(1...(1 << 20)).contains(batch) { throw ValidationError("--batch must be in 1...\(1 << 20), got \(batch)") }
    }

    func run() throws {
        try refuseOverwritingInputs(outputs: runFolderOutputs(out), inputs: [("--config", config)] + data.map { ("--data", $0) })
        var cfg = try reportingErrors { try MelodyVAEConfig.load(path: config) }
        if let batch { cfg.train.batchSize = batch }
        if let steps { cfg.train.steps = steps }
        Interrupt.install(whenCut: "the step in progress did not end within seconds; stopped, keeping the last checkpoint in \(out) (continue with --resume)")
        let trainer = try reportingErrors {
            try namingTheBatch(batch, config: config) {
                try MelodyVAETrainer(config: cfg, data: data, outDirectory: out, seed: seed, resume: resume) { printError($0) }
            }
        }
        let total = steps ?? trainer.config.train.steps
        let meter = ProgressMeter(total: total, done: trainer.step)
        printError("training melody-vae: \(trainer.model.parameterCount) parameters, \(trainer.dataset.train.count) training and "
                   + "\(trainer.dataset.heldOut.count) held-out windows from \(trainer.dataset.files) files, step \(trainer.step) → \(total)")
        let outcome = try reportingErrors {
            try trainer.train(totalSteps: total) { p in
                var line = String(format: "step %d/%d  recon %.2f nats  KL %.2f bits  acc %.3f  β %.3f  sampled %.2f  %.2f steps/s",
                                  p.step, p.totalSteps, p.reconstruction, p.klBits, p.accuracy, p.beta, p.samplingProbability,
                                  p.stepsPerSecond)
                if let h = p.heldOut {
                    line += String(format: "  held-out acc %.3f KL %.1f bits, %d dims σ<1", h.accuracy, h.klBits, h.activeDimensions)
                }
                meter.report(done: p.step, line, force: p.heldOut != nil)
            }
        }
        try finishTraining(outcome, meter: meter, checkpoint: trainer.run.checkpointPath)
    }
}

struct MelodyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "melody",
        abstract: "Melodies and their latents: encode MIDI with a melody VAE, decode latents to MIDI, count data.",
        subcommands: [MelodyEncode.self, MelodyDecode.self, MelodyStats.self])
}

struct MelodyEncode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Encode the 2-bar chunks of MIDI melodies into VAE latents.",
        discussion: """
            Every melody of every input (one per instrument) is cut into non-overlapping 2-bar \
            chunks from its first bar; each chunk gets the VAE's sampled z, μ and σ. A chunk \
            without a note is stored as zeros. The file records the VAE's digest.

            Example:
              jukebox melody encode --vae runs/melody-vae/checkpoint.safetensors tune.mid -o tune.latents.safetensors
            """)

    @Option(help: "Melody VAE checkpoint.")
    var vae: String

    @Argument(help: "MIDI files.")
    var inputs: [String]

    @Option(name: .shortAndLong, help: "Latent file to write (*.latents.safetensors).")
    var output: String

    @Option(parsing: .unconditional, help: "Seed for the sampled z.")
    var seed: UInt64 = 0

    func run() throws {
        try refuseOverwritingInputs(outputs: [("-o", output)], inputs: [("--vae", vae)] + inputs.map { ("input", $0) })
        try reportingErrors {
            try OutputFolder.prepare(URL(fileURLWithPath: output).deletingLastPathComponent().path)
            let model = try MelodyVAE.load(vae)
            var melodies: [Melody] = [], sources: [String] = []
            for input in inputs {
                let found = try MelodyDataset.melodies(of: input)
                if found.isEmpty { printError("\(input): no melody in 16-step bars") }
                for (i, melody) in found.enumerated() {
                    melodies.append(melody)
                    sources.append("\(input)#\(i)")
                }
            }
            guard !melodies.isEmpty else { throw ConfigError("no melody to encode in \(inputs.joined(separator: ", "))") }
            let latents = MelodyLatents.encode(melodies, sources: sources, model: model, seed: seed)
            try latents.write(output)
            printError("wrote \(output): \(latents.count) chunks of \(melodies.count) melod\(melodies.count == 1 ? "y" : "ies")")
        }
    }
}

struct MelodyDecode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Decode VAE latents into MIDI (argmax decoding).",
        discussion: """
            Each melody of the latent file becomes a MIDI file at 120 quarters per minute: -o \
            itself for a file of one melody, OUT-1.mid, OUT-2.mid, … for several.

            Example:
              jukebox melody decode --vae runs/melody-vae/checkpoint.safetensors tune.latents.safetensors -o tune-decoded.mid
            """)

    @Option(help: "Melody VAE checkpoint.")
    var vae: String

    @Argument(help: "Latent file.")
    var latents: String

    @Option(name: .shortAndLong, help: "MIDI file to write.")
    var output: String

    @Flag(help: "Decode μ instead of the sampled z.")
    var mean = false

    @Flag(help: "Decode with a VAE other than the one that made the latents.")
    var allowOtherVAE = false

    func run() throws {
        try refuseOverwritingInputs(outputs: [("-o", output)], inputs: [("--vae", vae), ("input", latents)])
        try reportingErrors {
            try OutputFolder.prepare(URL(fileURLWithPath: output).deletingLastPathComponent().path)
            let model = try MelodyVAE.load(vae)
            let file = try MelodyLatents.read(latents)
            if file.vaeDigest != model.digest && !allowOtherVAE {
                throw ConfigError("\(latents): made by VAE \(file.vaeDigest), not \(vae) (\(model.digest)); pass --allow-other-vae to decode anyway")
            }
            let melodies = try file.decode(with: model, useMean: mean)
            let stem = (output as NSString).deletingPathExtension
            for (i, melody) in melodies.enumerated() {
                let path = melodies.count == 1 ? output : "\(stem)-\(i + 1).mid"
                try melody.midi().write(to: path)
                printError("wrote \(path): \(melody.events.count / Melody.stepsPerBar) bars")
            }
        }
    }
}

struct MelodyStats: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Count the files, melodies and 2-bar chunks of a melody data folder.",
        discussion: """
            For a folder with train/, validation/ and test/ (`make melody-data`), counts each \
            split; otherwise the folder as a whole. Chunks are non-overlapping 2-bar chunks with \
            at least one note; windows are the training slices (2 bars at a 1-bar hop).

            Example:
              jukebox melody stats data/melody
            """)

    @Argument(help: "Data folder.")
    var folder: String

    func run() throws {
        try reportingErrors {
            let splits = ["train", "validation", "test"].filter { FileManager.default.fileExists(atPath: folder + "/" + $0) }
            for split in splits.isEmpty ? [""] : splits {
                let path = split.isEmpty ? folder : folder + "/" + split
                let counts = try MelodyCounts(folder: path)
                print("\(split.isEmpty ? path : split): \(counts.files) files, \(counts.melodies) melodies, \(counts.chunks) 2-bar chunks, "
                      + "\(counts.windows) training windows\(counts.skipped > 0 ? ", \(counts.skipped) files skipped (no clear downbeat)" : "")")
            }
        }
    }
}

struct EvalMelodyVAE: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "melody-vae",
        abstract: "Reconstruction accuracy, KL and active dimensions of a melody VAE.",
        discussion: """
            Encodes the non-overlapping 2-bar chunks (with a note) of the MIDI files given, \
            decodes μ by argmax without teacher forcing, and reports the share of steps decoded \
            right (all, note-on targets, the rest), the mean KL per chunk in bits, and how many \
            latent dimensions have a mean σ below 1 (those the diffusion model keeps).

            Example:
              jukebox eval melody-vae --vae runs/melody-vae/checkpoint.safetensors data/melody/test --json
            """)

    @Option(help: "Melody VAE checkpoint.")
    var vae: String

    @Argument(help: "MIDI files or folders.")
    var data: [String]

    @Flag(help: "Print the result as one JSON object on stdout.")
    var json = false

    func run() throws {
        try reportingErrors {
            let model = try MelodyVAE.load(vae)
            var windows: [Melody] = []
            for source in data {
                for file in try MelodyDataset.midiFiles(in: source) {
                    guard let found = try? MelodyDataset.melodies(of: file) else { continue }
                    windows += found.flatMap { $0.chunks(steps: model.config.steps) }.filter { !$0.isSilent }
                }
            }
            guard !windows.isEmpty else { throw ConfigError("\(data.joined(separator: ", ")): no 2-bar chunk with a note") }
            let result = MelodyVAEEvaluator(model: model).evaluate(windows)
            if json {
                print(try jsonLine(result))
            } else {
                print(String(format: "%d chunks: accuracy %.4f (note-on %.4f, other %.4f), KL %.2f bits per chunk, %d of %d dimensions with mean σ < 1",
                             result.windows, result.accuracy, result.noteOnAccuracy, result.otherAccuracy, result.klBits,
                             result.activeDimensions, model.config.zSize))
            }
        }
    }
}

struct TrainMelodyPrior: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "melody-prior",
        abstract: "Train the latent diffusion prior over sequences of melody-VAE latents.",
        discussion: """
            Encodes the melodies under --data once with the VAE (sampled z per 2-bar chunk), keeps \
            the latent dimensions whose mean σ is below 1, scales them to [−1, 1] with the \
            training split's range (stored with the model), and trains the denoiser on windows \
            of `length` consecutive chunks with notes. metrics.jsonl logs the ε-MSE and, every \
            eval_every steps, the held-out one; --resume continues exactly.

            Example:
              jukebox train melody-prior --kind diffusion --config configs/melody-diffusion-small.json \\
                  --vae runs/melody-vae/checkpoint.safetensors --data data/melody --out runs/melody-diffusion
            """)

    @Option(help: "Model kind: diffusion (the denoising diffusion model of Mittal et al.).")
    var kind = "diffusion"

    @Option(help: "Config JSON (see configs/melody-diffusion-*.json).")
    var config: String

    @Option(help: "Melody VAE checkpoint whose latents the prior models.")
    var vae: String

    @Option(parsing: .upToNextOption, help: "MIDI folders or files.")
    var data: [String]

    @Option(help: "Run folder for checkpoints and metrics.")
    var out: String

    @Option(parsing: .unconditional, help: "Total training steps (default: the config's train.steps).")
    var steps: Int?

    @Option(parsing: .unconditional, help: "Sequences per batch (default: the config's train.batch_size).")
    var batch: Int?

    @Option(parsing: .unconditional, help: "Seed for initialisation, batches and noise.")
    var seed: UInt64 = 0

    @Flag(help: "Continue the run in --out from its checkpoint.")
    var resume = false

    func validate() throws {
        guard kind == "diffusion" else { throw ValidationError("--kind '\(kind)' is not one of: diffusion") }
        if data.isEmpty { throw ValidationError("--data needs at least one folder or MIDI file") }
        if let steps, steps < 0 { throw ValidationError("--steps must be ≥ 0, got \(steps)") }
        if let batch, !(1...(1 << 20)).contains(batch) { throw ValidationError("--batch must be in 1...\(1 << 20), got \(batch)") }
    }

    func run() throws {
        try refuseOverwritingInputs(outputs: runFolderOutputs(out),
                                    inputs: [("--config", config), ("--vae", vae)] + data.map { ("--data", $0) })
        var cfg = try reportingErrors { try MelodyDiffusionConfig.load(path: config) }
        if let batch { cfg.train.batchSize = batch }
        Interrupt.install(whenCut: "the step in progress did not end within seconds; stopped, keeping the last checkpoint in \(out) (continue with --resume)")
        let trainer = try reportingErrors {
            try MelodyDiffusionTrainer(config: cfg, vaePath: vae, data: data, outDirectory: out, seed: seed, resume: resume) { printError($0) }
        }
        let total = steps ?? trainer.config.train.steps
        let meter = ProgressMeter(total: total, done: trainer.step)
        printError("training melody-prior (diffusion): \(trainer.model.parameterCount) parameters, \(trainer.config.latentDims) of "
                   + "\(trainer.transform.zSize) latent dimensions, \(trainer.train.count) training and \(trainer.heldOut.count) held-out "
                   + "sequences of \(trainer.config.length), step \(trainer.step) → \(total)")
        let outcome = try reportingErrors {
            try trainer.train(totalSteps: total) { p in
                var line = String(format: "step %d/%d  loss %.4f  %.2f steps/s", p.step, p.totalSteps, p.loss, p.stepsPerSecond)
                if let h = p.heldOutLoss { line += String(format: "  held-out %.4f", h) }
                meter.report(done: p.step, line, force: p.heldOutLoss != nil)
            }
        }
        try finishTraining(outcome, meter: meter, checkpoint: trainer.run.checkpointPath)
    }
}
