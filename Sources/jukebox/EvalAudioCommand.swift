import ArgumentParser
import Foundation
import AudioDSP

struct EvalAudio: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audio",
        abstract: "Objective music-or-noise measures of audio files.",
        discussion: """
            Each file is mixed to mono and resampled to 22050 Hz, then measured:

            harmonic_share: the share of the 100 Hz-4 kHz spectral power in bins at least 10 dB \
            above the median of their 41 neighbours (steady partials). Noise of any colour \
            scores about 0.01, a chord 0.99, game music 0.24-0.94 (mean 0.64).

            beat_strength, beat_bpm: the largest normalised autocorrelation of the spectral-flux \
            onset envelope at lags of 50-200 BPM, and the tempo of the beat (the shortest lag \
            within 90% of that peak). Noise scores 0.04-0.07, a click track 0.94, game music \
            0.3-0.8 (mean 0.6).

            chroma_repetition: how well each second of 12-bin chroma matches a second 1-8 s \
            earlier (best mean cosine similarity), minus the same with the frames shuffled, so \
            it rewards recurring material, not a static spectrum. Noise scores 0.00, a repeated \
            melody 0.47, game music 0.03-0.19 (mean 0.12).

            rms_db and peak: 20 log10 of the RMS sample, and the largest absolute sample.

            Example:
              jukebox eval audio samples/*.wav --json
            """)

    @Argument(help: "Audio files.")
    var inputs: [String] = []

    @Flag(help: "Print one JSON object per file and one for the mean (path \"mean\").")
    var json = false

    @Option(parsing: .unconditional, help: ArgumentHelp("Measure consecutive segments of this many seconds instead of whole files.",
                               discussion: "Each segment gets its own line (path@START-END s); the mean is over all segments."))
    var segment: Double?

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give one or more audio files to measure") }
        if let segment, !(segment >= 1 && segment.isFinite) { throw ValidationError("--segment must be at least 1 second") }
    }

    func run() throws {
        var results: [(path: String, measures: MusicMeasures)] = []
        for path in inputs {
            let parts = try reportingErrors { try MusicMeasures.measure(file: path, segmentSeconds: segment) }
            var start = 0.0
            for measures in parts {
                let name = segment == nil ? path : String(format: "%@@%.0f-%.0f s", path, start, start + measures.durationSeconds)
                start += measures.durationSeconds
                results.append((name, measures))
                print(try line(path: name, measures))
            }
        }
        let mean = MusicMeasures.mean(results.map(\.measures))
        print(try line(path: json ? "mean" : "mean of \(results.count) \(segment == nil ? "files" : "segments")", mean))
    }

    /// One file's (or the mean's) output line, as JSON with --json.
    func line(path: String, _ m: MusicMeasures) throws -> String {
        if json {
            return try jsonLine(Row(path: path, measures: m))
        }
        return String(format: "%@  %.1f s  harmonic %.3f  beat %.3f (%.0f BPM)  repetition %.3f  rms %.1f dB  peak %.3f",
                      path, m.durationSeconds, m.harmonicShare, m.beatStrength, m.beatBPM, m.chromaRepetition,
                      m.rmsDB, m.peak)
    }

    /// The measures with the path as one flat JSON object.
    struct Row: Encodable {
        var path: String
        var measures: MusicMeasures

        enum Key: String, CodingKey { case path }

        func encode(to encoder: Encoder) throws {
            try measures.encode(to: encoder)
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(path, forKey: .path)
        }
    }
}
