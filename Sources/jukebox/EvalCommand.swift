import ArgumentParser
import Foundation
import JukeboxKit
import ModelKit
import AudioDSP

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate trained models.",
        subcommands: [EvalVQVAE.self, EvalPrior.self, EvalCodes.self, EvalAudio.self, EvalMelodyVAE.self, EvalMelody.self])
}

struct EvalVQVAE: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vqvae",
        abstract: "Reconstruction quality and speed of a VQ-VAE on audio files.",
        discussion: """
            Encodes and decodes each input at every level and reports the spectral convergence \
            (dB, lower is better; the Jukebox paper reports -23.0/-12.4/-8.3 dB at hops \
            8/32/128), per file and over all files, codebook usage and perplexity, and the \
            real-time factors of encoding and decoding.

            Example:
              jukebox eval vqvae --vqvae runs/vqvae/checkpoint.safetensors held-out/*.ogg --json
              jukebox eval vqvae --vqvae runs/vqvae/checkpoint.safetensors --held-out music/
            """)

    @Option(help: "VQ-VAE checkpoint.")
    var vqvae: String

    @Argument(help: "Audio files.")
    var inputs: [String] = []

    @Option(parsing: .upToNextOption,
            help: "Evaluate the held-out files of these training folders (the 10% that `train vqvae --data` holds out).")
    var heldOut: [String] = []

    @Flag(help: "Print the results as one JSON object on stdout.")
    var json = false

    func validate() throws {
        if inputs.isEmpty && heldOut.isEmpty { throw ValidationError("give audio files to evaluate, or --held-out DATA...") }
    }

    func run() throws {
        let result = try reportingErrors {
            let model = try VQVAE.load(vqvae)
            try model.requireDecoders(Array(0..<model.config.levels), source: vqvae)
            var files = inputs
            if !heldOut.isEmpty {
                let dataset = try AudioDataset(sources: heldOut, sampleRate: model.config.sampleRate, sampleLength: 4096)
                guard !dataset.test.isEmpty else { throw ConfigError("\(heldOut.joined(separator: ", ")): no file is held out (too few files)") }
                files += dataset.test.map(\.path)
            }
            return try VQVAEEvaluation.run(model: model, inputs: files) { printError($0) }
        }
        if json {
            print(try jsonLine(result))
            return
        }
        for f in result.files {
            print(String(format: "%@  %.1f s  SC ", f.path, f.seconds)
                  + f.spectralConvergenceDB.enumerated().map { String(format: "L%d %.2f dB", $0.offset, $0.element) }.joined(separator: "  "))
        }
        for l in result.levels {
            print(String(format: "level %d (hop %d): SC %.2f dB  codes used %d (%.1f%%)  perplexity %.0f  encode %.1fx  decode %.1fx real time",
                         l.level, l.hop, l.spectralConvergenceDB, l.usedCodes, 100 * l.usage, l.perplexity,
                         l.encodeRealtimeFactor, l.decodeRealtimeFactor))
        }
    }
}
