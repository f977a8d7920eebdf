import ArgumentParser
import Foundation
import JukeboxKit
import ModelKit
import AudioDSP

struct Encode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Encode audio files into code files with a trained VQ-VAE.",
        discussion: """
            Writes one code file per input (*.codes.safetensors: an I16 tensor per level). Audio \
            of any length is encoded in overlapping chunks, so memory stays bounded; the codes \
            equal those of a whole-file pass. With --out-dir, inputs whose code file is newer \
            than the input and was made by this VQ-VAE are skipped unless --force, so a Makefile \
            can rerun the command cheaply.

            Examples:
              jukebox encode --vqvae runs/vqvae/checkpoint.safetensors song.ogg -o song.codes.safetensors
              jukebox encode --vqvae vqvae.safetensors music/*.ogg --out-dir codes/
            """)

    @Option(help: "VQ-VAE checkpoint.")
    var vqvae: String

    @Argument(help: "Audio files to encode.")
    var inputs: [String]

    @Option(name: .shortAndLong, help: "Output code file (one input only).")
    var output: String?

    @Option(help: "Folder for one code file per input (NAME.codes.safetensors).")
    var outDir: String?

    @Option(help: "Levels to encode, e.g. 0,1,2 (default: all).")
    var levels: String?

    @Flag(help: "Encode even when the code file is up to date.")
    var force = false

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give at least one audio file to encode") }
        if (output == nil) == (outDir == nil) { throw ValidationError("give exactly one of -o FILE or --out-dir DIR") }
        if output != nil && inputs.count > 1 { throw ValidationError("-o takes one input; use --out-dir for \(inputs.count) inputs") }
    }

    func run() throws {
        let targets = output.map { [("-o", $0)] } ?? inputs.map { ("--out-dir", Codec.codePath(for: $0, outDirectory: outDir!)) }
        try refuseOverwritingInputs(outputs: targets, inputs: [("--vqvae", vqvae)] + inputs.map { ("input", $0) })
        let model = try reportingErrors { try VQVAE.load(vqvae) }
        let levelList = try levels.map { try parseLevels($0, count: model.config.levels, flag: "--levels") }
            ?? Array(0..<model.config.levels)
        let folder = outDir ?? URL(fileURLWithPath: output!).deletingLastPathComponent().path
        try reportingErrors { try OutputFolder.prepare(folder) }
        var failures = 0
        for (i, input) in inputs.enumerated() {
            let target = output ?? Codec.codePath(for: input, outDirectory: outDir!)
            if !force && outDir != nil && Codec.isUpToDate(codePath: target, input: input, model: model, levels: levelList) {
                printError("[\(i + 1)/\(inputs.count)] \(input): up to date")
                continue
            }
            let t0 = Date()
            do {
                let codes = try Codec.encodeFile(input, model: model, levels: levelList)
                try codes.write(target)
                let seconds = Double(codes.samples ?? 0) / Double(model.config.sampleRate)
                printError(String(format: "[%d/%d] %@ → %@ (%.1f s of audio, %.1fx real time)", i + 1, inputs.count,
                                  input, target, seconds, seconds / max(Date().timeIntervalSince(t0), 1e-9)))
            } catch {
                printError("jukebox: error: \(error)")
                failures += 1
            }
        }
        if failures > 0 { throw ExitCode.failure }
    }
}

struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode a code file to audio with the VQ-VAE that made it.",
        discussion: """
            Decodes one level of a code file (default: the lowest level present) with that \
            level's decoder, in overlapping chunks, and writes a 16-bit WAV (or 32-bit float \
            with --float). Codes from another VQ-VAE are refused unless --allow-other-vqvae.

            Example:
              jukebox decode --vqvae vqvae.safetensors song.codes.safetensors --level 0 -o song-recon.wav
            """)

    @Option(help: "VQ-VAE checkpoint.")
    var vqvae: String

    @Argument(help: "Code file.")
    var codes: String

    @Option(parsing: .unconditional, help: "Level to decode (default: the lowest present).")
    var level: Int?

    @Option(name: .shortAndLong, help: "Output WAV file.")
    var output: String

    @Flag(help: "Write 32-bit float samples instead of 16-bit PCM.")
    var float = false

    @Flag(help: "Decode codes made by a different VQ-VAE (same hops and codebook size).")
    var allowOtherVqvae = false

    func run() throws {
        try refuseOverwritingInputs(outputs: [("-o", output)], inputs: [("--vqvae", vqvae), ("input", codes)])
        try reportingErrors {
            let model = try VQVAE.load(vqvae)
            let file = try CodeFile.read(codes)
            try Codec.checkCompatible(file, path: codes, model: model, allowOtherModel: allowOtherVqvae)
            let chosen = level ?? file.levels.keys.min()!
            guard file.levels[chosen] != nil else {
                throw ConfigError("\(codes): has no level \(chosen) (levels present: \(file.levels.keys.sorted().map(String.init).joined(separator: ", ")))")
            }
            try model.requireDecoders([chosen], source: vqvae)
            let t0 = Date()
            for item in 0..<file.batch {
                let audio = Codec.decode(file, level: chosen, item: item, model: model)
                let path = file.batch == 1 ? output : SamplingOutput.numberedPath(output, item)
                try AudioFile.write(path, samples: audio, sampleRate: model.config.sampleRate, format: float ? .float32 : .pcm16)
                let seconds = Double(audio.count) / Double(model.config.sampleRate)
                printError(String(format: "%@: %.1f s from level %d (%.1fx real time)", path, seconds, chosen,
                                  seconds / max(Date().timeIntervalSince(t0), 1e-9)))
            }
        }
    }
}
