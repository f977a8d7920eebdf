// What a model or a training run will hold in memory, worked out from its config before any of
// it is allocated, so that a batch or a width that cannot fit is refused with a reason instead
// of growing until the kernel kills the process.
//
// Parameter counts mirror the constructors exactly (a test compares them with built models).
// Training holds each parameter four times (weights, gradients, Adam's two moments). The
// activations of a step grow linearly with the batch and the crop or context; their
// coefficients come from the structure of the stacks and were calibrated against the measured
// peak of tensor memory (`TensorStorage.peakBytes`) of real steps, with a margin: the test
// asserts that every estimate lies between that peak and 2.5 times it.

import Foundation
import TensorCore

/// Memory a job needs, with what it is made of (for the message).
public struct MemoryEstimate: Equatable {
    /// Bytes that do not grow with the batch (weights, optimizer state).
    public var fixedBytes: Double
    /// Bytes per batch item (one crop or one context window).
    public var bytesPerItem: Double
    /// Items per batch.
    public var batch: Int
    /// Parameters of the model.
    public var parameters: Int
    /// What one item is, e.g. "crops of 33024 samples".
    public var item: String

    public var bytes: Double { fixedBytes + bytesPerItem * Double(batch) }

    /// The most items that fit in `available` bytes.
    public func largestBatch(fitting available: Double) -> Int {
        Int(max(0, min(Double(Int32.max), ((available - fixedBytes) / bytesPerItem).rounded(.down))))
    }

    /// Throws ``MemoryError`` unless the estimate fits in `available` bytes (default: the
    /// machine's memory, less a tenth for the system and the rest of the process).
    public func check(available: Double = MemoryEstimate.usableBytes) throws {
        guard bytes <= available else { throw MemoryError(estimate: self, available: available) }
    }

    /// Memory this process may use: 90 % of the smaller of physical memory and the cgroup's
    /// limit (containers).
    public static var usableBytes: Double { 0.9 * Double(machineBytes) }

    /// Physical memory, or the cgroup (v2 or v1) limit when that is lower.
    public static var machineBytes: Int {
        var bytes = Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE)))
        for file in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            if let text = try? String(contentsOfFile: file, encoding: .utf8),
               let limit = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), limit > 0 {
                bytes = min(bytes, limit)
            }
        }
        return bytes
    }

    /// `bytes` as "41.3 GB" (decimal units, as `free -h` users read them).
    public static func describe(_ bytes: Double) -> String {
        let units = ["bytes", "kB", "MB", "GB", "TB", "PB", "EB"]
        var value = bytes, unit = 0
        while value >= 1000 && unit < units.count - 1 { value /= 1000; unit += 1 }
        return unit == 0 ? "\(Int(value)) bytes" : String(format: "%.1f %@", value, units[unit])
    }
}

/// A job that does not fit in memory.
public struct MemoryError: Error, CustomStringConvertible {
    public let estimate: MemoryEstimate
    public let available: Double

    public var description: String {
        "needs about \(MemoryEstimate.describe(estimate.bytes)) (\(estimate.parameters) parameters, batch \(estimate.batch) "
            + "\(estimate.item)), more than the \(MemoryEstimate.describe(available)) of memory this process can use"
    }
}

extension VQVAEConfig {
    /// Parameters of the VQ-VAE this config builds (encoders and decoders of every level; the
    /// codebooks are state, not parameters).
    public var parameterCount: Int { parameterCount(decoderLevels: Array(0..<levels)) }

    /// Parameters with the decoders of `decoderLevels` only (a bundle keeps level 0's).
    public func parameterCount(decoderLevels: [Int]) -> Int {
        var total = 0
        for level in 0..<levels {
            let width = self.width * hvqvaeMultipliers[level], depth = self.depth * hvqvaeMultipliers[level]
            let inner = Swift.max(1, Int(mConv * Float(width)))
            let resnet = depth * (conv(width, inner, 3) + conv(inner, width, 1))
            for l in 0...level {                         // encoder blocks
                let stride = stridesT[l]
                for i in 0..<downsT[l] { total += conv(i == 0 ? (l == 0 ? 1 : embWidth) : width, width, 2 * stride) + resnet }
                total += conv(width, embWidth, 3)
            }
            guard decoderLevels.contains(level) else { continue }
            for l in 0...level {                         // decoder blocks
                let stride = stridesT[l], count = downsT[l]
                total += conv(embWidth, width, 3)
                for i in 0..<count { total += resnet + conv(width, i == count - 1 ? embWidth : width, 2 * stride) }
            }
            total += conv(embWidth, 1, 3)
        }
        return total
    }

    /// Floats of activations per sample of a training crop: the widths of every stack summed over
    /// the resolutions they run at, calibrated (1.5 per float of the stacks, 250 for the input,
    /// losses and loader per sample).
    var activationFloatsPerSample: Double {
        var stacks = 0.0
        for level in 0..<levels {
            let width = Double(self.width * hvqvaeMultipliers[level]), depth = Double(self.depth * hvqvaeMultipliers[level])
            let inner = Double(Swift.max(1, Int(mConv * Float(width))))
            var resolution = 1.0
            for l in 0...level {
                for _ in 0..<downsT[l] {
                    resolution /= Double(stridesT[l])
                    stacks += 2 * resolution * (width + depth * (width + inner))   // encoder and decoder
                }
            }
        }
        return 1.5 * stacks + 250
    }

    /// Memory of a training run with `batch` crops of `sampleLength` samples.
    public func trainingMemory(batch: Int, sampleLength: Int) -> MemoryEstimate {
        let parameters = parameterCount
        let codebooks = Double(levels * lBins * (embWidth + 1) * 3 * 4)
        return MemoryEstimate(fixedBytes: 16 * Double(parameters) + codebooks,
                              bytesPerItem: 4 * Double(sampleLength) * activationFloatsPerSample,
                              batch: batch, parameters: parameters, item: "crops of \(sampleLength) samples")
    }

    /// Memory of the model's weights for encoding and decoding.
    public var weightBytes: Double { 4 * Double(parameterCount + levels * lBins * embWidth) }
}

extension PriorConfig {
    /// Parameters of the prior this config builds over a VQ-VAE of `levels` levels, with label
    /// tables of `artists` and `genres` entries.
    public func parameterCount(levels: Int, artists: Int, genres: Int) -> Int {
        let mlp = Int(mlpFactor * Float(width)), state = attentionWidth
        let layer = 4 * width                                              // two layer norms
            + width * 3 * state + 3 * state + state * width + width        // attention
            + width * mlp + mlp + mlp * width + width                      // MLP
        var total = bins * width + nCtx * width + depth * layer + (artists + genres) * width
        if isUpsampler(levels: levels) {
            let c = conditioner
            let resnet = c.depth * (conv(c.width, c.width, 3) + conv(c.width, c.width, 1))
            total += bins * width + conv(width, c.width, 3) + 2 * width
            for i in 0..<c.downT { total += resnet + conv(c.width, i == c.downT - 1 ? width : c.width, 4) }
        } else {
            total += 3 * tBins * width                                     // timing embeddings
        }
        if mergedDecoder { total += width * bins }
        return total
    }

    /// Floats of activations per token of a training window (calibrated, see the file's notes).
    func activationFloatsPerToken(upsampler: Bool) -> Double {
        let dense = attnOrder == 0 || attnOrder == 9
        let keys = Double(dense ? nCtx : Swift.max(blockLength, blocks))
        var perToken = Double(depth) * (10.5 * Double(width) + 4 * Double(heads) * keys) + 3 * Double(bins) + 6 * Double(width)
        if upsampler { perToken += 3 * Double(conditioner.depth * conditioner.downT * conditioner.width) }
        return 1.5 * perToken
    }

    /// Memory of a training run with `batch` windows, over a VQ-VAE of `levels` levels. Label
    /// tables are counted at their largest (`max_artists`, `max_genres`) unless given.
    public func trainingMemory(batch: Int, levels: Int, artists: Int? = nil, genres: Int? = nil) -> MemoryEstimate {
        let parameters = parameterCount(levels: levels, artists: artists ?? maxArtists, genres: genres ?? maxGenres)
        return MemoryEstimate(fixedBytes: 16 * Double(parameters), bytesPerItem: 4 * Double(nCtx) * activationFloatsPerToken(upsampler: isUpsampler(levels: levels)),
                              batch: batch, parameters: parameters, item: "windows of \(nCtx) tokens")
    }
}

/// Parameters of a convolution (weight and bias).
private func conv(_ input: Int, _ output: Int, _ kernel: Int) -> Int { kernel * input * output + output }
