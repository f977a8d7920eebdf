// Writing an imported model as our model bundle: the VQ-VAE (small, converted in memory) and
// each prior streamed tensor by tensor from the mapped checkpoint into its safetensors file.

import Foundation
import TensorCore
import ModelKit
import TorchCheckpoint

extension OpenAIImport {
    /// Converts the official checkpoint of the prior at `level` into our checkpoint at `path`,
    /// one tensor at a time (F16 on disk when `storeAs` says so). `vqvae` is the imported
    /// VQ-VAE (its digest and hops go into the metadata).
    public static func writePrior(_ checkpoint: OpenAICheckpoint, level: Int, model: OpenAIModel, vqvae: VQVAE,
                                  to path: String, storeAs: SafetensorsDType = .f32, idsFolder: String? = nil) throws {
        let (config, artists, genres) = try priorConfig(checkpoint, level: level, model: model, vqvae: vqvae.config)
        let levels = vqvae.config.levels
        let mappings = OpenAIMapping.prior(config, levels: levels, artists: artists, genres: genres)
        try checkpoint.check(mappings, model: "the official \(config.isUpsampler(levels: levels) ? "level-\(level) upsampler" : "\(model.rawValue) top prior")")
        guard config.bins == vqvae.config.lBins else {
            throw OpenAIImportError("\(checkpoint.path): the prior has \(config.bins) codes, the VQ-VAE \(vqvae.config.lBins)")
        }
        let imported = mappings.filter { $0.layout != .tied }
        let layout = imported.map { (name: $0.name, shape: $0.layout.shape($0.officialShape), storeAs: storeAs) }
        let metadata: [String: String] = [
            "format": Checkpoint.format, "version": Checkpoint.version,
            "kind": config.isUpsampler(levels: levels) ? "upsampler" : "prior",
            "config": config.jsonString(), "step": String(checkpoint.file.step ?? 0),
            "level": String(level), "levels": String(levels),
            // The upsamplers are shared by all three models and use the v2 labels.
            "labels": try vocabulary(artists: artists, genres: genres, idsFolder: idsFolder, model: level == 2 ? model : .fiveB).json,
            "vqvae": vqvae.identity, "sample_rate": String(vqvae.config.sampleRate),
            "hops": vqvae.hops.map(String.init).joined(separator: ","), "codebook_size": String(config.bins),
            "source": "openai:\(model.rawValue):\((checkpoint.path as NSString).lastPathComponent)",
        ]
        try Interrupt.protecting {
            try Safetensors.write(path: path, layout: layout, metadata: metadata) { i in checkpoint.converted(imported[i]) }
        }
    }

    /// Writes the VQ-VAE as a bundle keeps it: encoders, codebooks and the level-0 decoder.
    public static func writeVQVAE(_ vqvae: VQVAE, to path: String, step: Int, storeAs: SafetensorsDType = .f32) throws {
        var metadata = vqvaeMetadata(vqvae, seed: 0)
        metadata["digest"] = vqvae.identity
        metadata["decoders"] = "0"
        metadata["source"] = "openai"
        let all = vqvae.decoderLevels
        vqvae.decoderLevels = [0]
        defer { vqvae.decoderLevels = all }
        try Checkpoint.write(path, kind: "vqvae", config: vqvae.config.jsonString(), step: step,
                             tensors: vqvae.inferenceTensors(), metadata: metadata, storeAs: storeAs)
    }

    /// Imports `model` from `folder` (OpenAI's layout: `5b/vqvae.pth.tar`,
    /// `5b/prior_level_{0,1}.pth.tar`, `<model>/prior_level_2.pth.tar`) into a bundle at
    /// `output`; label names from OpenAI's id files in `idsFolder` when given. `progress` hears
    /// of each file as it starts.
    public static func importBundle(from folder: String, model: OpenAIModel, into output: String,
                                    storeAs: SafetensorsDType = .f32, idsFolder: String? = nil,
                                    progress: (String) -> Void = { _ in }) throws {
        let files = [OpenAIModel.vqvaeFile, OpenAIModel.upsamplerFile(level: 0), OpenAIModel.upsamplerFile(level: 1), model.topPriorFile]
        let missing = files.filter { !FileManager.default.fileExists(atPath: folder + "/" + $0) }
        guard missing.isEmpty else {
            throw OpenAIImportError("\(folder): missing \(missing.joined(separator: ", ")) (download OpenAI's files into this layout)")
        }
        progress(files[0])
        let vqvaeFile = try OpenAICheckpoint(path: folder + "/" + files[0])
        let vqvae = try OpenAIImport.vqvae(vqvaeFile)
        // Check the top prior and the labels before writing anything, so that an unsupported
        // model or a bad id file fails fast.
        let top = try OpenAICheckpoint(path: folder + "/" + model.topPriorFile)
        let (_, artists, genres) = try priorConfig(top, level: 2, model: model, vqvae: vqvae.config)
        let labels = try vocabulary(artists: artists, genres: genres, idsFolder: idsFolder, model: model)
        try OutputFolder.prepare(output)
        try writeVQVAE(vqvae, to: output + "/vqvae.safetensors", step: vqvaeFile.file.step ?? 0, storeAs: storeAs)
        var priors: [String: String] = [:]
        for level in [2, 1, 0] {
            let file = level == 2 ? model.topPriorFile : OpenAIModel.upsamplerFile(level: level)
            progress(file)
            let checkpoint = level == 2 ? top : try OpenAICheckpoint(path: folder + "/" + file)
            let name = level == 2 ? "prior-level2.safetensors" : "upsampler-level\(level).safetensors"
            try writePrior(checkpoint, level: level, model: model, vqvae: vqvae, to: output + "/" + name, storeAs: storeAs,
                           idsFolder: idsFolder)
            priors[String(level)] = name
        }
        let manifest = BundleManifest(sampleRate: vqvae.config.sampleRate, hops: vqvae.hops, codebookSize: vqvae.config.lBins,
                                      vqvae: "vqvae.safetensors", vqvaeDigest: vqvae.identity, priors: priors, labels: labels,
                                      defaultArtist: labels.artists[0])
        try manifest.write(to: output)
    }
}
