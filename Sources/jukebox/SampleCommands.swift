import ArgumentParser
import Foundation
import JukeboxKit
import ModelKit
import AudioDSP

/// The default bundle, used when --model is not given.
let defaultModelPath = "models/default"

/// Options shared by `sample` and `upsample`.
struct SamplingFlags: ParsableArguments {
    @Option(help: "Model bundle folder (default: \(defaultModelPath) in the current folder or in the checkout jukebox was built in).")
    var model: String?

    @Option(parsing: .unconditional, help: "Seed: the same seed and flags give the same output bit for bit.")
    var seed: UInt64 = 0

    @Option(parsing: .unconditional, help: "Softmax temperature for every level (default: each level's configured value, 0.99).")
    var temperature: Float?

    @Option(parsing: .unconditional, help: "Sample only among the K most likely codes (0: off).")
    var topK: Int = 0

    @Option(parsing: .unconditional, help: "Sample only among the most likely codes whose probability adds up to P (0: off).")
    var topP: Float = 0

    @Option(name: .shortAndLong, help: "Output: a .wav file (decoded from level 0) or a .codes.safetensors file.")
    var output: String

    @Flag(help: "Continue an interrupted job with the same flags instead of starting over.")
    var resume = false

    func validate() throws {
        if let temperature, !(temperature > 0 && temperature <= 100) {
            throw ValidationError("--temperature must be a number above 0 and at most 100, got \(temperature)")
        }
        if !(0...65536).contains(topK) { throw ValidationError("--top-k must be in 0...65536 (0: off), got \(topK)") }
        if !(topP >= 0 && topP <= 1) { throw ValidationError("--top-p must be in 0...1 (0: off), got \(topP)") }
    }

    func bundle() throws -> ModelBundle {
        if let model { return try ModelBundle(path: model) }
        guard let path = Self.defaultModel() else {
            throw ConfigError("no --model given and \(defaultModelPath) does not exist; train one (make default-model) or pass --model DIR")
        }
        return try ModelBundle(path: path)
    }

    /// `models/default`, found as ``shippedModel(_:manifest:)`` finds shipped models.
    static func defaultModel() -> String? { shippedModel(defaultModelPath, manifest: "bundle.json") }
}

/// Prepares a sampling job, saying which flag a request that cannot work came from.
func makeSampler(bundle: ModelBundle, request: SamplingRequest, flags: SamplingFlags) throws -> MusicSampler {
    do {
        return try MusicSampler(bundle: bundle, request: request, jobPath: SamplingOutput.jobPath(for: flags.output),
                                resume: flags.resume)
    } catch let e as SamplingRequestError {
        let flag: String = switch e.field {
        case .length: "--seconds"
        case .songLength: "--song-seconds"
        case .batch: "--batch"
        case .topK: "--top-k"
        case .topP: "--top-p"
        case .temperature: "--temperature"
        case .precision: "--precision"
        case .primeLength: "--prime-seconds"
        case .resume: "--resume"
        }
        // A job file found without --resume: the fix is the flag, not a problem with it.
        if e.field == .resume && !flags.resume { throw ConfigError("\(e.problem) (with \(flag) to continue it)") }
        throw ConfigError("\(flag): \(e.problem)")
    }
}

/// Runs a job with a progress line, then writes its output.
func runSamplingJob(_ sampler: MusicSampler, output: String) throws {
    Interrupt.install(whenCut: "the window in progress did not end within seconds; stopped, keeping the finished windows in \(sampler.jobPath) (continue with --resume)")
    let top = sampler.bundle.topLevel
    let meter = ProgressMeter(total: 1, plainInterval: 10)
    let started = Date()
    // Per-level totals for the closing summary: a level ends at the last report before the
    // next level's first one.
    var levels: [(level: Int, tokens: Int, seconds: Double)] = []
    var current = (level: -1, start: started, tokens: 0)
    var last = (time: started, tokens: 0)
    func closeLevel() {
        if current.level >= 0 {
            levels.append((current.level, last.tokens - current.tokens, last.time.timeIntervalSince(current.start)))
        }
    }
    let outcome = try reportingErrors {
        try sampler.run { p in
            if current.level < 0 { last.tokens = p.tokensBeforeRun }
            if p.level != current.level {
                closeLevel()
                current = (p.level, last.time, last.tokens)
            }
            last = (Date(), p.tokensDone)
            let eta = p.tokensPerSecond > 0 ? ProgressMeter.duration(Double(p.tokensTotal - p.tokensDone) / p.tokensPerSecond) : "?"
            let line = String(format: "level %d (%@) window %d/%d  %d/%d tokens  %.0f tokens/s  ETA %@", p.level,
                              p.level == top ? "prior" : "upsampler", p.window, p.windows, p.tokensDone, p.tokensTotal,
                              p.tokensPerSecond, eta)
            meter.reportLine(line, force: p.windowFinished && !meter.isTerminal)
        }
    }
    meter.finish()
    closeLevel()
    for l in levels where l.tokens > 0 {
        printError(String(format: "level %d (%@): %d tokens in %@, %.0f tokens/s", l.level, l.level == top ? "prior" : "upsampler",
                          l.tokens, ProgressMeter.duration(l.seconds), Double(l.tokens) / max(l.seconds, 1e-9)))
    }
    switch outcome {
    case .interrupted:
        printError("interrupted; finished windows are saved in \(sampler.jobPath); continue with the same command and --resume")
        throw ExitCode(130)
    case .finished(let codes):
        let decodeStart = Date()
        let written = try reportingErrors { try SamplingOutput.write(codes, to: output, bundle: sampler.bundle) }
        printError(String(format: "decoded and written in %@", ProgressMeter.duration(Date().timeIntervalSince(decodeStart))))
        printError(String(format: "wrote %@ in %@", written.joined(separator: ", "), ProgressMeter.duration(Date().timeIntervalSince(started))))
    }
}

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate music with a model bundle.",
        discussion: """
            Samples the top level with the prior, then each lower level with its upsampler, in \
            windows of n_ctx codes that each continue the codes already there, and decodes \
            level 0 to audio. --prime WAV continues the start of a recording instead of \
            starting from silence. --levels with the top level alone (2 for the shipped \
            model; `jukebox info MODEL` lists the levels) stops after it (write a \
            .codes.safetensors file and finish later with `jukebox upsample`).
            After every window the job's state is saved beside the output, so an interrupted \
            job continues with the same command plus --resume.

            Examples:
              jukebox sample --seconds 20 --seed 3 -o out/song.wav
              jukebox sample --model models/default --seconds 30 --artist "Shawn Parrotte" --prime intro.ogg --prime-seconds 5 -o out/continued.wav
              jukebox sample --seconds 60 --levels 2 -o out/top.codes.safetensors
            """)

    @OptionGroup var flags: SamplingFlags

    @Option(parsing: .unconditional, help: "Length of the music in seconds.")
    var seconds: Double

    @Option(help: "Artist to condition on (see `jukebox info MODEL`).")
    var artist: String?

    @Option(help: "Genre to condition on.")
    var genre: [String] = []

    @Option(parsing: .unconditional, help: "Sequences to sample together (written as OUT-1.wav, OUT-2.wav, …).")
    var batch: Int = 1

    @Option(help: "Audio file whose start the music continues.")
    var prime: String?

    @Option(parsing: .unconditional, help: "Seconds of --prime to use (default: 5).")
    var primeSeconds: Double = 5

    @Option(help: "Levels to sample, top first, e.g. 2,1,0 (default: all) or 2.")
    var levels: String?

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "Length of the song the music is the start of, in seconds, for the top prior's timing signal.",
        discussion: "Default: the median length of the songs the model was trained on (`jukebox info MODEL/prior-*.safetensors` shows it as song_seconds), or --seconds when that is longer. As in Jukebox, this is the song's intended length, not how much is generated."))
    var songSeconds: Double?

    func validate() throws {
        // A day of music is far beyond what sampling here can make; the bound keeps every
        // length computed from these in range.
        if !(seconds > 0 && seconds <= 86_400) { throw ValidationError("--seconds must be above 0 and at most 86400, got \(seconds)") }
        if let songSeconds, !(songSeconds > 0 && songSeconds <= 86_400) {
            throw ValidationError("--song-seconds must be above 0 and at most 86400, got \(songSeconds)")
        }
        if !(1...256).contains(batch) { throw ValidationError("--batch must be in 1...256, got \(batch)") }
        if prime != nil && !(primeSeconds > 0 && primeSeconds < seconds) {
            throw ValidationError("--prime-seconds must be positive and shorter than --seconds")
        }
    }

    func run() throws {
        let (sampler, output) = try reportingErrors { () -> (MusicSampler, String) in
            let bundle = try flags.bundle()
            try refuseOverwritingInputs(outputs: [("-o", flags.output)],
                                        inputs: (prime.map { [("--prime", $0)] } ?? []) + bundle.files.map { ("--model", $0) })
            let count = bundle.vqvae.config.levels
            let chosen = try levels.map { try parseLevels($0, count: count, flag: "--levels") } ?? Array((0..<count).reversed())
            guard chosen == Array((chosen.min()!...(count - 1)).reversed()) else {
                throw ConfigError("--levels must run from the top level \(count - 1) down without gaps, e.g. \(count - 1) or \((0..<count).reversed().map(String.init).joined(separator: ","))")
            }
            if !chosen.contains(0) && !SamplingOutput.isCodeFile(flags.output) {
                throw ConfigError("--levels \(chosen.map(String.init).joined(separator: ",")) does not reach level 0, so there is no audio; write -o FILE.codes.safetensors")
            }
            let rate = bundle.vqvae.config.sampleRate, top = bundle.vqvae.hops.last!
            let samples = Int(seconds * Double(rate)) / top * top
            let primeSamples = prime == nil ? 0 : Int(primeSeconds * Double(rate)) / top * top
            let request = SamplingRequest(samples: samples, seed: flags.seed, artist: artist ?? bundle.manifest.defaultArtist,
                                          genres: genre, temperature: flags.temperature, topK: flags.topK, topP: flags.topP,
                                          batch: batch, levels: chosen, prime: prime, primeSamples: primeSamples,
                                          songSamples: songSeconds.map { Int($0 * Double(rate)) / top * top })
            let sampler = try makeSampler(bundle: bundle, request: request, flags: flags)
            return (sampler, flags.output)
        }
        try runSamplingJob(sampler, output: output)
    }
}

struct Upsample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sample the missing lower levels of a code file.",
        discussion: """
            Takes a code file with the top level (from `jukebox sample --levels 2` or \
            `jukebox encode`) and samples every lower level it lacks with the bundle's \
            upsamplers, then decodes level 0. Upsampling is the long part of sampling; an \
            interrupted job continues with the same command plus --resume.

            Example:
              jukebox upsample --model models/default out/top.codes.safetensors -o out/song.wav
            """)

    @OptionGroup var flags: SamplingFlags

    @Argument(help: "Code file holding the top level.")
    var codes: String

    @Option(help: "Artist to condition the upsamplers on (default: the code file's, else the bundle's default).")
    var artist: String?

    func run() throws {
        let sampler = try reportingErrors { () -> MusicSampler in
            let bundle = try flags.bundle()
            try refuseOverwritingInputs(outputs: [("-o", flags.output)], inputs: [("input", codes)] + bundle.files.map { ("--model", $0) })
            let input = try CodeFile.read(codes)
            try Codec.checkCompatible(input, path: codes, model: bundle.vqvae)
            guard input.batch >= 1, let topLength = input.lengths[bundle.topLevel] else {
                throw ConfigError("\(codes): has no level-\(bundle.topLevel) codes to upsample from")
            }
            let samples = topLength * bundle.vqvae.hops[bundle.topLevel]
            let missing = (0..<bundle.topLevel).reversed().filter { input.levels[$0] == nil }
            guard !missing.isEmpty else { throw ConfigError("\(codes): already holds every level; decode it with `jukebox decode`") }
            guard missing == Array((0...missing.first!).reversed()) else {
                throw ConfigError("\(codes): holds level \(missing.first! + 1 < bundle.topLevel ? missing.first! + 1 : 0) but lacks a level above it")
            }
            let request = SamplingRequest(samples: samples, seed: flags.seed,
                                          artist: artist ?? input.extra["artist"] ?? bundle.manifest.defaultArtist,
                                          genres: (input.extra["genres"] ?? "").split(separator: ",").map(String.init),
                                          temperature: flags.temperature, topK: flags.topK, topP: flags.topP,
                                          batch: input.batch, levels: missing, upsampleFrom: codes)
            return try makeSampler(bundle: bundle, request: request, flags: flags)
        }
        try runSamplingJob(sampler, output: flags.output)
    }
}

struct Bundle: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Assemble a model bundle from trained checkpoints.",
        discussion: """
            Checks that the pieces fit (the priors were trained on this VQ-VAE's codes, every \
            level has exactly one prior, codebook sizes and sample rates agree), then writes \
            the weights without optimizer state and bundle.json into the output folder.

            Example:
              jukebox bundle --vqvae runs/vqvae/checkpoint.safetensors --prior runs/prior/checkpoint.safetensors \\
                --upsampler runs/up1/checkpoint.safetensors --upsampler runs/up0/checkpoint.safetensors --half -o models/mine
            """)

    @Option(help: "VQ-VAE checkpoint.")
    var vqvae: String

    @Option(help: "Top-level prior checkpoint.")
    var prior: String

    @Option(help: "Upsampler checkpoint (once per lower level).")
    var upsampler: [String] = []

    @Option(name: .shortAndLong, help: "Bundle folder to write.")
    var output: String

    @Flag(help: "Store weights as 16-bit floats (half the size; loaded as 32-bit).")
    var half = false

    @Option(help: "Artist that sampling conditions on when none is given (default: the first the prior knows).")
    var artist: String?

    func run() throws {
        // What assembling writes into the folder: fixed names, and a file per level whose
        // number is known only after loading, so every such file already there counts.
        // A folder that does not exist yet holds nothing to clash with; one that cannot be
        // read or written is reported by assembling, which prepares it first.
        let present = (try? FileManager.default.contentsOfDirectory(atPath: output)) ?? []
        let written = ["vqvae.safetensors", "bundle.json"]
            + present.filter { ($0.hasPrefix("prior-level") || $0.hasPrefix("upsampler-level")) && $0.hasSuffix(".safetensors") }
        try refuseOverwritingInputs(outputs: written.map { ("-o", output + "/" + $0) },
                                    inputs: [("--vqvae", vqvae), ("--prior", prior)] + upsampler.map { ("--upsampler", $0) })
        try reportingErrors {
            try ModelBundle.assemble(vqvae: vqvae, priors: [prior] + upsampler, into: output, storeAs: half ? .f16 : .f32,
                                     defaultArtist: artist)
        }
        printError("bundle written to \(output)")
    }
}
