// Latent files (`*.latents.safetensors`): per melody and non-overlapping 2-bar chunk, the VAE's
// sampled z, μ and σ, `(N, Z)` each, with `melody (N)` and `chunk (N)` saying where each row
// comes from. A chunk without a note is stored as zeros, as the reference does; decoding turns
// a zero z back into silence. Metadata names the VAE by digest and lists the sources.

import Foundation
import TensorCore
import ModelKit
import MIDI

/// Latents of the 2-bar chunks of one or more melodies.
public struct MelodyLatents {
    public static let format = "jukebox-melody-latents"
    public static let version = "1"

    public var z: [Float], mu: [Float], sigma: [Float]
    /// Which melody (index into `sources`) and which chunk of it each row is.
    public var melody: [Int32], chunk: [Int32]
    public var zSize: Int
    public var vaeDigest: String
    /// One entry per melody: the file and the melody's index in it.
    public var sources: [String]

    public var count: Int { melody.count }

    /// Encodes every non-overlapping 2-bar chunk of `melodies` (named by `sources`), drawing ε
    /// from `seed`.
    public static func encode(_ melodies: [Melody], sources: [String], model: MelodyVAE, seed: UInt64, batch: Int = 64) -> MelodyLatents {
        let Z = model.config.zSize, T = model.config.steps
        var out = MelodyLatents(z: [], mu: [], sigma: [], melody: [], chunk: [], zSize: Z, vaeDigest: model.digest, sources: sources)
        var rows: [(melody: Int, chunk: Int, events: [UInt8])] = []
        for (m, melody) in melodies.enumerated() {
            for (c, chunk) in melody.chunks(steps: T).enumerated() { rows.append((m, c, chunk.events)) }
        }
        var generator = RandomGenerator(seed: seed)
        Tensor.withoutGrad {
            var start = 0
            while start < rows.count {
                let part = rows[start..<Swift.min(start + batch, rows.count)]
                let events = part.flatMap { $0.events.map { Int32($0) } }
                let (mu, sigma) = model.encode(events, batch: part.count)
                let epsilon = Tensor.randomNormal(mu.shape, std: 1, generator: &generator)
                let z = mu + sigma * epsilon
                for (i, row) in part.enumerated() {
                    let silent = !row.events.contains { $0 >= 2 }
                    for (target, source) in [(\MelodyLatents.z, z), (\MelodyLatents.mu, mu), (\MelodyLatents.sigma, sigma)] {
                        out[keyPath: target] += silent ? [Float](repeating: 0, count: Z)
                                                       : Array(UnsafeBufferPointer(start: source.data + i * Z, count: Z))
                    }
                    out.melody.append(Int32(row.melody))
                    out.chunk.append(Int32(row.chunk))
                }
                start += part.count
            }
        }
        return out
    }

    /// Writes the file atomically.
    public func write(_ path: String) throws {
        let n = count
        try Safetensors.write(path: path, tensors: [
            (name: "z", value: .float(Tensor(z, shape: [n, zSize])), storeAs: .f32),
            (name: "mu", value: .float(Tensor(mu, shape: [n, zSize])), storeAs: .f32),
            (name: "sigma", value: .float(Tensor(sigma, shape: [n, zSize])), storeAs: .f32),
            (name: "melody", value: .int32(melody, shape: [n]), storeAs: .i32),
            (name: "chunk", value: .int32(chunk, shape: [n]), storeAs: .i32),
        ], metadata: ["format": MelodyLatents.format, "version": MelodyLatents.version, "vae": vaeDigest,
                      "sources": String(decoding: try JSONEncoder().encode(sources), as: UTF8.self)])
    }

    /// Reads and checks a latent file.
    public static func read(_ path: String) throws -> MelodyLatents {
        let file = try Safetensors.read(path: path)
        guard file.metadata["format"] == format else {
            throw ConfigError("\(path): not a jukebox latent file (format '\(file.metadata["format"] ?? "none")')")
        }
        guard file.metadata["version"] == version else {
            throw ConfigError("\(path): latent file version '\(file.metadata["version"] ?? "none")' is not supported (this jukebox reads \(version))")
        }
        let z: Tensor, mu: Tensor, sigma: Tensor, melody: [Int32], melodyShape: [Int], chunk: [Int32], chunkShape: [Int]
        do {
            (z, mu, sigma) = (try file.float("z"), try file.float("mu"), try file.float("sigma"))
            (melody, melodyShape) = try file.int32("melody")
            (chunk, chunkShape) = try file.int32("chunk")
        } catch {
            throw ConfigError("\(path): \(error)")
        }
        guard z.rank == 2, mu.shape == z.shape, sigma.shape == z.shape, melodyShape == [z.shape[0]], chunkShape == melodyShape else {
            throw ConfigError("\(path): tensors z, mu, sigma (N, Z) and melody, chunk (N) do not agree")
        }
        guard let sources = try? JSONDecoder().decode([String].self, from: Data((file.metadata["sources"] ?? "[]").utf8)) else {
            throw ConfigError("\(path): metadata 'sources' is not a JSON list of strings")
        }
        if let bad = melody.first(where: { $0 < 0 || Int($0) >= sources.count }) {
            throw ConfigError("\(path): melody index \(bad) outside the \(sources.count) sources")
        }
        if let bad = chunk.first(where: { $0 < 0 }) { throw ConfigError("\(path): negative chunk index \(bad)") }
        return MelodyLatents(z: z.array, mu: mu.array, sigma: sigma.array, melody: melody, chunk: chunk, zSize: z.shape[1],
                             vaeDigest: file.metadata["vae"] ?? "", sources: sources)
    }

    /// The melodies the rows decode to by argmax, in source order: each melody's chunks in
    /// order, a zero latent as a silent chunk. `useMean` decodes μ instead of the sampled z.
    public func decode(with model: MelodyVAE, useMean: Bool = false, batch: Int = 64) throws -> [Melody] {
        guard zSize == model.config.zSize else {
            throw ConfigError("latents have \(zSize) dimensions but the VAE's z has \(model.config.zSize)")
        }
        let T = model.config.steps, Z = zSize
        let values = useMean ? mu : z
        var decoded = [[UInt8]](repeating: [], count: count)
        var start = 0
        while start < count {
            let n = Swift.min(batch, count - start)
            let events = model.greedyDecode(Tensor(Array(values[(start * Z)..<((start + n) * Z)]), shape: [n, Z]), steps: T)
            for i in 0..<n {
                let row = values[((start + i) * Z)..<((start + i + 1) * Z)]
                decoded[start + i] = row.allSatisfy({ $0 == 0 }) ? [UInt8](repeating: Melody.noEvent, count: T)
                                                                  : events[(i * T)..<((i + 1) * T)].map { UInt8($0) }
            }
            start += n
        }
        var melodies: [Melody] = []
        for m in 0..<sources.count {
            let rows = (0..<count).filter { melody[$0] == Int32(m) }.sorted { chunk[$0] < chunk[$1] }
            melodies.append(Melody(events: rows.flatMap { decoded[$0] }))
        }
        return melodies
    }
}
