// Model bundles: a folder with bundle.json and one checkpoint per model (the VQ-VAE, the top
// prior, an upsampler per lower level). Assembling one checks that the pieces fit: the same
// VQ-VAE digest, every level covered once, the same codebook size and sample rate.

import Foundation
import TensorCore
import ModelKit

/// bundle.json.
public struct BundleManifest: Codable, Equatable {
    public var format = "jukebox-bundle"
    public var version = 1
    public var sampleRate: Int
    public var hops: [Int]
    public var codebookSize: Int
    /// VQ-VAE checkpoint file (relative to the bundle) and its digest.
    public var vqvae: String
    public var vqvaeDigest: String
    /// Checkpoint file of each level's prior, keyed by level ("2", "1", "0").
    public var priors: [String: String]
    /// The label vocabulary of the top prior.
    public var labels: LabelVocabulary
    /// Artist used when `--artist` is not given (the first artist the top prior saw).
    public var defaultArtist: String
}

/// A loaded model bundle: the VQ-VAE and a prior per level.
public final class ModelBundle {
    public let path: String
    public let manifest: BundleManifest
    public let vqvae: VQVAE
    /// Priors by level.
    public let priors: [Int: Prior]

    /// The files the bundle is made of: its manifest, VQ-VAE and priors.
    public var files: [String] {
        [path + "/bundle.json", path + "/" + manifest.vqvae] + manifest.priors.values.sorted().map { path + "/" + $0 }
    }

    /// Loads the bundle in folder `path` and checks that its pieces fit.
    public init(path: String) throws {
        self.path = path
        let manifestPath = path + "/bundle.json"
        guard let data = FileManager.default.contents(atPath: manifestPath) else {
            throw ConfigError("\(path): not a model bundle (no bundle.json)")
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let manifest: BundleManifest
        do {
            manifest = try decoder.decode(BundleManifest.self, from: data)
        } catch {
            throw ConfigError("\(manifestPath): not a valid bundle manifest (\(error))")
        }
        guard manifest.format == "jukebox-bundle", manifest.version == 1 else {
            throw ConfigError("\(manifestPath): format \(manifest.format) version \(manifest.version) is not supported")
        }
        self.manifest = manifest
        // Every file the manifest names lies in the bundle folder itself: a plain file name.
        for file in [manifest.vqvae] + manifest.priors.values.sorted() {
            guard !file.isEmpty, !file.contains("/"), file != ".", file != ".." else {
                throw ConfigError("\(manifestPath): '\(file)' is not a file name inside the bundle folder")
            }
        }
        vqvae = try VQVAE.load(path + "/" + manifest.vqvae)
        // What the manifest claims must be what the VQ-VAE file says.
        let claims: [(String, String, String)] = [
            ("sample_rate", String(manifest.sampleRate), String(vqvae.config.sampleRate)),
            ("hops", manifest.hops.map(String.init).joined(separator: ","), vqvae.hops.map(String.init).joined(separator: ",")),
            ("codebook_size", String(manifest.codebookSize), String(vqvae.config.lBins)),
            ("vqvae_digest", manifest.vqvaeDigest, vqvae.identity)]
        for (key, claimed, actual) in claims where claimed != actual {
            throw ConfigError("\(manifestPath): \(key) is \(claimed), but \(manifest.vqvae) says \(actual)")
        }
        var priors: [Int: Prior] = [:]
        for (key, file) in manifest.priors {
            guard let level = Int(key) else { throw ConfigError("\(manifestPath): prior level '\(key)' is not a number") }
            let (prior, digest) = try Prior.load(path + "/" + file)
            guard vqvae.accepts(digest: digest, levels: prior.codeLevels) else {
                throw ConfigError("\(path)/\(file): was trained on another VQ-VAE (\(digest), bundle has \(vqvae.identity))")
            }
            guard prior.config.level == level else {
                throw ConfigError("\(path)/\(file): models level \(prior.config.level), listed as level \(level)")
            }
            priors[level] = prior
        }
        self.priors = priors
        try ModelBundle.check(vqvae: vqvae, priors: Array(priors.values), source: path)
    }

    /// The top level (the unconditional prior's).
    public var topLevel: Int { vqvae.config.levels - 1 }

    /// Checks that `priors` cover every level of `vqvae` once, with its codebook size and digest.
    static func check(vqvae: VQVAE, priors: [Prior], source: String) throws {
        let levels = vqvae.config.levels
        var seen = Set<Int>()
        for p in priors {
            guard p.config.level < levels else {
                throw ConfigError("\(source): a prior models level \(p.config.level), the VQ-VAE has levels 0...\(levels - 1)")
            }
            guard seen.insert(p.config.level).inserted else { throw ConfigError("\(source): two priors model level \(p.config.level)") }
            guard p.config.bins == vqvae.config.lBins else {
                throw ConfigError("\(source): the level-\(p.config.level) prior has \(p.config.bins) codes, the VQ-VAE \(vqvae.config.lBins)")
            }
            // An upsampler stays one in a VQ-VAE extended by levels above it.
            guard p.isUpsampler == (p.config.level < levels - 1), p.sampleRate == vqvae.config.sampleRate else {
                throw ConfigError("\(source): the level-\(p.config.level) prior was made for \(p.levels) levels at \(p.sampleRate) Hz")
            }
        }
        let missing = (0..<levels).filter { !seen.contains($0) }
        guard missing.isEmpty else {
            throw ConfigError("\(source): no prior for level\(missing.count > 1 ? "s" : "") \(missing.map(String.init).joined(separator: ", "))")
        }
    }

    /// Assembles a bundle in `directory` from training checkpoints, storing weights as
    /// `storeAs` (F16 halves the size) and leaving optimizer state behind. `defaultArtist` is
    /// what sampling conditions on when no artist is given (default: the first known one).
    public static func assemble(vqvae vqvaePath: String, priors priorPaths: [String], into directory: String,
                                storeAs: SafetensorsDType = .f32, defaultArtist: String? = nil) throws {
        let vqvae = try VQVAE.load(vqvaePath)
        var loaded: [(path: String, prior: Prior)] = []
        for p in priorPaths {
            let (prior, digest) = try Prior.load(p)
            guard vqvae.accepts(digest: digest, levels: prior.codeLevels) else {
                throw ConfigError("\(p): was trained on codes of VQ-VAE \(digest), not \(vqvaePath) (\(vqvae.identity))")
            }
            loaded.append((p, prior))
        }
        try check(vqvae: vqvae, priors: loaded.map(\.prior), source: "bundle")
        let top = loaded.first { $0.prior.config.level == vqvae.config.levels - 1 }!.prior
        var artist = top.vocabulary.artists.count > 1 ? top.vocabulary.artists[1] : LabelVocabulary.unknown
        if let defaultArtist {
            artist = top.vocabulary.artists[Int(try top.vocabulary.artistID(defaultArtist))]
        }
        try OutputFolder.prepare(directory)
        // VQ-VAE: encoders, codebooks and the level-0 decoder (sampling decodes level 0 alone;
        // the others would add a third to its size), its metadata, no training state.
        let source = try Checkpoint.read(vqvaePath, kind: "vqvae")
        let keep = ["sample_rate", "hops", "codebook_size", "bandwidth", "seed", "codebooks_initialized", "extends"]
        var vqvaeMetadata = source.metadata.filter { keep.contains($0.key) }
        vqvaeMetadata["digest"] = vqvae.identity
        vqvaeMetadata["decoders"] = "0"
        vqvae.decoderLevels = [0]
        try Checkpoint.write(directory + "/vqvae.safetensors", kind: "vqvae", config: try source.require("config"), step: source.step,
                             tensors: vqvae.inferenceTensors(), metadata: vqvaeMetadata, storeAs: storeAs)
        var files: [String: String] = [:]
        for (path, prior) in loaded {
            let checkpoint = try Checkpoint.read(path)
            let name = prior.isUpsampler ? "upsampler-level\(prior.config.level).safetensors" : "prior-level\(prior.config.level).safetensors"
            var metadata = priorMetadata(prior, vqvae: vqvae)
            metadata["seed"] = checkpoint.metadata["seed"]
            try Checkpoint.write(directory + "/" + name, kind: checkpoint.kind, config: try checkpoint.require("config"),
                                 step: checkpoint.step, tensors: prior.namedParameters().map { ($0.name, $0.tensor) },
                                 metadata: metadata, storeAs: storeAs)
            files[String(prior.config.level)] = name
        }
        let manifest = BundleManifest(sampleRate: vqvae.config.sampleRate, hops: vqvae.hops, codebookSize: vqvae.config.lBins,
                                      vqvae: "vqvae.safetensors", vqvaeDigest: vqvae.identity, priors: files,
                                      labels: top.vocabulary,
                                      defaultArtist: artist)
        try manifest.write(to: directory)
    }
}

extension BundleManifest {
    /// Writes `bundle.json` into `directory`, atomically.
    func write(to directory: String) throws {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let tmp = directory + "/.bundle.json.tmp"
        try encoder.encode(self).write(to: URL(fileURLWithPath: tmp))
        guard rename(tmp, directory + "/bundle.json") == 0 else { throw ConfigError("\(directory): cannot write bundle.json") }
    }
}
