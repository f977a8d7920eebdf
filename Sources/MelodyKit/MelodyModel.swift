// A melody model folder: the VAE and a prior over sequences of its latents (the diffusion model
// or the autoregressive TransformerMDN baseline, told apart by the prior checkpoint's kind), with
// the prior's latent transform, named by `melody.json`. Generating: the prior samples sequences
// of latents, the transform's inverse restores full latents (noise in the dropped dimensions, as
// the reference does), and the VAE decodes each 2-bar latent by argmax. Infilling: a melody's
// other chunks are encoded; the diffusion prior generates the chosen ones while the known ones
// are re-noised and pasted at every step; the MDN, which reads left to right, only continues a
// melody (it generates the chosen chunks when no kept chunk follows them).

import Foundation
import TensorCore
import ModelKit
import MIDI

/// The prior of a melody model folder.
public enum MelodyPrior {
    /// The latent diffusion model: DDPM or DDIM sampling, infilling of any chunks.
    case diffusion(Denoiser)
    /// The autoregressive TransformerMDN: one latent at a time, continuation only.
    case mdn(TransformerMDN)

    /// Latents per sequence.
    public var length: Int {
        switch self {
        case .diffusion(let model): model.config.length
        case .mdn(let model): model.config.length
        }
    }

    /// The file name a model folder stores the prior under.
    var fileName: String {
        switch self {
        case .diffusion: "diffusion.safetensors"
        case .mdn: "mdn.safetensors"
        }
    }

    /// The prior in `checkpoint`, of either kind, for `vae`, and its latent transform.
    static func load(_ checkpoint: Checkpoint, vae: MelodyVAE) throws -> (MelodyPrior, LatentTransform) {
        switch checkpoint.kind {
        case Denoiser.checkpointKind:
            let (model, transform) = try Denoiser.load(checkpoint, vae: vae)
            return (.diffusion(model), transform)
        case TransformerMDN.checkpointKind:
            let (model, transform) = try TransformerMDN.load(checkpoint, vae: vae)
            return (.mdn(model), transform)
        default:
            throw ConfigError("\(checkpoint.path): is a \(checkpoint.kind.isEmpty ? "unknown" : checkpoint.kind) checkpoint, "
                              + "not a melody prior (\(Denoiser.checkpointKind) or \(TransformerMDN.checkpointKind))")
        }
    }
}

/// The VAE and prior of a melody model folder.
public struct MelodyModel {
    public static let manifestName = "melody.json"
    public static let format = "jukebox-melody-model"

    public let path: String
    public let vae: MelodyVAE
    public let prior: MelodyPrior
    public let transform: LatentTransform

    struct Manifest: Codable {
        var format: String
        var version: Int
        var vae: String
        var prior: String
    }

    /// Loads the folder at `path`; the prior must have been trained on this VAE's latents.
    public init(path: String) throws {
        self.path = path
        let manifestPath = path + "/" + MelodyModel.manifestName
        guard let data = FileManager.default.contents(atPath: manifestPath) else {
            throw ConfigError("\(path): no \(MelodyModel.manifestName); not a melody model folder")
        }
        guard let manifest = try? JSONDecoder().decode(Manifest.self, from: data), manifest.format == MelodyModel.format,
              manifest.version == 1 else {
            throw ConfigError("\(manifestPath): not a version-1 \(MelodyModel.format) manifest")
        }
        for name in [manifest.vae, manifest.prior] where name.isEmpty || name.contains("/") || name.hasPrefix(".") {
            throw ConfigError("\(manifestPath): '\(name)' is not a plain file name in the folder")
        }
        vae = try MelodyVAE.load(path + "/" + manifest.vae)
        (prior, transform) = try MelodyPrior.load(Checkpoint.read(path + "/" + manifest.prior), vae: vae)
    }

    /// Writes a model folder from training checkpoints (weights only, F16 when `storeAs` says).
    public static func assemble(vae vaePath: String, prior priorPath: String, into directory: String,
                                storeAs: SafetensorsDType = .f32) throws {
        let vae = try MelodyVAE.load(vaePath)
        let prior = try Checkpoint.read(priorPath)
        let fileName = try MelodyPrior.load(prior, vae: vae).0.fileName
        try OutputFolder.prepare(directory)
        let vaeCheckpoint = try Checkpoint.read(vaePath, kind: "melody-vae")
        try Checkpoint.write(directory + "/vae.safetensors", kind: "melody-vae", config: try vaeCheckpoint.require("config"),
                             step: vaeCheckpoint.step, tensors: vae.namedParameters().map { ($0.name, $0.tensor) },
                             metadata: ["digest": vae.digest], storeAs: storeAs)
        let weights = prior.tensors.filter { !$0.key.hasPrefix("optim.") }.sorted { $0.key < $1.key }
        // The VAE's digest is of its weights as the bundle stores them.
        let stored = try MelodyVAE.load(directory + "/vae.safetensors")
        try Checkpoint.write(directory + "/" + fileName, kind: prior.kind, config: try prior.require("config"),
                             step: prior.step, tensors: weights.map { ($0.key, $0.value) },
                             metadata: ["transform": try prior.require("transform"), "vae": stored.digest], storeAs: storeAs)
        let manifest = Manifest(format: format, version: 1, vae: "vae.safetensors", prior: fileName)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(manifest).write(to: URL(fileURLWithPath: directory + "/" + manifestName), options: .atomic)
    }

    /// Latents per sequence and bars they cover.
    public var maximumBars: Int { prior.length * 2 }

    /// `count` melodies of `bars` bars (even, at most ``maximumBars``). A diffusion prior
    /// samples with DDPM over every step (`steps` nil) or DDIM over `steps` steps with noise
    /// `eta`; an MDN draws one latent at a time and takes neither (`steps` nil, `eta` 0).
    /// `progress` counts denoising steps or latents.
    public func sample(count: Int, bars: Int, steps: Int?, eta: Double, seed: UInt64,
                       progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> [Melody] {
        guard bars >= 2, bars % 2 == 0, bars <= maximumBars else {
            throw MelodyModelError.bars("\(bars) must be an even number in 2...\(maximumBars) (the model's sequences hold \(prior.length) 2-bar latents)")
        }
        var generator = RandomGenerator(seed: seed)
        let x: Tensor
        switch prior {
        case .diffusion(let denoiser):
            x = DiffusionSampler(model: denoiser).sample(count: count, steps: steps, eta: eta, generator: &generator, progress: progress)
        case .mdn(let model):
            try MelodyModel.refuseDiffusionSettings(steps: steps, eta: eta)
            // Left to right, the first bars / 2 latents need nothing after them.
            x = MDNSampler(model: model).sample(count: count, length: bars / 2, generator: &generator, progress: progress)
        }
        return decode(x, chunks: bars / 2, generator: &generator)
    }

    static func refuseDiffusionSettings(steps: Int?, eta: Double) throws {
        guard steps == nil && eta == 0 else {
            throw MelodyModelError.unsupported("DDIM steps and eta apply to a diffusion prior; this model's prior is the "
                                               + "autoregressive TransformerMDN, which draws one latent at a time")
        }
    }

    /// `melody` with bars `bars` (1-based, inclusive, on 2-bar chunk boundaries) generated
    /// anew and the rest kept, over the first ``maximumBars`` bars. A diffusion prior infills any
    /// bars (DDPM or DDIM as in ``sample(count:bars:steps:eta:seed:progress:)``); an MDN only
    /// continues: `bars` must run to ``maximumBars``, and the bars before them are its prefix.
    public func infill(_ melody: Melody, bars: ClosedRange<Int>, steps: Int?, eta: Double, seed: UInt64) throws -> Melody {
        try infill([melody], bars: bars, steps: steps, eta: eta, seed: seed)[0]
    }

    /// How the bars of an infilling are made.
    public enum InfillMethod: String, CaseIterable, Sendable {
        /// The prior generates them: the diffusion model with the known latents re-noised and
        /// pasted at every step (the paper's infilling), or the MDN continuing the bars before.
        case prior
        /// The baseline: the latents of the generated chunks on the straight line between the
        /// last kept chunk before them and the first kept chunk after them (full latents, as
        /// encoded), decoded by the VAE.
        case interpolate
    }

    /// Infilling of several melodies in one batch (see the single-melody form); the same bars of
    /// each. Melodies shorter than ``maximumBars`` are an error naming their index.
    public func infill(_ melodies: [Melody], bars: ClosedRange<Int>, steps: Int?, eta: Double, seed: UInt64,
                       method: InfillMethod = .prior, progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> [Melody] {
        let L = prior.length, T = vae.config.steps, Z = vae.config.zSize, N = melodies.count
        guard bars.lowerBound >= 1, bars.lowerBound % 2 == 1, bars.upperBound % 2 == 0, bars.upperBound <= maximumBars else {
            throw MelodyModelError.bars("\(bars.lowerBound)-\(bars.upperBound) must start on an odd bar and end on an even one, within 1-\(maximumBars)")
        }
        let generated = ((bars.lowerBound - 1) / 2)...((bars.upperBound - 1) / 2)
        switch method {
        case .prior:
            if case .mdn = prior, generated.upperBound < L - 1 {
                throw MelodyModelError.bars("\(bars.lowerBound)-\(bars.upperBound): the prior is the autoregressive TransformerMDN, which "
                                            + "generates left to right: it can regenerate bars \(bars.lowerBound)-\(maximumBars), keeping those "
                                            + "before, but not bars with kept bars after them")
            }
        case .interpolate:
            guard generated.lowerBound >= 1, generated.upperBound <= L - 2 else {
                throw MelodyModelError.bars("\(bars.lowerBound)-\(bars.upperBound): interpolation needs kept bars on both sides, within 3-\(maximumBars - 2)")
            }
        }
        var chunks: [[Melody]] = []
        for (i, melody) in melodies.enumerated() {
            let c = melody.chunks(steps: T)
            guard c.count >= L else {
                throw MelodyModelError.tooShort("melody \(i + 1) has \(c.count * 2) whole bars; infilling needs \(maximumBars)")
            }
            chunks.append(Array(c.prefix(L)))
        }
        let latents = MelodyLatents.encode(chunks.map { Melody(events: $0.flatMap(\.events)) }, sources: melodies.indices.map { "\($0)" },
                                           model: vae, seed: seed)
        var generator = RandomGenerator(seed: seed ^ 0x1F1)
        var made: [Melody]
        if method == .interpolate {
            let (before, after) = (generated.lowerBound - 1, generated.upperBound + 1)
            var z: [Float] = []
            for n in 0..<N {
                for c in generated {
                    let t = Float(c - before) / Float(after - before)
                    for d in 0..<Z { z.append((1 - t) * latents.z[(n * L + before) * Z + d] + t * latents.z[(n * L + after) * Z + d]) }
                }
            }
            let events = vae.greedyDecode(Tensor(z, shape: [N * generated.count, Z]), steps: T)
            // Decoded events of the generated chunks, placed at their chunks (the rest is kept below).
            made = (0..<N).map { n in
                var all = [UInt8](repeating: Melody.noEvent, count: L * T)
                for (k, c) in generated.enumerated() {
                    for s in 0..<T { all[c * T + s] = UInt8(events[(n * generated.count + k) * T + s]) }
                }
                return Melody(events: all)
            }
        } else {
            // The melodies' latents (clipped to the range the prior was trained on), one row per chunk.
            let known = (0..<(N * L)).flatMap { r in transform.forward(latents.z[(r * Z)..<((r + 1) * Z)]).map { Swift.min(1, Swift.max(-1, $0)) } }
            let x: Tensor
            switch prior {
            case .diffusion(let denoiser):
                let D = denoiser.config.latentDims
                let mask = (0..<N).flatMap { _ in (0..<L).flatMap { c in [Float](repeating: generated.contains(c) ? 0 : 1, count: D) } }
                x = DiffusionSampler(model: denoiser).sample(count: N, steps: steps, eta: eta, generator: &generator,
                                                             keep: (known, mask), progress: progress)
            case .mdn(let model):
                try MelodyModel.refuseDiffusionSettings(steps: steps, eta: eta)
                let P = generated.lowerBound, D = model.config.latentDims
                let prefix = P > 0 ? Tensor((0..<N).flatMap { n in known[(n * L * D)..<((n * L + P) * D)] }, shape: [N, P, D]) : nil
                x = MDNSampler(model: model).sample(count: N, prefix: prefix, generator: &generator, progress: progress)
            }
            made = decode(x, chunks: L, generator: &generator)
        }
        // Known chunks keep their own events; generated ones take the made events.
        return (0..<N).map { n in
            var events: [UInt8] = []
            for c in 0..<L { events += generated.contains(c) ? Array(made[n].events[(c * T)..<((c + 1) * T)]) : chunks[n][c].events }
            return Melody(events: events)
        }
    }

    /// Sequences `(N, L, D)` → melodies of their first `chunks` latents.
    func decode(_ x: Tensor, chunks: Int, generator: inout RandomGenerator) -> [Melody] {
        let (N, L, D) = (x.shape[0], x.shape[1], x.shape[2]), Z = vae.config.zSize, T = vae.config.steps
        var z: [Float] = []
        for n in 0..<N {
            for c in 0..<chunks { z += transform.inverse(x.array[((n * L + c) * D)..<((n * L + c + 1) * D)], generator: &generator) }
        }
        let events = vae.greedyDecode(Tensor(z, shape: [N * chunks, Z]), steps: T)
        return (0..<N).map { n in Melody(events: events[(n * chunks * T)..<((n + 1) * chunks * T)].map { UInt8($0) }) }
    }
}

/// A generation request that does not fit the model.
public enum MelodyModelError: Error, CustomStringConvertible {
    case bars(String)
    case tooShort(String)
    /// Something this model's prior cannot do.
    case unsupported(String)

    public var description: String {
        switch self {
        case .bars(let text): "bars: \(text)"
        case .tooShort(let text), .unsupported(let text): text
        }
    }
}

extension LatentPrior {
    /// Loads a checkpoint of this prior for `vae`: the model and its latent transform.
    public static func load(_ path: String, vae: MelodyVAE) throws -> (Self, LatentTransform) {
        try load(Checkpoint.read(path, kind: checkpointKind), vae: vae)
    }

    /// The model in `checkpoint` (of this prior's kind) and its latent transform, which must fit
    /// its config and `vae`, whose latents it must have been trained on.
    static func load(_ checkpoint: Checkpoint, vae: MelodyVAE) throws -> (Self, LatentTransform) {
        let path = checkpoint.path
        let config = try Config.decode(Data(try checkpoint.require("config").utf8), source: path)
        guard config.latentDims >= 1,
              let transform = try? JSONDecoder().decode(LatentTransform.self, from: Data(try checkpoint.require("transform").utf8)),
              transform.zSize == vae.config.zSize, transform.kept.count == config.latentDims,
              transform.kept.allSatisfy({ (0..<transform.zSize).contains($0) }), transform.minimum < transform.maximum else {
            throw ConfigError("\(path): metadata 'transform' does not fit its config and the VAE")
        }
        guard checkpoint.metadata["vae"] == vae.digest else {
            throw ConfigError("\(path): was trained on latents of VAE \(checkpoint.metadata["vae"] ?? "?"), not this one (\(vae.digest))")
        }
        let model = Self(config: config, seed: 0)
        try checkpoint.requireRoom(forParameters: model.parameterCount)
        try checkpoint.load(into: model.namedParameters().map { ($0.name, $0.tensor) })
        return (model, transform)
    }
}
