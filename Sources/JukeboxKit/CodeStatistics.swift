// Statistics of a code sequence that tell a model's samples from real music's codes at a glance:
// how many codes it uses, how evenly (unigram entropy), how often a code repeats the one
// before it, and how often it recurs a fixed distance later (a repeated bar re-uses its codes
// only if the VQ-VAE codes it the same way twice). A prior that collapses onto a few codes or
// stutters shows up here before anyone listens; codes that never recur cannot be predicted
// from context, however long.

import Foundation
import ModelKit

/// Usage figures of a sequence of codes.
public struct CodeStatistics: Codable, Equatable, Sendable {
    /// Codes in the sequence.
    public var count: Int
    /// Distinct codes used.
    public var distinct: Int
    /// Entropy of the codes' frequencies, in bits (log2 of the codebook size at most).
    public var entropyBits: Double
    /// Share of positions whose code equals the previous position's.
    public var repeatRate: Double
    /// The largest share of positions whose code equals the code `recurrenceLag` positions
    /// before, over lags 2 to ``maxRecurrenceLag`` (and at most half the sequence).
    public var recurrence: Double
    public var recurrenceLag: Int

    /// Longest lag ``recurrence`` looks at: a top prior's context.
    public static let maxRecurrenceLag = 1024

    /// Statistics of `codes` (one sequence; `codebookSize` bounds the values).
    public init<C: Collection>(_ codes: C, codebookSize: Int) where C.Element == Int32 {
        var counts = [Int](repeating: 0, count: codebookSize)
        var repeats = 0
        var previous: Int32 = -1
        for c in codes {
            counts[Int(c)] += 1
            if c == previous { repeats += 1 }
            previous = c
        }
        count = codes.count
        distinct = counts.filter { $0 > 0 }.count
        var h = 0.0
        for n in counts where n > 0 {
            let p = Double(n) / Double(count)
            h -= p * log2(p)
        }
        entropyBits = h
        repeatRate = count > 1 ? Double(repeats) / Double(count - 1) : 0
        (recurrence, recurrenceLag) = Self.bestRecurrence(Array(codes))
    }

    static func bestRecurrence(_ codes: [Int32]) -> (share: Double, lag: Int) {
        var best = (share: 0.0, lag: 0)
        let longest = Swift.min(maxRecurrenceLag, codes.count / 2)
        guard longest >= 2 else { return best }
        codes.withUnsafeBufferPointer { c in
            for lag in 2...longest {
                var same = 0
                for t in lag..<c.count where c[t] == c[t - lag] { same += 1 }
                let share = Double(same) / Double(c.count - lag)
                if share > best.share { best = (share, lag) }
            }
        }
        return best
    }

    /// `3440 codes: 1567 distinct, entropy 9.53 bits, repeats 2.1%, recurrence 3.4% at lag 86`.
    public var summary: String {
        String(format: "%d codes: %d distinct, entropy %.2f bits, repeats %.1f%%, recurrence %.1f%% at lag %d", count, distinct,
               entropyBits, 100 * repeatRate, 100 * recurrence, recurrenceLag)
    }

    /// Statistics of each consecutive segment of `length` codes (the whole sequence when nil);
    /// a last segment shorter than `length` is left out.
    public static func segments<C: Collection>(_ codes: C, length: Int?, codebookSize: Int) -> [CodeStatistics]
        where C.Element == Int32, C.Index == Int {
        guard let length else { return codes.isEmpty ? [] : [CodeStatistics(codes, codebookSize: codebookSize)] }
        return stride(from: codes.startIndex, through: codes.endIndex - length, by: length).map {
            CodeStatistics(codes[$0..<($0 + length)], codebookSize: codebookSize)
        }
    }

    /// The mean statistics of a file's segments, as `jukebox eval codes` reports them.
    public struct Summary: Codable {
        public var path: String
        public var level: Int
        public var segments: Int
        public var codesPerSegment: Int
        public var distinct: Double
        public var entropyBits: Double
        public var repeatRate: Double
        public var recurrence: Double
        /// The segments averaged (not encoded).
        public var members: [CodeStatistics] = []

        enum CodingKeys: String, CodingKey { case path, level, segments, codesPerSegment, distinct, entropyBits, repeatRate, recurrence }

        public init(path: String, level: Int, segments: [CodeStatistics]) {
            self.path = path
            self.level = level
            self.segments = segments.count
            let n = Double(Swift.max(1, segments.count))
            codesPerSegment = segments.first?.count ?? 0
            distinct = segments.reduce(0) { $0 + Double($1.distinct) } / n
            entropyBits = segments.reduce(0) { $0 + $1.entropyBits } / n
            repeatRate = segments.reduce(0) { $0 + $1.repeatRate } / n
            recurrence = segments.reduce(0) { $0 + $1.recurrence } / n
            members = segments
        }
    }
}
