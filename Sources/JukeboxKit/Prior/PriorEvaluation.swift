// `jukebox eval prior`: how well a bundle's prior predicts real codes, teacher-forced, with the
// conditioning sampling would give it (the bundle's default artist, the sampler's song length,
// the upper level's true codes for an upsampler). The loss is reported overall and by how much
// context the prediction had (its position in the window), which tells a prior that models
// music over its whole context from one that only continues the last few codes.
//
// Shapes: windows (N, n_ctx) of one level's codes; logits (N, n_ctx, bins).

import Foundation
import TensorCore
import ModelKit

/// What `jukebox eval prior` reports.
public struct PriorEvaluation: Codable {
    /// Mean loss over the positions whose context is `from...to` codes long.
    public struct ContextBucket: Codable {
        public var from: Int
        public var to: Int
        public var bitsPerToken: Double
        public var tokens: Int
    }
    public struct FileResult: Codable {
        public var path: String
        public var bitsPerToken: Double
        public var tokens: Int
    }
    public var level: Int
    /// Song length given to the timing signal, in seconds (nil: each file's own length, or no
    /// timing signal at this level).
    public var songSeconds: Double?
    public var bitsPerToken: Double
    public var tokens: Int
    public var byContext: [ContextBucket]
    public var files: [FileResult]
    public var skipped: [String]

    /// How the top prior's timing signal is set.
    public enum Timing {
        /// As sampling sets it: ``MusicSampler/songSamples(for:bundle:)`` for a request of the
        /// file's length (or `seconds` when given).
        case sampling(songSeconds: Double?)
        /// Each file's own length, as training sets it.
        case fileLength
    }

    /// Evaluates the prior of `level` in `bundle` on the code files at `paths`: every whole
    /// window of n_ctx codes, back to back from the start of each file (and of each sequence
    /// in it). Files shorter than one window are skipped and listed.
    public static func run(bundle: ModelBundle, level: Int, paths: [String], artist: String? = nil,
                           timing: Timing = .sampling(songSeconds: nil),
                           progress: ((String) -> Void)? = nil) throws -> PriorEvaluation {
        guard let prior = bundle.priors[level] else { throw ConfigError("the bundle has no prior for level \(level)") }
        let vq = bundle.vqvae, c = prior.config
        let n = c.nCtx, bins = c.bins, hop = vq.hops[level]
        let ratio = 1 << c.conditioner.downT
        let name = artist ?? bundle.manifest.defaultArtist
        _ = try bundle.priors[bundle.topLevel]!.vocabulary.artistID(name)
        // As in sampling: an artist this prior's own vocabulary lacks is "unknown" to it.
        let artistID = (try? prior.vocabulary.artistID(name)) ?? 0
        var sums = [Double](repeating: 0, count: n), counts = [Int](repeating: 0, count: n)
        var files: [FileResult] = [], skipped: [String] = []
        var songSeconds: Double?
        for (i, path) in paths.enumerated() {
            progress?("eval prior \(i + 1)/\(paths.count): \(path)")
            let file = try CodeFile.read(path)
            try Codec.checkCompatible(file, path: path, model: vq)
            for l in prior.codeLevels where file.levels[l] == nil {
                throw ConfigError("\(path): has no level-\(l) codes (encode with --levels \(prior.codeLevels.map(String.init).joined(separator: ",")))")
            }
            let length = file.lengths[level]!
            guard length >= n else { skipped.append(path); continue }
            var fileSum = 0.0, fileCount = 0
            for item in 0..<file.batch {
                let codes = Array(file.codes(level: level, item: item))
                let upper = prior.isUpsampler ? Array(file.codes(level: level + 1, item: item)) : []
                for start in stride(from: 0, through: length - n, by: n) {
                    var cond = PriorConditioning(artists: [artistID], genres: [[]])
                    if prior.isUpsampler {
                        cond.upperCodes = Array(upper[(start / ratio)..<((start + n) / ratio)])
                    } else {
                        let song: Int
                        switch timing {
                        case .fileLength:
                            song = file.samples ?? length * hop
                        case .sampling(let seconds):
                            let request = SamplingRequest(samples: length * hop, seed: 0, artist: "", levels: [level],
                                                          songSamples: seconds.map { Int($0 * Double(vq.config.sampleRate)) })
                            song = MusicSampler.songSamples(for: request, bundle: bundle)
                            songSeconds = Double(song) / Double(vq.config.sampleRate)
                        }
                        cond.timing = [TimingInfo(total: song, offset: start * hop, length: n * hop)]
                    }
                    let window = Array(codes[start..<(start + n)])
                    let losses = tokenLosses(prior, window, conditioning: cond, bins: bins)
                    for t in 0..<n {
                        sums[t] += losses[t]
                        counts[t] += 1
                        fileSum += losses[t]
                    }
                    fileCount += n
                }
            }
            files.append(FileResult(path: path, bitsPerToken: fileSum / Double(fileCount), tokens: fileCount))
        }
        guard counts[0] > 0 else {
            throw ConfigError("no file holds a whole window of \(n) level-\(level) codes (\(Double(n * hop) / Double(vq.config.sampleRate)) s)")
        }
        // Buckets of context length: 0, 1, 2–3, 4–7, …, up to n_ctx − 1.
        var buckets: [ContextBucket] = []
        var from = 0
        while from < n {
            let to = Swift.min(n - 1, from == 0 ? 0 : 2 * from - 1)
            let s = sums[from...to].reduce(0, +), k = counts[from...to].reduce(0, +)
            buckets.append(ContextBucket(from: from, to: to, bitsPerToken: s / Double(k), tokens: k))
            from = to + 1
        }
        let total = sums.reduce(0, +), count = counts.reduce(0, +)
        if case .fileLength = timing { songSeconds = nil }
        return PriorEvaluation(level: level, songSeconds: prior.isUpsampler ? nil : songSeconds,
                               bitsPerToken: total / Double(count), tokens: count, byContext: buckets, files: files,
                               skipped: skipped)
    }

    /// −log2 p(token_t | tokens before t) for each position of one window.
    static func tokenLosses(_ prior: Prior, _ window: [Int32], conditioning: PriorConditioning, bins: Int) -> [Double] {
        Tensor.withoutGrad {
            let logits = prior.logits(window, batch: 1, conditioning: conditioning)   // (1, T, bins)
            return window.indices.map { t in
                let row = logits.data + t * bins
                var peak = -Float.infinity
                for j in 0..<bins { peak = Swift.max(peak, row[j]) }
                var sum = 0.0
                for j in 0..<bins { sum += Foundation.exp(Double(row[j] - peak)) }
                return (Foundation.log(sum) + Double(peak - row[Int(window[t])])) / M_LN2
            }
        }
    }
}
