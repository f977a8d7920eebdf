// `jukebox import openai`: OpenAI's released Jukebox checkpoints (`*.pth.tar`, either torch
// format) converted into a model bundle. The file is read by the safe TorchCheckpoint reader;
// every key and shape is checked against what our config of the model expects (all missing,
// extra and mis-shaped tensors named together); widths, context lengths and vocabularies come
// from the checkpoint's `hps` (the official preset where a key is absent), so micro models and
// fine-tunes with the official structure import by the same path. Priors are written tensor
// by tensor: peak memory stays near one tensor.

import Foundation
import TensorCore
import ModelKit
import TorchCheckpoint

/// Which released model a folder holds: its levels' layout (attention order, lyrics style).
public enum OpenAIModel: String, CaseIterable, Sendable {
    case fiveB = "5b"
    case fiveBLyrics = "5b_lyrics"
    case oneBLyrics = "1b_lyrics"

    /// The top prior's file, relative to the download folder (OpenAI's layout).
    public var topPriorFile: String { "\(rawValue)/prior_level_2.pth.tar" }
    /// The files the three models share.
    public static let vqvaeFile = "5b/vqvae.pth.tar"
    public static func upsamplerFile(level: Int) -> String { "5b/prior_level_\(level).pth.tar" }
}

/// A problem with an official checkpoint, in the file's terms.
public struct OpenAIImportError: Error, CustomStringConvertible, Equatable {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// An official checkpoint opened for import: its `model` tensors by name (a leading `module.`
/// removed, as Jukebox's `restore_model` does) and its `hps`.
public struct OpenAICheckpoint {
    public let path: String
    public let file: TorchFile
    public let tensors: [String: TorchTensor]
    let hps: PickleValue?

    public init(path: String) throws {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else { throw OpenAIImportError("\(path): no such file") }
        file = try TorchFile(path: path)
        guard case .dict(let model)? = file.root["model"] else {
            throw OpenAIImportError("\(path): holds no 'model' state dict (not a Jukebox checkpoint)")
        }
        var tensors: [String: TorchTensor] = [:]
        for (key, value) in model.entries {
            guard case .tensor(let t) = value else {
                throw OpenAIImportError("\(path): model entry '\(key)' is \(value.kindDescription), not a tensor")
            }
            var name = key.description
            if name.hasPrefix("module.") { name.removeFirst("module.".count) }
            tensors[name] = t
        }
        self.tensors = tensors
        hps = file.root["hps"]
    }

    /// An integer of `hps`, or `fallback` (the official preset's) when the key is absent or None.
    func int(_ key: String, _ fallback: Int) throws -> Int {
        switch hps?[key] {
        case nil, .none?: return fallback
        case .int(let v)?: return Int(v)
        case .bool(let b)?: return b ? 1 : 0
        case let other?: throw OpenAIImportError("\(path): hps '\(key)' is \(other.kindDescription), not an integer")
        }
    }

    func float(_ key: String, _ fallback: Double) throws -> Double {
        switch hps?[key] {
        case nil, .none?: return fallback
        case .int(let v)?: return Double(v)
        case .float(let v)?: return v
        case let other?: throw OpenAIImportError("\(path): hps '\(key)' is \(other.kindDescription), not a number")
        }
    }

    func bool(_ key: String, _ fallback: Bool) throws -> Bool {
        switch hps?[key] {
        case nil, .none?: return fallback
        case .bool(let b)?: return b
        case .int(let v)?: return v != 0
        case let other?: throw OpenAIImportError("\(path): hps '\(key)' is \(other.kindDescription), not a bool")
        }
    }

    func ints(_ key: String, _ fallback: [Int]) throws -> [Int] {
        let items: [PickleValue]
        switch hps?[key] {
        case nil, .none?: return fallback
        case .tuple(let t)?: items = t.items
        case .list(let l)?: items = l.items
        case let other?: throw OpenAIImportError("\(path): hps '\(key)' is \(other.kindDescription), not a list of integers")
        }
        return try items.map { item in
            guard case .int(let v) = item else { throw OpenAIImportError("\(path): hps '\(key)' holds \(item.kindDescription)") }
            return Int(v)
        }
    }

    /// Rows of the tensor `name` (for sizes no `hps` key states reliably), or nil when absent.
    func rows(_ name: String) -> Int? { tensors[name]?.shape.first }

    /// Checks the file's tensors against `expected`, strictly: every missing, extra and
    /// mis-shaped tensor is named, one per line, in a single error.
    public func check(_ expected: [OpenAITensorMapping], model: String) throws {
        var problems: [String] = []
        var seen = Set<String>()
        for m in expected {
            seen.insert(m.officialName)
            guard let t = tensors[m.officialName] else { problems.append("missing tensor '\(m.officialName)' \(m.officialShape)"); continue }
            if t.shape != m.officialShape {
                problems.append("tensor '\(m.officialName)' has shape \(t.shape), \(model) expects \(m.officialShape)")
            } else if !t.isFloat {
                problems.append("tensor '\(m.officialName)' is \(t.dtype.rawValue), not a float tensor")
            }
        }
        for name in tensors.keys.sorted() where !seen.contains(name) {
            problems.append("unexpected tensor '\(name)' \(tensors[name]!.shape) (not part of \(model))")
        }
        guard problems.isEmpty else {
            throw OpenAIImportError("\(path): does not hold \(model) (\(problems.count) problem\(problems.count == 1 ? "" : "s")):\n  "
                                    + problems.joined(separator: "\n  "))
        }
    }

    /// The tensor of mapping `m` in our layout.
    func converted(_ m: OpenAITensorMapping) -> Tensor {
        let t = tensors[m.officialName]!
        return Tensor(m.layout.convert(t.floatValues()!, shape: t.shape), shape: m.layout.shape(t.shape))
    }
}

private extension TorchTensor {
    /// Whether the values are floats (checked before any is read).
    var isFloat: Bool { [.f32, .f16, .bf16, .f64].contains(dtype) }
}

/// The conversion itself: configs from `hps`, checked tensors, our files.
public enum OpenAIImport {
    /// Our config of the official VQ-VAE in `checkpoint` (the `vqvae` preset, widths from hps).
    public static func vqvaeConfig(_ checkpoint: OpenAICheckpoint) throws -> VQVAEConfig {
        let h = checkpoint
        var c = VQVAEConfig()
        c.comment = "imported from OpenAI's Jukebox (\((h.path as NSString).lastPathComponent))"
        c.sampleRate = try h.int("sr", 44100)
        c.downsT = try h.ints("downs_t", [3, 2, 2])
        c.stridesT = try h.ints("strides_t", [2, 2, 2])
        c.embWidth = try h.int("emb_width", 64)
        c.lBins = try h.int("l_bins", 2048)
        c.lMu = Float(try h.float("l_mu", 0.99))
        c.width = try h.int("width", 32)
        c.depth = try h.int("depth", 4)
        c.hvqvaeMultipliers = try h.ints("hvqvae_multipliers", [2, 1, 1])
        c.mConv = Float(try h.float("m_conv", 1.0))
        c.dilationGrowthRate = try h.int("dilation_growth_rate", 3)
        c.dilationCycle = try h.int("dilation_cycle", 0)
        guard try h.bool("vqvae_reverse_decoder_dilation", true) else {
            throw OpenAIImportError("\(h.path): hps 'vqvae_reverse_decoder_dilation' is False; our decoders reverse dilations")
        }
        do { try c.validate() } catch { throw OpenAIImportError("\(h.path): its hps give an unusable VQ-VAE config: \(error)") }
        return c
    }

    /// The VQ-VAE in `checkpoint`, all levels' decoders, in memory (it is small: 1.5 M parameters).
    public static func vqvae(_ checkpoint: OpenAICheckpoint) throws -> VQVAE {
        let config = try vqvaeConfig(checkpoint)
        let mappings = OpenAIMapping.vqvae(config)
        try checkpoint.check(mappings, model: "the official VQ-VAE")
        let model = VQVAE(config: config, seed: 0)
        var targets: [String: Tensor] = [:]
        for p in model.namedParameters() { targets[p.name] = p.tensor }
        for (name, t) in model.stateTensors() where name.hasSuffix(".codebook") { targets[name] = t }
        for m in mappings {
            let source = checkpoint.converted(m)
            guard let target = targets.removeValue(forKey: m.name), target.shape == source.shape else {
                preconditionFailure("OpenAIImport: mapping of '\(m.officialName)' to '\(m.name)' does not fit our VQ-VAE")
            }
            target.data.update(from: source.data, count: target.count)
        }
        precondition(targets.isEmpty, "OpenAIImport: our VQ-VAE has tensors no official key fills: \(targets.keys.sorted())")
        for b in model.bottlenecks { b.initialized = true }
        return model
    }

    /// Our config of the prior or upsampler in `checkpoint` for `model`'s layout, and its label
    /// vocabulary sizes (artists, genres). `vqvae` gives the hops between levels.
    public static func priorConfig(_ h: OpenAICheckpoint, level: Int, model: OpenAIModel,
                                   vqvae: VQVAEConfig) throws -> (config: PriorConfig, artists: Int, genres: Int) {
        guard level < 2 || model == .fiveB else {
            throw OpenAIImportError("\(h.path): the \(model.rawValue) top prior needs lyrics conditioning (attention order "
                                    + "\(model == .fiveBLyrics ? 10 : 12), lyric \(model == .fiveBLyrics ? "encoder and cross-attention" : "tokens in the sequence")), "
                                    + "which this port does not implement yet")
        }
        let upsampler = level < vqvae.levels - 1
        var c = PriorConfig()
        c.comment = "imported from OpenAI's Jukebox (\(model.rawValue), \((h.path as NSString).lastPathComponent))"
        c.level = try h.int("level", level)
        guard c.level == level else { throw OpenAIImportError("\(h.path): hps 'level' is \(c.level), the file is level \(level)'s") }
        // The codebook size is the VQ-VAE's: hps 'l_bins' of a prior file holds the default, not it.
        c.bins = h.rows("prior.x_emb.weight") ?? vqvae.lBins
        c.nCtx = try h.int("n_ctx", 8192)
        c.width = try h.int("prior_width", upsampler ? 1920 : 4800)
        c.depth = try h.int("prior_depth", 72)
        c.heads = try h.int("heads", upsampler ? 1 : 8)
        c.blocks = try h.int("blocks", 128)
        c.attnOrder = try h.int("attn_order", 2)
        c.attnWidthFactor = Float(try h.float("m_attn", 0.25))
        c.mlpFactor = Float(try h.float("m_mlp", 1.0))
        c.initScale = Float(try h.float("init_scale", upsampler ? 0.4 : 0.1))
        c.mergedDecoder = try h.bool("merged_decoder", !upsampler)
        let yBins = try h.ints("y_bins", [120, 4111])
        guard yBins.count == 2 else { throw OpenAIImportError("\(h.path): hps 'y_bins' is not (genres, artists)") }
        c.maxGenres = yBins[0]
        c.maxArtists = yBins[1]
        c.maxBowGenreSize = try h.int("max_bow_genre_size", 5)
        c.tBins = try h.int("t_bins", 128)
        c.minDuration = Float(try h.float("min_duration", 60))
        c.maxDuration = Float(try h.float("max_duration", 600))
        if upsampler {
            c.conditioner.width = try h.int("cond_width", 1024)
            c.conditioner.depth = try h.int("cond_depth", 16)
            c.conditioner.dilationCycle = try h.int("cond_dilation_cycle", 8)
            c.conditioner.downT = vqvae.downsT[level + 1]
            // Jukebox's cond_res_scale=True scales every residual branch by 1/√depth.
            c.conditioner.resScale = try h.bool("cond_res_scale", level == 1) ? 1 / Float(c.conditioner.depth).squareRoot() : 1
            for (key, value, ours) in [("cond_dilation_growth_rate", try h.float("cond_dilation_growth_rate", 3), 3.0),
                                       ("cond_m_conv", try h.float("cond_m_conv", 1), 1.0)] where value != ours {
                throw OpenAIImportError("\(h.path): hps '\(key)' is \(value); our conditioner has \(ours)")
            }
            guard vqvae.stridesT[level + 1] == 2 else {
                throw OpenAIImportError("\(h.path): the conditioner upsamples by stride \(vqvae.stridesT[level + 1]); ours by 2")
            }
        }
        for (key, value) in [("use_tokens", try h.bool("use_tokens", false)), ("single_enc_dec", try h.bool("single_enc_dec", false)),
                             ("pos_init", try h.bool("pos_init", false)), ("copy_input", try h.bool("copy_input", false))] where value {
            throw OpenAIImportError("\(h.path): hps '\(key)' is True, which the \(model.rawValue) layout at level \(level) does not use")
        }
        do { try c.validate() } catch { throw OpenAIImportError("\(h.path): its hps give an unusable prior config: \(error)") }
        return (c, yBins[1], yBins[0])
    }

    /// Label names for `artists` and `genres` ids, id 0 "unknown" as in Jukebox's id files:
    /// from OpenAI's id files in `idsFolder` (`v2_artist_ids.txt`, `v2_genre_ids.txt`, or v3 for
    /// 1b_lyrics; lines `name;id`, the first name of an id kept) when given, else placeholders
    /// (`artist_<id>`, `genre_<id>`). The id files are OpenAI's (non-commercial): never shipped here.
    public static func vocabulary(artists: Int, genres: Int, idsFolder: String? = nil,
                                  model: OpenAIModel = .fiveB) throws -> LabelVocabulary {
        var vocabulary = LabelVocabulary()
        vocabulary.artists = [LabelVocabulary.unknown] + (1..<artists).map { "artist_\($0)" }
        vocabulary.genres = [LabelVocabulary.unknown] + (1..<genres).map { "genre_\($0)" }
        guard let idsFolder else { return vocabulary }
        let version = model == .oneBLyrics ? "v3" : "v2"
        func names(_ kind: String, count: Int) throws -> [String] {
            let path = "\(idsFolder)/\(version)_\(kind)_ids.txt"
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw OpenAIImportError("\(path): cannot read (give --ids the folder jukebox/data/ids of OpenAI's code)")
            }
            var result = [String?](repeating: nil, count: count)
            result[0] = LabelVocabulary.unknown
            var taken: Set<String> = [LabelVocabulary.unknown]
            for (number, line) in text.split(separator: "\n").enumerated() {
                let parts = line.split(separator: ";", omittingEmptySubsequences: false)
                guard parts.count == 2, let id = Int(parts[1].trimmingCharacters(in: .whitespaces)) else {
                    throw OpenAIImportError("\(path):\(number + 1): '\(line)' is not NAME;ID")
                }
                guard (0..<count).contains(id) else {
                    throw OpenAIImportError("\(path):\(number + 1): id \(id) is outside the model's \(count) \(kind)s")
                }
                let name = normalizeLabel(String(parts[0]))
                if result[id] == nil, taken.insert(name).inserted { result[id] = name }
            }
            return result.enumerated().map { $0.element ?? "\(kind)_\($0.offset)" }
        }
        vocabulary.artists = try names("artist", count: artists)
        vocabulary.genres = try names("genre", count: genres)
        return vocabulary
    }
}
