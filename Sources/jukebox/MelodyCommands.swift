import ArgumentParser
import Foundation
import ModelKit
import MelodyKit
import MIDI
import MIDIRender
import TensorCore

/// The run flags both melody trainers take.
struct MelodyRunFlags: ParsableArguments {
    @Option(parsing: .upToNextOption, help: "MIDI folders or files.")
    var data: [String]

    @Option(help: "Run folder for checkpoints and metrics.")
    var out: String

    @Option(parsing: .unconditional, help: "Total training steps (default: the config's train.steps).")
    var steps: Int?

    @Option(parsing: .unconditional, help: "Windows (VAE) or sequences (prior) per batch (default: the config's train.batch_size).")
    var batch: Int?

    @Option(parsing: .unconditional, help: "Seed for initialisation, batches and noise (ε, scheduled sampling).")
    var seed: UInt64 = 0

    @Flag(help: "Continue the run in --out from its checkpoint.")
    var resume = false

    func validate() throws {
        if data.isEmpty { throw ValidationError("--data needs at least one folder or MIDI file") }
        if let steps, steps < 0 { throw ValidationError("--steps must be ≥ 0, got \(steps)") }
        if let batch, !(1...(1 << 20)).contains(batch) { throw ValidationError("--batch must be in 1...\(1 << 20), got \(batch)") }
    }
}

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

    @OptionGroup var flags: MelodyRunFlags

    func run() throws {
        let (data, out, steps, batch, seed, resume) = (flags.data, flags.out, flags.steps, flags.batch, flags.seed, flags.resume)
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
        subcommands: [MelodyEncode.self, MelodyDecode.self, MelodyStats.self, MelodyBundle.self, MelodySample.self, MelodyInfill.self, MelodyRender.self])
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
                    windows += try MelodyDataset.melodiesSkippingUnclearDownbeats(of: file)
                        .flatMap { $0.chunks(steps: model.config.steps) }.filter { !$0.isSilent }
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
        abstract: "Train a prior over sequences of melody-VAE latents: latent diffusion, or the autoregressive MDN baseline.",
        discussion: """
            Encodes the melodies under --data once with the VAE (sampled z per 2-bar chunk), keeps \
            the latent dimensions whose mean σ is below 1, scales them to [−1, 1] with the \
            training split's range (stored with the model), and trains the prior on windows of \
            `length` consecutive chunks with notes. --kind diffusion trains the denoiser \
            (loss: ε-MSE); --kind mdn the paper's baseline, a causal transformer with a mixture of \
            Gaussians per latent (loss: negative log-likelihood in nats per latent). \
            metrics.jsonl logs the loss and, every eval_every steps, the held-out one; --resume \
            continues exactly.

            Examples:
              jukebox train melody-prior --kind diffusion --config configs/melody-diffusion-small.json \\
                  --vae runs/melody-vae/checkpoint.safetensors --data data/melody --out runs/melody-diffusion
              jukebox train melody-prior --kind mdn --config configs/melody-mdn-small.json \\
                  --vae runs/melody-vae/checkpoint.safetensors --data data/melody --out runs/melody-mdn
            """)

    @Option(help: "Model kind: diffusion (the latent diffusion model of Mittal et al.) or mdn (their autoregressive TransformerMDN baseline).")
    var kind = "diffusion"

    @Option(help: "Config JSON (see configs/melody-diffusion-*.json, configs/melody-mdn-*.json).")
    var config: String

    @Option(help: "Melody VAE checkpoint whose latents the prior models.")
    var vae: String

    @OptionGroup var flags: MelodyRunFlags

    func validate() throws {
        guard ["diffusion", "mdn"].contains(kind) else { throw ValidationError("--kind '\(kind)' is not one of: diffusion, mdn") }
    }

    func run() throws {
        switch kind {
        case "mdn": try train(TransformerMDN.self, loss: "NLL in nats per latent")
        default: try train(Denoiser.self, loss: "ε-MSE")
        }
    }

    private func train<Model: LatentPrior>(_: Model.Type, loss: String) throws {
        let (data, out, steps, batch, seed, resume) = (flags.data, flags.out, flags.steps, flags.batch, flags.seed, flags.resume)
        try refuseOverwritingInputs(outputs: runFolderOutputs(out),
                                    inputs: [("--config", config), ("--vae", vae)] + data.map { ("--data", $0) })
        var cfg = try reportingErrors {
            do {
                return try Model.Config.load(path: config)
            } catch let error as ConfigError where error.message.contains("unknown key") {
                throw ConfigError("\(error.message); is it a config for --kind \(kind)?")
            }
        }
        if let batch { cfg.train.batchSize = batch }
        Interrupt.install(whenCut: "the step in progress did not end within seconds; stopped, keeping the last checkpoint in \(out) (continue with --resume)")
        let trainer = try reportingErrors {
            try MelodyPriorTrainer<Model>(config: cfg, vaePath: vae, data: data, outDirectory: out, seed: seed, resume: resume) { printError($0) }
        }
        let total = steps ?? trainer.config.train.steps
        let meter = ProgressMeter(total: total, done: trainer.step)
        printError("training melody-prior (\(kind), loss: \(loss)): \(trainer.model.parameterCount) parameters, \(trainer.config.latentDims) of "
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

struct MelodyBundle: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bundle",
        abstract: "Assemble a melody model folder from a VAE and a prior checkpoint (diffusion or MDN).",
        discussion: """
            Checks that the prior was trained on this VAE's latents, then writes vae.safetensors, \
            the prior (diffusion.safetensors or mdn.safetensors, by the checkpoint's kind, with its \
            latent transform) and melody.json into -o, weights only (F16 with --half).

            Example:
              jukebox melody bundle --vae runs/melody-vae/checkpoint.safetensors \\
                  --prior runs/melody-diffusion/checkpoint.safetensors --half -o models/mymelody
            """)

    @Option(help: "Melody VAE checkpoint.")
    var vae: String

    @Option(help: "Prior checkpoint (from train melody-prior, --kind diffusion or mdn).")
    var prior: String

    @Option(name: .shortAndLong, help: "Folder to write.")
    var output: String

    @Flag(help: "Store the weights as 16-bit floats.")
    var half = false

    func run() throws {
        try refuseOverwritingInputs(outputs: ["vae.safetensors", "diffusion.safetensors", "mdn.safetensors", MelodyModel.manifestName].map { ("-o", output + "/" + $0) },
                                    inputs: [("--vae", vae), ("--prior", prior)])
        try reportingErrors {
            try MelodyModel.assemble(vae: vae, prior: prior, into: output, storeAs: half ? .f16 : .f32)
            printError("wrote melody model \(output)")
        }
    }
}

/// `--model`, mapping a request that does not fit the model to its flag.
/// The melody model shipped in the checkout, used when a command is given no --model.
let defaultMelodyModelPath = "models/melody"
let melodyModelHelp = ArgumentHelp("Melody model folder (default: \(defaultMelodyModelPath) in the current folder or in the checkout jukebox was built in).")

/// The model folder at `path`, or the shipped one without it.
func melodyModel(_ path: String?) throws -> MelodyModel {
    try reportingErrors {
        if let path { return try MelodyModel(path: path) }
        guard let shipped = shippedModel(defaultMelodyModelPath, manifest: MelodyModel.manifestName) else {
            throw ConfigError("no --model given and \(defaultMelodyModelPath) does not exist; train one (README: melodies) or pass --model DIR")
        }
        return try MelodyModel(path: shipped)
    }
}

func mapMelodyErrors<T>(_ body: () throws -> T) throws -> T {
    try reportingErrors {
        do {
            return try body()
        } catch let MelodyModelError.bars(text) {
            throw ConfigError("--bars \(text)")
        }
    }
}

/// Refuses the diffusion sampling flags for a model whose prior is the MDN, naming the first
/// one given.
func refuseDiffusionFlags(_ m: MelodyModel, model: String, given flags: [(String, Bool)]) throws {
    guard case .mdn = m.prior, let flag = flags.first(where: { $0.1 })?.0 else { return }
    try reportingErrors {
        throw ConfigError("\(flag) is for diffusion models; the prior of \(model) is the autoregressive TransformerMDN, "
                          + "which draws one latent at a time (leave out \(flags.map(\.0).joined(separator: ", ")))")
    }
}

struct MelodySample: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Generate melodies with a melody model (its prior samples latents, the VAE decodes them).",
        discussion: """
            Writes COUNT MIDI files, melody-1.mid …, into --out-dir. With a diffusion prior, \
            ancestral DDPM over all 1000 noise levels is the reference; --sampler ddim --steps S \
            is the fast path (--eta 0 deterministic, 1 about as noisy as DDPM). With an MDN prior \
            the latents are drawn one at a time, and the sampler flags do not apply. The same \
            seed gives the same files.

            Example:
              jukebox melody sample --model models/mymelody --count 8 --bars 16 --sampler ddim --steps 50 --out-dir out/melodies
            """)

    @Option(help: melodyModelHelp)
    var model: String?

    @Option(parsing: .unconditional, help: "Melodies to write.")
    var count = 4

    @Option(parsing: .unconditional, help: "Bars per melody (even, at most twice the model's sequence length).")
    var bars = 16

    @Option(help: "Diffusion models: ddpm (ancestral, every step; the default) or ddim.")
    var sampler: String?

    @Option(parsing: .unconditional, help: "DDIM steps (default 50).")
    var steps: Int?

    @Option(parsing: .unconditional, help: "DDIM noise: 0 deterministic (the default) … 1.")
    var eta: Double?

    @Option(parsing: .unconditional, help: "Seed.")
    var seed: UInt64 = 0

    @Option(help: "Folder for the MIDI files.")
    var outDir: String

    func validate() throws {
        if let sampler, !["ddpm", "ddim"].contains(sampler) { throw ValidationError("--sampler '\(sampler)' is not one of: ddpm, ddim") }
        guard (1...10_000).contains(count) else { throw ValidationError("--count must be in 1...10000, got \(count)") }
        if let steps, !(1...100_000).contains(steps) { throw ValidationError("--steps must be in 1...100000, got \(steps)") }
        if steps != nil && sampler != "ddim" { throw ValidationError("--steps is for --sampler ddim; ddpm runs every step") }
        if let eta, !(eta >= 0 && eta <= 1) { throw ValidationError("--eta must be in [0, 1], got \(eta)") }
    }

    func run() throws {
        let m = try melodyModel(model)
        try refuseDiffusionFlags(m, model: m.path, given: [("--sampler", sampler != nil), ("--steps", steps != nil), ("--eta", eta != nil)])
        try reportingErrors { try OutputFolder.prepare(outDir) }
        let started = Date()
        let ddimSteps = sampler == "ddim" ? (steps ?? 50) : nil
        let (meter, unit): (ProgressMeter, String)
        switch m.prior {
        case .diffusion(let denoiser):
            let total = denoiser.config.diffusionSteps
            (meter, unit) = (ProgressMeter(total: ddimSteps.map { Swift.min($0, total) } ?? total), "denoising step")
        case .mdn:
            (meter, unit) = (ProgressMeter(total: Swift.max(1, bars / 2)), "latent")
        }
        let melodies = try mapMelodyErrors {
            try m.sample(count: count, bars: bars, steps: ddimSteps, eta: eta ?? 0, seed: seed) { done, total in
                meter.report(done: done, "\(unit) \(done)/\(total)")
            }
        }
        meter.finish()
        try reportingErrors {
            for (i, melody) in melodies.enumerated() { try melody.midi().write(to: outDir + "/melody-\(i + 1).mid") }
        }
        printError(String(format: "wrote %d melodies of %d bars to %@ in %.1f s", melodies.count, bars, outDir, Date().timeIntervalSince(started)))
    }
}

struct MelodyInfill: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infill",
        abstract: "Regenerate some bars of melodies and keep the rest.",
        discussion: """
            Encodes each melody's 2-bar chunks, generates the chunks of --bars with the diffusion \
            prior while the others are re-noised and pasted back at every step (the paper's \
            infilling), and writes the melody's first bars (as many as the model's sequence holds) \
            with the kept bars as they were. A model with an MDN prior, which reads left to \
            right, only continues: --bars must run to the end of the model's sequence (e.g. 9-16 \
            of 16), and the bars before them are kept. --method interpolate is the paper's \
            baseline instead: the generated chunks' latents lie on the straight line between the \
            kept chunks either side.

            One input writes -o FILE. Several inputs (files or folders of MIDI) are infilled in \
            one batch and written to --out-dir under their own names; melodies too short for the \
            model's sequence are skipped and counted.

            Examples:
              jukebox melody infill --model models/melody tune.mid --bars 5-12 -o tune-infilled.mid
              jukebox melody infill --model models/melody data/melody/test --bars 5-12 --sampler ddim --out-dir out/infilled
            """)

    @Option(help: melodyModelHelp)
    var model: String?

    @Argument(help: "MIDI files or folders of them (the first melody of each file).")
    var inputs: [String]

    @Option(help: "Bars to generate, 1-based and inclusive, e.g. 5-12 (whole 2-bar chunks).")
    var bars: String

    @Option(help: "prior (the model generates the bars) or interpolate (the latent interpolation baseline).")
    var method = "prior"

    @Option(help: "Diffusion models: ddpm (the default) or ddim.")
    var sampler: String?

    @Option(parsing: .unconditional, help: "DDIM steps (default 50).")
    var steps: Int?

    @Option(parsing: .unconditional, help: "Seed.")
    var seed: UInt64 = 0

    @Option(name: .shortAndLong, help: "MIDI file to write (one input).")
    var output: String?

    @Option(help: "Folder to write the infilled melodies to (several inputs).")
    var outDir: String?

    func validate() throws {
        if let sampler, !["ddpm", "ddim"].contains(sampler) { throw ValidationError("--sampler '\(sampler)' is not one of: ddpm, ddim") }
        if steps != nil && sampler != "ddim" { throw ValidationError("--steps is for --sampler ddim; ddpm runs every step") }
        guard MelodyModel.InfillMethod(rawValue: method) != nil else { throw ValidationError("--method '\(method)' is not one of: prior, interpolate") }
        let parts = bars.split(separator: "-").compactMap { Int($0) }
        guard parts.count == 2, parts[0] <= parts[1] else { throw ValidationError("--bars '\(bars)' is not a range like 5-12") }
        guard (output == nil) != (outDir == nil) else { throw ValidationError("give either -o FILE (one input) or --out-dir DIR") }
        var isFolder: ObjCBool = false
        if output != nil && (inputs.count != 1 || (FileManager.default.fileExists(atPath: inputs[0], isDirectory: &isFolder) && isFolder.boolValue)) {
            throw ValidationError("-o takes one input file; use --out-dir for several or a folder")
        }
    }

    func run() throws {
        if let output { try refuseOverwritingInputs(outputs: [("-o", output)], inputs: inputs.map { ("input", $0) }) }
        let parts = bars.split(separator: "-").compactMap { Int($0) }
        let infillMethod = MelodyModel.InfillMethod(rawValue: method)!
        let m = try melodyModel(model)
        if infillMethod == .prior {
            try refuseDiffusionFlags(m, model: m.path, given: [("--sampler", sampler != nil), ("--steps", steps != nil)])
        }
        // (name, melody) of every input; in a batch, those too short for the model are skipped.
        var named: [(String, Melody)] = []
        var inputFiles: [String] = []
        var short = 0
        try reportingErrors {
            for input in inputs {
                for file in try MelodyDataset.midiFiles(in: input) {
                    let melodies = output != nil ? try MelodyDataset.melodies(of: file) : try MelodyDataset.melodiesSkippingUnclearDownbeats(of: file)
                    guard let first = melodies.first else {
                        if output != nil { throw ConfigError("\(file): no melody in 16-step bars") }
                        continue
                    }
                    if output == nil && first.events.count < m.maximumBars * Melody.stepsPerBar {
                        short += 1
                        continue
                    }
                    named.append((URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent, first))
                    inputFiles.append(file)
                }
            }
            if named.isEmpty { throw ConfigError("\(inputs.joined(separator: " ")): no melody of \(m.maximumBars) bars or more to infill") }
        }
        // The files of a batch, by name (a repeated name gets a number), none of them an input.
        var files: [String] = []
        if let outDir {
            var used = Set<String>()
            for (name, _) in named {
                var file = name, k = 2
                while used.contains(file) { file = "\(name)-\(k)"; k += 1 }
                used.insert(file)
                files.append(outDir + "/" + file + ".mid")
            }
            try refuseOverwritingInputs(outputs: files.map { ("--out-dir", $0) }, inputs: inputFiles.map { ("input", $0) })
        }
        let started = Date()
        let ddimSteps = sampler == "ddim" ? (steps ?? 50) : nil
        let meter: ProgressMeter?
        switch (infillMethod, m.prior) {
        case (.interpolate, _): meter = nil
        case (.prior, .diffusion(let denoiser)):
            meter = ProgressMeter(total: ddimSteps.map { Swift.min($0, denoiser.config.diffusionSteps) } ?? denoiser.config.diffusionSteps)
        case (.prior, .mdn): meter = ProgressMeter(total: m.maximumBars / 2)
        }
        let results = try mapMelodyErrors {
            try m.infill(named.map { $0.1 }, bars: parts[0]...parts[1], steps: ddimSteps, eta: 0, seed: seed, method: infillMethod) { done, total in
                meter?.report(done: done, "step \(done)/\(total)")
            }
        }
        meter?.finish()
        try reportingErrors {
            if let output {
                try OutputFolder.prepare(URL(fileURLWithPath: output).deletingLastPathComponent().path)
                try results[0].midi().write(to: output)
                printError("wrote \(output): bars \(bars) generated, the rest kept")
            } else if let outDir {
                try OutputFolder.prepare(outDir)
                for (file, melody) in zip(files, results) { try melody.midi().write(to: file) }
                printError(String(format: "wrote %d melodies to %@ (bars %@ by %@, the rest kept) in %.1f s%@", results.count, outDir, bars, method,
                                  Date().timeIntervalSince(started), short > 0 ? "; \(short) shorter than \(m.maximumBars) bars skipped" : ""))
            }
        }
    }
}

struct EvalMelody: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "melody",
        abstract: "The paper's framewise self-similarity of generated melodies against a reference set.",
        discussion: """
            4-bar frames at a 2-bar hop; a Gaussian of the pitches and one of the durations per \
            frame; the exact overlapping area of adjacent frames, pooled over each set. \
            Consistency and Variance compare the pooled mean and variance with the reference's \
            (1 is identical). Beside them, the same scores of two baselines made from the \
            reference itself (random 2-bar chunks of random tunes; random notes from its pitch \
            and duration histograms): the metric has little range, so read the model against them.

            With --model, also the latent-space distances of the paper's Table 3: every 2-bar \
            chunk with a note is encoded by the model's VAE (posterior mean) and trimmed and \
            scaled by its latent transform; then the Fréchet distance and the MMD with an RBF \
            kernel (γ 1) and a polynomial one (degree 2) to the reference's latents, lower being \
            closer. The random-chunks baseline is real music, so its distances are the floor \
            that sampling noise alone gives.

            Example:
              jukebox eval melody --generated out/melodies --reference data/melody/test --model models/melody --json
            """)

    @Option(help: "Folder (or files) of generated MIDI.")
    var generated: [String]

    @Option(help: "Folder (or files) of reference MIDI.")
    var reference: [String]

    @Option(help: "Melody model folder whose VAE and latent transform give the latent distances (none without it).")
    var model: String?

    @Option(help: "Score only these bars of every melody, 1-based: N (the first N) or A-B (inclusive); melodies shorter than that are left out.")
    var bars: String?

    @Option(parsing: .unconditional, help: "Seed of the baselines.")
    var seed: UInt64 = 0

    @Flag(help: "Print one JSON object per row on stdout.")
    var json = false

    struct Row: Encodable {
        var set: String
        var melodies: Int
        var pairs: Int
        var scores: ConsistencyVariance
        var latent: LatentScores?
    }

    struct LatentScores: Encodable {
        var latents: Int
        var frechet: Double
        var mmdRBF: Double
        var mmdPolynomial: Double
    }

    /// `--bars` as a 1-based inclusive range.
    func barRange() throws -> ClosedRange<Int>? {
        guard let bars else { return nil }
        let parts = bars.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
        switch parts.count {
        case 1: if let n = parts[0], n >= 1 { return 1...n }
        case 2: if let a = parts[0], let b = parts[1], a >= 1, a <= b { return a...b }
        default: break
        }
        throw ValidationError("--bars '\(bars)' is not a bar count like 16 or a range like 5-12")
    }

    func validate() throws { _ = try barRange() }

    func run() throws {
        try reportingErrors {
            func load(_ sources: [String], _ flag: String) throws -> [Melody] {
                var out: [Melody] = []
                for source in sources {
                    for file in try MelodyDataset.midiFiles(in: source) { out += try MelodyDataset.melodiesSkippingUnclearDownbeats(of: file) }
                }
                guard !out.isEmpty else { throw ConfigError("\(flag) \(sources.joined(separator: " ")): no melody in 16-step bars") }
                return out
            }
            var made = try load(generated, "--generated"), ref = try load(reference, "--reference")
            if let range = try barRange() {
                func cut(_ melodies: [Melody], _ flag: String) throws -> [Melody] {
                    let step = Melody.stepsPerBar
                    let kept = melodies.filter { $0.events.count >= range.upperBound * step }
                        .map { Melody(events: Array($0.events[((range.lowerBound - 1) * step)..<(range.upperBound * step)])) }
                    guard !kept.isEmpty else { throw ConfigError("\(flag): no melody has \(range.upperBound) bars (--bars \(self.bars ?? ""))") }
                    if kept.count < melodies.count { printError("\(flag): \(melodies.count - kept.count) of \(melodies.count) melodies are shorter than \(range.upperBound) bars and left out") }
                    return kept
                }
                made = try cut(made, "--generated")
                ref = try cut(ref, "--reference")
            }
            let bars = made[0].events.count / Melody.stepsPerBar
            guard bars >= 6 else { throw ConfigError("--generated: melodies of \(bars) bars have no pair of 4-bar frames at a 2-bar hop (need 6 bars or more)") }
            let reference = FrameOverlaps(ref)
            let melodyModel = try model.map { path in try MelodyModel(path: path) }
            func latents(_ melodies: [Melody]) -> LatentSet? {
                melodyModel.map { LatentSet(melodies: melodies, vae: $0.vae, transform: $0.transform) }
            }
            let referenceLatents = latents(ref)
            if let referenceLatents, referenceLatents.count < 2 {
                throw ConfigError("--reference: \(referenceLatents.count) 2-bar chunks with notes; the latent distances need 2 or more")
            }
            var g = RandomGenerator(seed: seed)
            let sets: [(String, [Melody])] = [
                ("generated", made),
                ("baseline: random 2-bar chunks", MelodyBaselines.randomChunks(ref, count: made.count, bars: bars, generator: &g)),
                ("baseline: random notes", MelodyBaselines.randomNotes(ref, count: made.count, bars: bars, generator: &g)),
            ]
            for (name, melodies) in sets {
                let overlaps = FrameOverlaps(melodies)
                var row = Row(set: name, melodies: melodies.count, pairs: overlaps.pitch.count, scores: ConsistencyVariance(overlaps, reference: reference))
                if let referenceLatents, let set = latents(melodies), set.count >= 2 {
                    row.latent = LatentScores(latents: set.count, frechet: LatentDistance.frechet(set, referenceLatents),
                                              mmdRBF: LatentDistance.mmdRBF(set, referenceLatents),
                                              mmdPolynomial: LatentDistance.mmdPolynomial(set, referenceLatents))
                }
                if json {
                    print(try jsonLine(row))
                } else {
                    let s = row.scores
                    var line = name.padding(toLength: 31, withPad: " ", startingAt: 0)
                        + String(format: "  pitch C %.3f V %.3f  duration C %.3f V %.3f  (%d melodies, %d frame pairs)", s.pitchConsistency, s.pitchVariance, s.durationConsistency, s.durationVariance,
                                 row.melodies, row.pairs)
                    if let l = row.latent {
                        line += String(format: "  FD %.4f  MMD-RBF %.5f  MMD-poly %.5f (%d latents)", l.frechet, l.mmdRBF, l.mmdPolynomial, l.latents)
                    }
                    print(line)
                }
            }
            let (pm, pv) = FrameOverlaps.moments(reference.pitch), (dm, dv) = FrameOverlaps.moments(reference.duration)
            if !json {
                print(String(format: "reference: %d melodies, pitch overlap %.3f / %.4f, duration overlap %.3f / %.4f (mean / variance)",
                             ref.count, pm, pv, dm, dv))
            }
        }
    }
}

struct MelodyRender: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Render a MIDI file to a WAV file with FluidSynth, to hear it.",
        discussion: """
            Plays every track and channel of the MIDI file with FluidSynth and a General MIDI \
            soundfont, following the file's tempo changes, and writes a mono 16-bit WAV from the \
            start to the file's last event plus 1 s, so the last notes fade instead of stopping. \
            Without --soundfont the first of these is played: \(MIDIRenderer.debianSoundfonts.joined(separator: ", ")) \
            (TimGM6mb is Debian's timgm6mb-soundfont, which `make deps` installs). The same file \
            gives the same samples; a failed render leaves no file behind.

            Example:
              jukebox melody render out/melodies/melody-1.mid -o out/melody-1.wav
            """)

    @Argument(help: "MIDI file.")
    var input: String

    @Option(name: .shortAndLong, help: "WAV file to write.")
    var output: String

    @Option(help: "SoundFont 2 file (default: an installed General MIDI soundfont, see above).")
    var soundfont: String?

    @Option(parsing: .unconditional, help: "Samples per second, \(MIDIRenderer.sampleRates.lowerBound)...\(MIDIRenderer.sampleRates.upperBound).")
    var sampleRate = 44100

    @Option(parsing: .unconditional, help: "FluidSynth's output gain, 0...10; a melody peaks near −10 dBFS at the default, near −30 dBFS at FluidSynth's 0.2.")
    var gain = MIDIRenderer.defaultGain

    func validate() throws {
        let rates = MIDIRenderer.sampleRates, gains = MIDIRenderer.gains
        guard rates.contains(sampleRate) else {
            throw ValidationError("--sample-rate must be in \(rates.lowerBound)...\(rates.upperBound) Hz, got \(sampleRate)")
        }
        guard gains.contains(gain) else { throw ValidationError("--gain must be in \(gains.lowerBound)...\(gains.upperBound), got \(gain)") }
    }

    func run() throws {
        let renderer = try reportingErrors { try MIDIRenderer(soundfont: soundfont, sampleRate: sampleRate, gain: gain) }
        try refuseOverwritingInputs(outputs: [("-o", output)],
                                    inputs: [("input", input), (soundfont == nil ? "the soundfont" : "--soundfont", renderer.soundfont)])
        let samples = try reportingErrors {
            try OutputFolder.prepare(URL(fileURLWithPath: output).deletingLastPathComponent().path)
            return try renderer.renderFile(input, toWAV: output)
        }
        let peak = samples.reduce(0) { Swift.max($0, abs($1)) }
        printError(String(format: "wrote %@: %.1f s at %d Hz with %@, peak %.1f dBFS", output, Double(samples.count) / Double(sampleRate),
                          sampleRate, renderer.soundfont, 20 * log10(Double(peak))))
        let clipped = samples.count { abs($0) > 1 }
        if clipped > 0 { printError("jukebox: warning: \(clipped) samples beyond full scale were clipped; lower --gain (now \(gain))") }
    }
}
