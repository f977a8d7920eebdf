// The latent priors' data: melodies encoded once by the VAE into sequences of latents.
//
// As the reference (`scripts/transform_encoded_data.py`, `input_pipeline.py`): each melody's
// non-overlapping 2-bar chunks are encoded to the sampled z; windows of `length` consecutive
// chunks at stride 1 form the sequences; a window holding a chunk without a note is dropped;
// only the latent dimensions whose mean posterior σ over the training chunks is below 1 are
// kept; one scalar minimum and maximum over the training sequences map them to [−1, 1]. The
// same transform, fitted on the training split, is used for every split (the reference refits
// on its eval split, a hack its own comment names) and stored with the model; the inverse fills
// the dropped dimensions with N(0, 1) noise, as the reference does.
//
// Deviation: the reference's window range `range(0, len − L)` leaves out each melody's last
// window; here every window counts.

import Foundation
import TensorCore
import ModelKit
import MIDI

/// Which latent dimensions the priors see, and their scaling.
public struct LatentTransform: Codable, Equatable {
    /// The VAE's latent size.
    public var zSize: Int
    /// Kept dimensions, ascending.
    public var kept: [Int]
    public var minimum: Float
    public var maximum: Float

    /// `z (zSize)` → the kept dimensions in [−1, 1] (for data inside the fitted range).
    public func forward(_ z: ArraySlice<Float>) -> [Float] {
        let span = Swift.max(maximum - minimum, 1e-12)
        return kept.map { 2 * (z[z.startIndex + $0] - minimum) / span - 1 }
    }

    /// Kept values → a full latent, the other dimensions drawn from N(0, 1).
    public func inverse(_ values: ArraySlice<Float>, generator: inout RandomGenerator) -> [Float] {
        var z = (0..<zSize).map { _ in generator.normal() }
        for (i, d) in kept.enumerated() { z[d] = (values[values.startIndex + i] + 1) / 2 * (maximum - minimum) + minimum }
        return z
    }

    /// The transform as JSON with sorted keys, so that a checkpoint's bytes do not depend on the
    /// process's hashing seed.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try! encoder.encode(self), as: UTF8.self)
    }
}

/// Latent sequences of one split, `(count, length, kept)` row-major.
public struct LatentSequences {
    public var values: [Float]
    public var count: Int
    public var length: Int
    public var dims: Int

    /// The sequences `indices` as one batch `(B, length, dims)`.
    public func batch(_ indices: [Int]) -> Tensor {
        let per = length * dims
        var out: [Float] = []
        out.reserveCapacity(indices.count * per)
        for i in indices { out += values[(i * per)..<((i + 1) * per)] }
        return Tensor(out, shape: [indices.count, length, dims])
    }
}

/// Encodes melodies with a VAE into chunk latents, fits the transform, makes sequences.
public struct LatentEncoder {
    public let vae: MelodyVAE

    public init(vae: MelodyVAE) { self.vae = vae }

    /// Per melody, its chunks' sampled z `(chunks, Z)`, σ, and which chunks hold a note.
    public func encode(_ melodies: [Melody], seed: UInt64) -> [(z: [Float], sigma: [Float], voiced: [Bool])] {
        let latents = MelodyLatents.encode(melodies, sources: melodies.indices.map { "\($0)" }, model: vae, seed: seed)
        let Z = latents.zSize, T = vae.config.steps
        var out = melodies.map { m -> (z: [Float], sigma: [Float], voiced: [Bool]) in
            (z: [], sigma: [], voiced: m.chunks(steps: T).map { !$0.isSilent })
        }
        for r in 0..<latents.count {
            let m = Int(latents.melody[r])
            out[m].z += latents.z[(r * Z)..<((r + 1) * Z)]
            out[m].sigma += latents.sigma[(r * Z)..<((r + 1) * Z)]
        }
        return out
    }

    /// The transform fitted on `encoded` (a training split): dimensions with mean σ < 1 over
    /// the voiced chunks, and the scalar range of those dimensions over the windows of `length`.
    public func fitTransform(_ encoded: [(z: [Float], sigma: [Float], voiced: [Bool])], length: Int) throws -> LatentTransform {
        let Z = vae.config.zSize
        var sums = [Double](repeating: 0, count: Z), chunks = 0
        for melody in encoded {
            for (c, voiced) in melody.voiced.enumerated() where voiced {
                for d in 0..<Z { sums[d] += Double(melody.sigma[c * Z + d]) }
                chunks += 1
            }
        }
        guard chunks > 0 else { throw ConfigError("no chunk with a note to fit the latent transform on") }
        let kept = (0..<Z).filter { sums[$0] / Double(chunks) < 1 }
        guard !kept.isEmpty else { throw ConfigError("no latent dimension has a mean σ below 1: the VAE encodes nothing") }
        var low = Float.infinity, high = -Float.infinity
        for melody in encoded {
            for start in LatentEncoder.windowStarts(melody.voiced, length: length) {
                for c in start..<(start + length) { for d in kept { low = Swift.min(low, melody.z[c * Z + d]); high = Swift.max(high, melody.z[c * Z + d]) } }
            }
        }
        guard low < high else { throw ConfigError("no window of \(length) voiced chunks to fit the latent range on") }
        return LatentTransform(zSize: Z, kept: kept, minimum: low, maximum: high)
    }

    /// Sequences of `length` chunks (stride 1, every chunk voiced), transformed.
    public func sequences(_ encoded: [(z: [Float], sigma: [Float], voiced: [Bool])], length: Int,
                          transform: LatentTransform) -> LatentSequences {
        let Z = vae.config.zSize
        var values: [Float] = [], count = 0
        for melody in encoded {
            for start in LatentEncoder.windowStarts(melody.voiced, length: length) {
                for c in start..<(start + length) { values += transform.forward(melody.z[(c * Z)..<((c + 1) * Z)]) }
                count += 1
            }
        }
        return LatentSequences(values: values, count: count, length: length, dims: transform.kept.count)
    }

    /// Starts of the windows of `length` consecutive voiced chunks.
    static func windowStarts(_ voiced: [Bool], length: Int) -> [Int] {
        guard voiced.count >= length else { return [] }
        return (0...(voiced.count - length)).filter { s in voiced[s..<(s + length)].allSatisfy { $0 } }
    }
}

/// What a latent prior trains on: the melodies of its sources encoded once by the VAE, the
/// transform (fitted on the training split, or a resumed run's own), and both splits' sequences.
public struct LatentTrainingData {
    public let transform: LatentTransform
    public let train: LatentSequences
    public let heldOut: LatentSequences

    /// Splits `sources` as the VAE trainer does, encodes each split's chunks to sampled z (noise
    /// from `seed`), and makes sequences of `length`. With `transpose` > 0, every training melody
    /// long enough for a sequence is also encoded moved by each shift in −transpose...transpose
    /// semitones that keeps it in the pitch range (the held-out split is not), and the transform
    /// is fitted on all of them. Throws when no training sequence results.
    public init(vae: MelodyVAE, sources: [String], length: Int, transform saved: LatentTransform?, seed: UInt64,
                transpose: Int = 0, log: (String) -> Void) throws {
        let split = try MelodyDataset.splitMelodies(sources: sources, log: log)
        let encoder = LatentEncoder(vae: vae)
        var training = split.train
        if transpose > 0 {
            let T = vae.config.steps
            for melody in split.train where melody.events.count / T >= length {
                for shift in -transpose...transpose where shift != 0 {
                    if let moved = melody.transposed(by: shift) { training.append(moved) }
                }
            }
            log("transposition by up to ±\(transpose) semitones: \(training.count - split.train.count) more training melodies")
        }
        log("encoding \(training.count) training and \(split.heldOut.count) held-out melodies with the VAE")
        let encodedTrain = encoder.encode(training, seed: seed ^ 0x1A7E)
        let encodedHeldOut = encoder.encode(split.heldOut, seed: seed ^ 0x2A7E)
        transform = try saved ?? encoder.fitTransform(encodedTrain, length: length)
        train = encoder.sequences(encodedTrain, length: length, transform: transform)
        heldOut = encoder.sequences(encodedHeldOut, length: length, transform: transform)
        guard train.count > 0 else {
            throw ConfigError("\(sources.joined(separator: ", ")): no melody has \(length) consecutive 2-bar chunks with notes")
        }
    }
}
