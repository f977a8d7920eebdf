// Checkpoints: one safetensors file holding model tensors, optimizer state (`optim.*`) and
// string metadata: format, version, kind, the config JSON, the step, and what sampling needs.
// Loading is strict: a missing, extra or mis-shaped tensor is an error that names it.

import Foundation
import TensorCore

/// A loaded checkpoint.
public struct Checkpoint {
    public static let format = "jukebox-checkpoint"
    public static let version = "1"

    public let path: String
    public let metadata: [String: String]
    public let tensors: [String: Tensor]

    /// `vqvae`, `prior` or `upsampler`.
    public var kind: String { metadata["kind"] ?? "" }
    /// Training steps taken.
    public var step: Int { Int(metadata["step"] ?? "") ?? 0 }

    /// Reads the checkpoint at `path`; `kind` (when given) must match, or the error says what
    /// the file is instead.
    public static func read(_ path: String, kind expected: String? = nil) throws -> Checkpoint {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ConfigError("\(path): no such checkpoint")
        }
        let file = try Safetensors.read(path: path)
        guard file.metadata["format"] == format else {
            throw ConfigError("\(path): not a jukebox checkpoint (format '\(file.metadata["format"] ?? "none")')")
        }
        guard file.metadata["version"] == version else {
            throw ConfigError("\(path): checkpoint version \(file.metadata["version"] ?? "?") is not supported (expected \(version))")
        }
        if let expected, file.metadata["kind"] != expected {
            throw ConfigError("\(path): is a \(file.metadata["kind"] ?? "unknown") checkpoint, expected a \(expected) checkpoint")
        }
        var tensors: [String: Tensor] = [:]
        for (name, value) in file.tensors {
            if case .float(let t) = value { tensors[name] = t }
        }
        return Checkpoint(path: path, metadata: file.metadata, tensors: tensors)
    }

    /// Writes a checkpoint atomically. `tensors` are written in the order given; float tensors
    /// as `storeAs` (F32 for training, F16 for shipped models), except `optim.*` which stay F32.
    public static func write(_ path: String, kind: String, config: String, step: Int,
                             tensors: [(String, Tensor)], metadata extra: [String: String] = [:],
                             storeAs: SafetensorsDType = .f32) throws {
        var metadata = extra
        metadata["format"] = format
        metadata["version"] = version
        metadata["kind"] = kind
        metadata["config"] = config
        metadata["step"] = String(step)
        let entries = tensors.map { name, t in
            (name: name, value: StoredTensor.float(t), storeAs: name.hasPrefix("optim.") ? SafetensorsDType.f32 : storeAs)
        }
        try Interrupt.protecting { try Safetensors.write(path: path, tensors: entries, metadata: metadata) }
    }

    /// Copies the named tensors into `targets`, strictly: each target must be present with its
    /// shape, and (unless `allowingExtra` says which prefixes may be left over) nothing else.
    public func load(into targets: [(String, Tensor)], allowingExtraPrefixes extra: [String] = ["optim."]) throws {
        var unused = Set(tensors.keys)
        for (name, target) in targets {
            guard let source = tensors[name] else {
                throw ConfigError("\(path): tensor '\(name)' is missing")
            }
            guard source.shape == target.shape else {
                throw ConfigError("\(path): tensor '\(name)' has shape \(source.shape), the model expects \(target.shape)")
            }
            target.data.update(from: source.data, count: target.count)
            unused.remove(name)
        }
        if let stray = unused.sorted().first(where: { name in !extra.contains { name.hasPrefix($0) } }) {
            throw ConfigError("\(path): unexpected tensor '\(stray)' (not part of this model)")
        }
    }

    /// A metadata value that must be present.
    /// Throws unless the file holds at least `count` values: a config in the metadata that
    /// describes a larger model than the weights stored is refused before the model is built.
    public func requireRoom(forParameters count: Int) throws {
        let stored = tensors.values.reduce(0) { $0 + $1.count }
        guard count <= stored else {
            throw ConfigError("\(path): its config describes \(count) parameters but the file holds only \(stored) values")
        }
    }

    public func require(_ key: String) throws -> String {
        guard let v = metadata[key] else { throw ConfigError("\(path): metadata '\(key)' is missing") }
        return v
    }

    /// A short digest of the model tensors (FNV-1a over names, shapes and bytes), identifying
    /// which model a code file came from.
    public static func digest(_ tensors: [(String, Tensor)]) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ byte: UInt8) {
            h ^= UInt64(byte)
            h = h &* 0x100_0000_01b3
        }
        for (name, t) in tensors.sorted(by: { $0.0 < $1.0 }) {
            for b in name.utf8 { mix(b) }
            for d in t.shape { for b in withUnsafeBytes(of: Int64(d).littleEndian, Array.init) { mix(b) } }
            let bytes = UnsafeRawBufferPointer(start: t.data, count: t.count * 4)
            for b in bytes { mix(b) }
        }
        return String(format: "%016llx", h)
    }
}

extension Checkpoint {
    /// The step recorded in the checkpoint at `path`, or 0 when there is none.
    public static func stepOf(_ path: String) -> Int {
        guard let header = try? Safetensors.readHeader(path: path) else { return 0 }
        return Int(header.metadata["step"] ?? "") ?? 0
    }
}

extension Checkpoint {
    /// The random generator saved under the metadata key `key` (four words).
    public func generator(_ key: String = "generator") throws -> RandomGenerator {
        let text = try require(key)
        let words = text.split(separator: ",").compactMap { UInt64($0) }
        guard words.count == 4 else { throw ConfigError("\(path): generator state '\(text)' is not four numbers") }
        return RandomGenerator(stateWords: words)
    }
}
