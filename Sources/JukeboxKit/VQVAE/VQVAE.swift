// The three-level VQ-VAE (reference §1): a separate encoder, bottleneck and decoder per level,
// each over the raw waveform, with hops 8, 32 and 128 by default.
//
// Shapes: audio (B, T) with T a multiple of the top hop; latents of level L (B, T / hop_L, W);
// codes of level L (B, T / hop_L) as Int32.

import Foundation
import TensorCore
import ModelKit
import AudioDSP

/// Losses and figures of one training or evaluation step.
public struct VQVAEStep {
    /// The scalar to minimise: Σ_levels [lmix + multispectral] + commit · Σ commitment.
    public var loss: Tensor
    /// Per level: pointwise (lmix), multi-resolution spectral and commitment losses.
    public var lmix: [Float]
    public var spectral: [Float]
    public var commit: [Float]
    /// Per level quantiser figures.
    public var bottleneck: [BottleneckMetrics]
    /// Per level reconstruction (B, T), kept for metrics.
    public var reconstructions: [Tensor]
}

/// A VQ-VAE that another one extends, and how many of its levels (0..<levels) the extension
/// keeps unchanged.
public struct VQVAELineage: Equatable, Sendable {
    public var digest: String
    public var levels: Int

    public init(digest: String, levels: Int) {
        self.digest = digest
        self.levels = levels
    }

    /// `DIGEST:LEVELS` entries joined by commas, as checkpoints store them.
    static func format(_ lineage: [VQVAELineage]) -> String {
        lineage.map { "\($0.digest):\($0.levels)" }.joined(separator: ",")
    }

    static func parse(_ text: String, source: String) throws -> [VQVAELineage] {
        try text.split(separator: ",").map { entry in
            let parts = entry.split(separator: ":")
            guard parts.count == 2, let levels = Int(parts[1]), levels >= 1 else {
                throw ConfigError("\(source): metadata 'extends' entry '\(entry)' is not DIGEST:LEVELS")
            }
            return VQVAELineage(digest: String(parts[0]), levels: levels)
        }
    }
}

/// A hierarchical VQ-VAE of `config.levels` independent levels.
public final class VQVAE: Module {
    public let config: VQVAEConfig
    public let encoders: [Encoder]
    public let decoders: [Decoder]
    public let bottlenecks: [Bottleneck]
    /// Data statistics that normalise the losses (estimated from the training set).
    public var bandwidth: Bandwidth
    /// The digest recorded in the checkpoint this model was loaded from.
    public var loadedDigest: String?
    /// Levels whose decoder weights this model holds: all after training; a model bundle keeps
    /// only level 0's (sampling decodes level 0 alone), so the others stay uninitialised.
    public internal(set) var decoderLevels: [Int]

    /// Which weights these are, for code files: the checkpoint's recorded digest (it survives
    /// conversion to F16), or the digest of the current weights.
    public var identity: String { loadedDigest ?? digest }

    /// VQ-VAEs this one extends (`jukebox train vqvae --extend`): each with how many of its
    /// levels this one keeps unchanged, so their codes and the priors over them stay valid.
    public var lineage: [VQVAELineage] = []

    /// Whether codes of `levels` made by the VQ-VAE with digest `digest` are this one's codes:
    /// it is that VQ-VAE, or extends it and kept those levels unchanged.
    public func accepts(digest: String, levels: [Int]) -> Bool {
        digest == identity || lineage.contains { ancestor in ancestor.digest == digest && levels.allSatisfy { $0 < ancestor.levels } }
    }

    /// A freshly initialised model; `seed` fixes every initial weight.
    public init(config: VQVAEConfig, seed: UInt64, bandwidth: Bandwidth = Bandwidth(l2: 1, l1: 1, spec: 1)) {
        self.config = config
        self.bandwidth = bandwidth
        decoderLevels = Array(0..<config.levels)
        var generator = RandomGenerator(seed: seed)
        encoders = (0..<config.levels).map { Encoder(config: config, level: $0, generator: &generator) }
        decoders = (0..<config.levels).map { Decoder(config: config, level: $0, generator: &generator) }
        bottlenecks = (0..<config.levels).map { _ in
            Bottleneck(bins: config.lBins, width: config.embWidth, mu: config.lMu, threshold: config.revivalThreshold)
        }
    }

    /// Samples per code of each level.
    public var hops: [Int] { config.hops }

    /// The trainable weights (codebooks are learned by EMA and listed in ``stateTensors()``).
    public func namedParameters() -> [NamedParameter] { namedParameters(levels: Array(0..<config.levels)) }

    /// The weights of the encoders and decoders of `levels`, in the order of
    /// ``namedParameters()``.
    public func namedParameters(levels: [Int]) -> [NamedParameter] {
        var p: [NamedParameter] = []
        for l in levels { p += parameters(of: encoders[l], prefix: "encoders.\(l)") }
        for l in levels { p += parameters(of: decoders[l], prefix: "decoders.\(l)") }
        return p
    }

    /// Weights and codebooks: all that encoding and decoding need (the decoders of
    /// ``decoderLevels`` only).
    public func inferenceTensors() -> [(String, Tensor)] {
        let levels = Array(0..<config.levels)
        var tensors = levels.flatMap { parameters(of: encoders[$0], prefix: "encoders.\($0)") }
        tensors += decoderLevels.flatMap { parameters(of: decoders[$0], prefix: "decoders.\($0)") }
        return tensors.map { ($0.name, $0.tensor) } + stateTensors().filter { $0.0.hasSuffix(".codebook") }
    }

    /// Throws unless this model holds the decoders of `levels`; `source` names the file it came from.
    public func requireDecoders(_ levels: [Int], source: String) throws {
        if let missing = levels.first(where: { !decoderLevels.contains($0) }) {
            throw ConfigError("\(source): holds no level-\(missing) decoder (a model bundle's VQ-VAE keeps only level 0's; "
                              + "use the training checkpoint)")
        }
    }

    /// Codebooks and their EMA state, by name.
    public func stateTensors() -> [(String, Tensor)] {
        bottlenecks.enumerated().flatMap { l, b in
            [("bottlenecks.\(l).codebook", b.codebook), ("bottlenecks.\(l).k_sum", b.kSum), ("bottlenecks.\(l).k_elem", b.kElem)]
        }
    }

    /// Losses of one batch `audio (B, T)` over `levels` (default all; a VQ-VAE that extends
    /// another trains only its new levels). In training the codebooks initialise and update.
    /// The per-level figures follow the order of `levels`.
    public func step(_ audio: Tensor, training: Bool, levels: [Int]? = nil, generator: inout RandomGenerator) -> VQVAEStep {
        precondition(audio.rank == 2 && audio.shape[1] % hops.last! == 0,
                     "VQVAE: audio \(audio.shape) must be (B, T) with T a multiple of \(hops.last!)")
        let (B, T) = (audio.shape[0], audio.shape[1])
        let input = audio.reshaped([B, T, 1])
        var total: Tensor?
        var result = VQVAEStep(loss: Tensor(scalar: 0), lmix: [], spectral: [], commit: [], bottleneck: [], reconstructions: [])
        for level in levels ?? Array(0..<config.levels) {
            let latents = encoders[level](input)
            let q = bottlenecks[level](latents, training: training, generator: &generator)
            let reconstruction = decoders[level](q.output).reshaped([B, T])
            let lmix = SpectralLoss.lmix(reconstruction, audio, bandwidth: bandwidth, topK: config.linfK, topKWeight: config.lmixLinf)
            let spectral = SpectralLoss.multiResolution(reconstruction, audio, bandwidth: bandwidth)
            var levelLoss = lmix * config.lmixL2 + spectral * config.multispectral
            levelLoss = levelLoss + q.commitLoss * config.commit
            total = total.map { $0 + levelLoss } ?? levelLoss
            result.lmix.append(lmix.item)
            result.spectral.append(spectral.item)
            result.commit.append(q.commitLoss.item)
            result.bottleneck.append(q.metrics)
            result.reconstructions.append(reconstruction.detached())
        }
        result.loss = total!
        return result
    }

    /// Codes of `audio (B, T)` at `level` (T a multiple of that level's hop), `(B, T / hop)`.
    /// `origin` is the audio's first sample in a longer signal encoded in windows (a multiple
    /// of the hop): codes that see only samples inside the window then equal the whole
    /// signal's exactly.
    public func encode(_ audio: Tensor, level: Int, origin: Int = 0) -> [Int32] {
        Tensor.withoutGrad {
            let (B, T) = (audio.shape[0], audio.shape[1])
            precondition(T % hops[level] == 0, "VQVAE.encode: length \(T) is not a multiple of hop \(hops[level])")
            precondition(origin % hops[level] == 0, "VQVAE.encode: origin \(origin) is not a multiple of hop \(hops[level])")
            let latents = encoders[level](audio.reshaped([B, T, 1]), origin: origin)   // (B, T / hop, W)
            let n = latents.shape[1]
            // Each item quantised on its own, so its blocks lie on its own sequence's grid.
            var codes: [Int32] = []
            codes.reserveCapacity(B * n)
            for b in 0..<B {
                codes += bottlenecks[level].quantize(latents.data + b * n * config.embWidth, rows: n,
                                                     origin: origin / hops[level]).codes
            }
            return codes
        }
    }

    /// Audio `(B, n · hop)` from `codes (B, n)` of `level`. Codes must be in `0..<l_bins`.
    /// `origin` is the first code's position in a longer sequence decoded in windows.
    public func decode(_ codes: [Int32], batch: Int, level: Int, origin: Int = 0) -> Tensor {
        precondition(decoderLevels.contains(level), "VQVAE.decode: no level-\(level) decoder")
        return Tensor.withoutGrad {
            let n = codes.count / batch
            let latents = bottlenecks[level].dequantize(codes).reshaped([batch, n, config.embWidth])
            let audio = decoders[level](latents, origin: origin)
            return audio.reshaped([batch, n * hops[level]])
        }
    }

    /// Input samples beyond its own span that a code of `level` depends on.
    public func encoderReach(level: Int) -> Int { encoders[level].receptiveReach }

    /// Codes beyond its own that a decoded sample of `level` depends on.
    public func decoderReach(level: Int) -> Int { decoders[level].receptiveReach }
}
