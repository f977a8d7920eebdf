// Code files (`*.codes.safetensors`): one I16 tensor per level, `level0` (hop 8) … `level2`
// (hop 128), each `(N, T_level)`, with metadata saying which VQ-VAE made them, the sample rate,
// hops and codebook size, the source, and for a partly sampled file which windows are done.

import Foundation
import TensorCore
import ModelKit

/// The codes of one or more levels for N sequences.
public struct CodeFile {
    public static let format = "jukebox-codes"
    public static let version = "1"

    /// Codes per level present, `(N, length)` row-major.
    public var levels: [Int: [Int32]] = [:]
    /// Code count per sequence for each level present.
    public var lengths: [Int: Int] = [:]
    /// Sequences (N).
    public var batch: Int
    public var sampleRate: Int
    public var hops: [Int]
    public var codebookSize: Int
    /// Digest of the VQ-VAE that made (or will decode) the codes.
    public var vqvaeDigest: String
    /// Where the codes came from (an input path, or `sample seed=…`).
    public var source: String
    /// Length of the source audio in samples, when known (decoding trims to it).
    public var samples: Int?
    /// Other metadata (sampling progress, labels).
    public var extra: [String: String] = [:]

    public init(batch: Int, sampleRate: Int, hops: [Int], codebookSize: Int, vqvaeDigest: String, source: String) {
        self.batch = batch
        self.sampleRate = sampleRate
        self.hops = hops
        self.codebookSize = codebookSize
        self.vqvaeDigest = vqvaeDigest
        self.source = source
    }

    /// Sets the codes of `level`, `(batch, length)`.
    public mutating func set(level: Int, codes: [Int32], length: Int) {
        precondition(codes.count == batch * length, "CodeFile: \(codes.count) codes for \(batch) × \(length)")
        levels[level] = codes
        lengths[level] = length
    }

    /// Row `n` of `level`.
    public func codes(level: Int, item n: Int) -> ArraySlice<Int32> {
        let length = lengths[level]!
        return levels[level]![(n * length)..<((n + 1) * length)]
    }

    /// Writes the file atomically.
    public func write(_ path: String) throws {
        var metadata = extra
        metadata["format"] = CodeFile.format
        metadata["version"] = CodeFile.version
        metadata["sample_rate"] = String(sampleRate)
        metadata["hops"] = hops.map(String.init).joined(separator: ",")
        metadata["codebook_size"] = String(codebookSize)
        metadata["vqvae"] = vqvaeDigest
        metadata["source"] = source
        if let samples { metadata["samples"] = String(samples) }
        let tensors = levels.keys.sorted().map { level in
            (name: "level\(level)", value: StoredTensor.int16(levels[level]!.map { Int16($0) }, shape: [batch, lengths[level]!]),
             storeAs: SafetensorsDType.i16)
        }
        try Interrupt.protecting { try Safetensors.write(path: path, tensors: tensors, metadata: metadata) }
    }

    /// Reads and validates a code file: format, levels consistent with the hops, every code
    /// inside the codebook.
    public static func read(_ path: String) throws -> CodeFile {
        guard FileManager.default.fileExists(atPath: path) else { throw ConfigError("\(path): no such code file") }
        let file = try Safetensors.read(path: path)
        let m = file.metadata
        guard m["format"] == format else {
            throw ConfigError("\(path): not a jukebox code file (format '\(m["format"] ?? "none")')")
        }
        guard m["version"] == version else {
            throw ConfigError("\(path): code file version '\(m["version"] ?? "none")' is not supported (this jukebox reads version \(version))")
        }
        guard let rateText = m["sample_rate"], let binsText = m["codebook_size"], let hopText = m["hops"], let digest = m["vqvae"] else {
            throw ConfigError("\(path): code file metadata is incomplete (sample_rate, hops, codebook_size, vqvae)")
        }
        // Every number is range-checked here, where it enters, so sizes computed from them
        // cannot overflow later.
        let rate = try Self.number(rateText, "sample_rate", in: 1...maxSampleRate, path)
        let bins = try Self.number(binsText, "codebook_size", in: 1...(Int(Int16.max) + 1), path)
        let hops = try hopText.split(separator: ",", omittingEmptySubsequences: false).map {
            try Self.number(String($0), "hops", in: 1...maxHop, path)
        }
        guard !hops.isEmpty, zip(hops, hops.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw ConfigError("\(path): metadata hops '\(hopText)' must rise from level to level")
        }
        var out = CodeFile(batch: 0, sampleRate: rate, hops: hops, codebookSize: bins, vqvaeDigest: digest,
                           source: m["source"] ?? "")
        if let samplesText = m["samples"] {
            out.samples = try Self.number(samplesText, "samples", in: 0...Int(Int32.max) * hops.last!, path)
        }
        let known: Set<String> = ["format", "version", "sample_rate", "hops", "codebook_size", "vqvae", "source", "samples"]
        out.extra = m.filter { !known.contains($0.key) }
        for (name, value) in file.tensors {
            guard name.hasPrefix("level"), let level = Int(name.dropFirst(5)), level >= 0, level < hops.count else {
                throw ConfigError("\(path): unexpected tensor '\(name)' (levels are level0…level\(hops.count - 1))")
            }
            guard case .int16(let values, let shape) = value, shape.count == 2 else {
                throw ConfigError("\(path): tensor '\(name)' must be I16 of shape (N, T)")
            }
            // With no sequences the data section does not bound T, and T · hop must not overflow.
            guard shape[1] <= Int(Int32.max) else {
                throw ConfigError("\(path): tensor '\(name)' is \(shape[1]) codes long, more than the \(Int32.max) a code file may hold")
            }
            if out.batch == 0 { out.batch = shape[0] }
            guard shape[0] == out.batch else { throw ConfigError("\(path): levels hold different numbers of sequences") }
            if let bad = values.firstIndex(where: { $0 < 0 || Int($0) >= bins }) {
                throw ConfigError("\(path): \(name) holds code \(values[bad]) at position \(bad), outside the codebook of \(bins)")
            }
            out.set(level: level, codes: values.map { Int32($0) }, length: shape[1])
        }
        guard !out.levels.isEmpty else { throw ConfigError("\(path): holds no codes") }
        // Levels present must describe the same duration.
        let durations = Set(out.lengths.map { $0.value * hops[$0.key] })
        guard durations.count == 1 else {
            throw ConfigError("\(path): levels cover different durations (\(out.lengths.sorted { $0.key < $1.key }.map { "level\($0.key): \($0.value) codes" }.joined(separator: ", ")))")
        }
        if let samples = out.samples, samples > out.coveredSamples {
            throw ConfigError("\(path): metadata samples \(samples) is more than the \(out.coveredSamples) its codes cover")
        }
        return out
    }

    /// Highest sample rate and hop a code file may state.
    public static let maxSampleRate = 768_000
    public static let maxHop = 1 << 20

    /// `text` as a whole number in `range`, else an error naming the file and the field.
    static func number(_ text: String, _ field: String, in range: ClosedRange<Int>, _ path: String) throws -> Int {
        guard let value = Int(text), range.contains(value) else {
            throw ConfigError("\(path): metadata \(field) '\(text)' is not a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    /// Samples covered by the codes.
    public var coveredSamples: Int {
        guard let (level, length) = lengths.first else { return 0 }
        return length * hops[level]
    }
}
