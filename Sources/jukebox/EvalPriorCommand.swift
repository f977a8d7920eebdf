import ArgumentParser
import Foundation
import JukeboxKit
import ModelKit

struct EvalPrior: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prior",
        abstract: "How well a bundle's prior predicts real codes, by context length.",
        discussion: """
            Teacher-forced bits per token of the level's prior on code files (from `jukebox \
            encode`), over every whole window of n_ctx codes, with the conditioning sampling \
            uses: the bundle's default artist (or --artist), the sampler's song length for the \
            top prior's timing signal (or --song-seconds, or --file-length for each file's own \
            length, as in training), and the true codes of the level above for an upsampler. \
            log2(codebook size) bits is chance. The loss by context length (the position in \
            the window) shows how much a prior gains from what came before: one that models \
            music over its whole context keeps improving up to n_ctx.

            Example:
              jukebox encode --vqvae models/default/vqvae.safetensors held-out/*.ogg --out-dir codes/
              jukebox eval prior --model models/default --level 3 codes/*.codes.safetensors --json
            """)

    @Option(help: "Model bundle folder.")
    var model: String

    @Option(parsing: .unconditional, help: "Level whose prior to evaluate.")
    var level: Int

    @Argument(help: "Code files holding that level (and the level above, for an upsampler).")
    var codes: [String]

    @Option(help: "Artist to condition on (default: the bundle's).")
    var artist: String?

    @Option(parsing: .unconditional, help: "Song length in seconds for the top prior's timing signal (default: what sampling uses).")
    var songSeconds: Double?

    @Flag(help: "Give the timing signal each file's own length, as training does.")
    var fileLength = false

    @Flag(help: "Print the results as one JSON object on stdout.")
    var json = false

    @Flag(help: "Keep only the files a prior trained on them holds out (the 10% split by file name).")
    var heldOut = false

    func validate() throws {
        if codes.isEmpty { throw ValidationError("give code files to evaluate on") }
        if level < 0 { throw ValidationError("--level must be ≥ 0") }
        if let songSeconds, !(songSeconds > 0 && songSeconds.isFinite) { throw ValidationError("--song-seconds must be a positive number") }
        if songSeconds != nil && fileLength { throw ValidationError("give --song-seconds or --file-length, not both") }
    }

    func run() throws {
        let result = try reportingErrors {
            let bundle = try ModelBundle(path: model)
            let paths = heldOut ? try codes.filter { try CodeDataset.isHeldOut(codeFile: $0) } : codes
            guard !paths.isEmpty else { throw ConfigError("none of the \(codes.count) code files is held out") }
            return try PriorEvaluation.run(bundle: bundle, level: level, paths: paths, artist: artist,
                                           timing: fileLength ? .fileLength : .sampling(songSeconds: songSeconds)) { printError($0) }
        }
        if json {
            print(try jsonLine(result))
            return
        }
        for f in result.files { print(String(format: "%@  %.3f bits/token (%d tokens)", f.path, f.bitsPerToken, f.tokens)) }
        for s in result.skipped { print("\(s)  skipped: shorter than one window") }
        let timing = result.songSeconds.map { String(format: ", song length %.0f s", $0) } ?? (fileLength ? ", each file's length" : "")
        print(String(format: "level %d: %.3f bits/token over %d tokens%@", result.level, result.bitsPerToken, result.tokens, timing))
        print("by context length (codes before the predicted one):")
        for b in result.byContext {
            let range = b.from == b.to ? "\(b.from)" : "\(b.from)-\(b.to)"
            print("  " + String(repeating: " ", count: Swift.max(0, 9 - range.count)) + range + String(format: "  %.3f bits/token", b.bitsPerToken))
        }
    }
}
