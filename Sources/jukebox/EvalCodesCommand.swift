import ArgumentParser
import Foundation
import JukeboxKit
import ModelKit

struct EvalCodes: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codes",
        abstract: "Code statistics of code files, comparable across files of any length.",
        discussion: """
            For one level of each code file: distinct codes, unigram entropy in bits and the \
            share of codes that repeat the one before, as the mean over consecutive segments of \
            --seconds (whole sequences by default; distinct codes grow with length, so compare \
            files over segments of one length). A prior whose samples use far fewer codes, at a \
            lower entropy or with more repeats than real music's codes, has collapsed. \
            Recurrence is the largest share of codes equal to the code a fixed lag earlier \
            (lags 2-1024): repeated bars give real music a high one only if the VQ-VAE codes \
            them the same way each time, and codes that never recur cannot be predicted from \
            context.

            Example:
              jukebox eval codes --level 3 --seconds 20 out/sample-*.codes.safetensors held-out-codes/*.codes.safetensors
            """)

    @Argument(help: "Code files.")
    var codes: [String]

    @Option(parsing: .unconditional, help: "Level to measure (default: the highest level in each file).")
    var level: Int?

    @Option(parsing: .unconditional, help: "Segment length in seconds (default: whole sequences).")
    var seconds: Double?

    @Flag(help: "Print one JSON object per file and one for the mean (path \"mean\").")
    var json = false

    @Flag(help: "Keep only the files a prior trained on them holds out (the 10% split by file name).")
    var heldOut = false

    func validate() throws {
        if codes.isEmpty { throw ValidationError("give one or more code files") }
        if let seconds, !(seconds > 0 && seconds.isFinite) { throw ValidationError("--seconds must be a positive number") }
    }

    func run() throws {
        var all: [CodeStatistics.Summary] = []
        let paths = try reportingErrors { heldOut ? try codes.filter { try CodeDataset.isHeldOut(codeFile: $0) } : codes }
        if paths.isEmpty { try reportingErrors { throw ConfigError("none of the \(codes.count) code files is held out") } }
        for path in paths {
            let summary = try reportingErrors { () -> CodeStatistics.Summary? in
                let file = try CodeFile.read(path)
                let chosen = level ?? file.levels.keys.max()!
                guard file.levels[chosen] != nil else {
                    throw ConfigError("\(path): has no level \(chosen) (levels present: \(file.levels.keys.sorted().map(String.init).joined(separator: ", ")))")
                }
                let length = seconds.map { Swift.max(1, Int($0 * Double(file.sampleRate) / Double(file.hops[chosen]))) }
                let segments = (0..<file.batch).flatMap { n in
                    CodeStatistics.segments(file.codes(level: chosen, item: n), length: length, codebookSize: file.codebookSize)
                }
                guard !segments.isEmpty else {
                    printError("\(path): skipped, shorter than one segment of \(seconds ?? 0) s")
                    return nil
                }
                return CodeStatistics.Summary(path: path, level: chosen, segments: segments)
            }
            guard let summary else { continue }
            all.append(summary)
            try emit(summary)
        }
        if all.isEmpty { try reportingErrors { throw ConfigError("no code file holds a whole segment of \(seconds ?? 0) s") } }
        try emit(CodeStatistics.Summary(path: "mean", level: all[0].level, segments: all.flatMap(\.members)))
    }

    func emit(_ s: CodeStatistics.Summary) throws {
        if json {
            print(try jsonLine(s))
        } else {
            print(String(format: "%@  level %d, %d segment%@ of %d codes: %.1f distinct, entropy %.2f bits, repeats %.1f%%, "
                         + "recurrence %.1f%%", s.path, s.level, s.segments, s.segments == 1 ? "" : "s", s.codesPerSegment, s.distinct,
                         s.entropyBits, 100 * s.repeatRate, 100 * s.recurrence))
        }
    }
}
