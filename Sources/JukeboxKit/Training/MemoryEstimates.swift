// Memory estimates of the Jukebox models from their configs, made before anything is allocated.
//
// Parameter counts mirror the constructors exactly (a test compares them with built models).
// The activations of a step grow linearly with the batch and the crop or context; their
// coefficients come from the structure of the stacks and were calibrated against the measured
// peak of tensor memory (`TensorStorage.peakBytes`) of real steps, with a margin: the test
// asserts that every estimate lies between that peak and 2.5 times it.

import Foundation
import ModelKit

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
            let resnet = depth * (convolutionParameters(width, inner, 3) + convolutionParameters(inner, width, 1))
            for l in 0...level {                         // encoder blocks
                let stride = stridesT[l]
                for i in 0..<downsT[l] { total += convolutionParameters(i == 0 ? (l == 0 ? 1 : embWidth) : width, width, 2 * stride) + resnet }
                total += convolutionParameters(width, embWidth, 3)
            }
            guard decoderLevels.contains(level) else { continue }
            for l in 0...level {                         // decoder blocks
                let stride = stridesT[l], count = downsT[l]
                total += convolutionParameters(embWidth, width, 3)
                for i in 0..<count { total += resnet + convolutionParameters(width, i == count - 1 ? embWidth : width, 2 * stride) }
            }
            total += convolutionParameters(embWidth, 1, 3)
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
            let resnet = c.depth * (convolutionParameters(c.width, c.width, 3) + convolutionParameters(c.width, c.width, 1))
            total += bins * width + convolutionParameters(width, c.width, 3) + 2 * width
            for i in 0..<c.downT { total += resnet + convolutionParameters(c.width, i == c.downT - 1 ? width : c.width, 4) }
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

