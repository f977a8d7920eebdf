// `jukebox info`: a description of a checkpoint, code file or bundle from its header alone.

import Foundation
import TensorCore
import ModelKit

/// Lines describing the file or bundle folder at `path`.
public func describe(path: String) throws -> [String] {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw ConfigError("\(path): no such file or folder")
    }
    if isDirectory.boolValue {
        let manifest = path + "/bundle.json"
        guard let text = try? String(contentsOfFile: manifest, encoding: .utf8) else {
            throw ConfigError("\(path): a folder without bundle.json is not a model bundle")
        }
        return ["model bundle \(path)", text.trimmingCharacters(in: .whitespacesAndNewlines)]
    }
    let header = try Safetensors.readHeader(path: path)
    let m = header.metadata
    var lines: [String] = []
    switch m["format"] {
    case Checkpoint.format:
        lines.append("\(m["kind"] ?? "?") checkpoint, format version \(m["version"] ?? "?"), step \(m["step"] ?? "?")")
        for key in ["sample_rate", "hops", "codebook_size", "level", "digest", "extends", "kept_levels", "decoders", "vqvae", "song_seconds", "seed"] where m[key] != nil {
            lines.append("\(key): \(m[key]!)")
        }
        let model = header.entries.filter { !$0.name.hasPrefix("optim.") }
        let count = model.reduce(0) { $0 + $1.shape.reduce(1, *) }
        lines.append("model tensors: \(model.count), \(count) values\(header.entries.count > model.count ? " (plus optimizer state)" : "")")
        if let config = m["config"] { lines.append("config: \(config)") }
    case CodeFile.format:
        // The reader checks every number first, so what is shown below cannot overflow.
        let codes = try CodeFile.read(path)
        let rate = Double(codes.sampleRate)
        lines.append("code file from \(codes.source.isEmpty ? "?" : codes.source), VQ-VAE \(codes.vqvaeDigest), \(codes.codebookSize) codes, \(codes.sampleRate) Hz")
        for level in codes.levels.keys.sorted() {
            let length = codes.lengths[level]!
            lines.append(String(format: "level%d: %d × %d codes (%.2f s each)", level, codes.batch, length,
                                Double(length * codes.hops[level]) / rate))
        }
        for (k, v) in m.sorted(by: { $0.key < $1.key }) where !["format", "version", "source", "vqvae", "codebook_size", "sample_rate", "hops"].contains(k) {
            lines.append("\(k): \(v)")
        }
        // Code statistics of each level and sequence.
        for level in codes.levels.keys.sorted() {
            for n in 0..<codes.batch {
                let stats = CodeStatistics(codes.codes(level: level, item: n), codebookSize: codes.codebookSize)
                lines.append("level\(level)\(codes.batch > 1 ? " item \(n + 1)" : ""): \(stats.summary)")
            }
        }
    default:
        lines.append("safetensors file (format '\(m["format"] ?? "none")'), \(header.entries.count) tensors")
        for e in header.entries { lines.append("\(e.name): \(e.dtype.rawValue) \(e.shape)") }
    }
    return lines
}
