// Statistics of a code sequence that tell a model's samples from real music's codes at a glance:
// how many codes it uses, how evenly (unigram entropy), and how often a code repeats the one
// before it. A prior that collapses onto a few codes or stutters shows up here before anyone
// listens.

import Foundation

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
    }

    /// `3440 codes: 1567 distinct, entropy 9.53 bits, repeats 2.1%`.
    public var summary: String {
        String(format: "%d codes: %d distinct, entropy %.2f bits, repeats %.1f%%", count, distinct, entropyBits, 100 * repeatRate)
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
        /// The segments averaged (not encoded).
        public var members: [CodeStatistics] = []

        enum CodingKeys: String, CodingKey { case path, level, segments, codesPerSegment, distinct, entropyBits, repeatRate }

        public init(path: String, level: Int, segments: [CodeStatistics]) {
            self.path = path
            self.level = level
            self.segments = segments.count
            let n = Double(Swift.max(1, segments.count))
            codesPerSegment = segments.first?.count ?? 0
            distinct = segments.reduce(0) { $0 + Double($1.distinct) } / n
            entropyBits = segments.reduce(0) { $0 + $1.entropyBits } / n
            repeatRate = segments.reduce(0) { $0 + $1.repeatRate } / n
            members = segments
        }
    }
}
