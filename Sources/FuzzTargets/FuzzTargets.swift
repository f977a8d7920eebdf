// Fuzz targets: every reader of a file that a user may hand to jukebox, fed arbitrary bytes.
//
// A reader may answer a bad file only by throwing an error that names the problem; a trap,
// a crash, a hang or an allocation out of proportion to the file is a bug. `jukebox-fuzz`
// drives these targets under libFuzzer (`make fuzz`) and replays files through them, and
// `FuzzCorpusTests` replays the committed corpus of past findings in every test run.
//
// Readers that take a path get the bytes as a file in a scratch folder of this process (in
// /dev/shm when there is one, so an execution costs no disk write).

import Foundation
import TensorCore
import ModelKit
import AudioDSP
import JukeboxKit
import MIDI
import MelodyKit
import TorchCheckpoint

/// A reader of untrusted input, as a fuzz target.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// `Safetensors.readHeader` and `Safetensors.read`: the container of checkpoints and codes.
    case safetensors
    /// `CodeFile.read`: a `*.codes.safetensors` file.
    case codeFile = "code-file"
    /// `VQVAE.load` and `Prior.load`: a checkpoint, its metadata and config, its tensors.
    case checkpoint
    /// `ModelBundle(path:)` with the bytes as `bundle.json` (see ``bundleModelsVariable``).
    case bundle
    /// `VQVAEConfig.decode`: a VQ-VAE config JSON.
    case vqvaeConfig = "vqvae-config"
    /// `PriorConfig.decode`: a prior or upsampler config JSON.
    case priorConfig = "prior-config"
    /// `LabelTable.load` of a `.json` labels file.
    case labelsJSON = "labels-json"
    /// `LabelTable.load` of a `.csv` labels file.
    case labelsCSV = "labels-csv"
    /// `AudioFile.info`, `read` (at the file's rate and, resampled, at 8 kHz) and `readWindow`:
    /// every format libsndfile opens.
    case audio
    /// `MIDIFile(bytes:name:)`, then the downbeat and the melodies, as training reads them.
    case midi
    /// `MelodyVAEConfig.decode`: a melody VAE config JSON.
    case melodyVAEConfig = "melody-vae-config"
    /// `MelodyLatents.read`: a `*.latents.safetensors` file.
    case melodyLatents = "melody-latents"
    /// `TorchFile(path:)` as `jukebox info` reads a PyTorch checkpoint (legacy or zip, chosen
    /// by the first bytes), then every value of every tensor.
    case torchCheckpoint = "torch-checkpoint"

    /// Environment variable naming a folder of model files (a bundle's `*.safetensors`) that
    /// the bundle target links next to the fuzzed `bundle.json`, so that a manifest that
    /// parses goes on to the checks of the models against it. Without it the target exercises
    /// the manifest alone.
    public static let bundleModelsVariable = "JUKEBOX_FUZZ_BUNDLE_MODELS"

    /// Feeds `bytes` to the reader and returns the error it threw, or nil when it accepted the
    /// input. Either is a correct outcome.
    @discardableResult
    public func run(_ bytes: Data) -> Error? {
        do {
            switch self {
            case .safetensors:
                let path = try FuzzScratch.write(bytes, name: "input.safetensors")
                _ = try Safetensors.readHeader(path: path)
                _ = try Safetensors.read(path: path)
            case .codeFile:
                _ = try CodeFile.read(try FuzzScratch.write(bytes, name: "input.codes.safetensors"))
            case .checkpoint:
                let path = try FuzzScratch.write(bytes, name: "input.safetensors")
                // A checkpoint is of one kind, so at most one of the loaders gets past the header.
                switch try Checkpoint.read(path).kind {
                case "vqvae": _ = try VQVAE.load(path)
                case "melody-vae": _ = try MelodyVAE.load(path)
                default: _ = try Prior.load(path)
                }
            case .bundle:
                let folder = try FuzzScratch.bundleFolder()
                _ = try FuzzScratch.write(bytes, name: "bundle/bundle.json")
                _ = try ModelBundle(path: folder)
            case .vqvaeConfig:
                _ = try VQVAEConfig.decode(bytes, source: "input.json")
            case .priorConfig:
                _ = try PriorConfig.decode(bytes, source: "input.json")
            case .labelsJSON:
                _ = try LabelTable.load(try FuzzScratch.write(bytes, name: "labels.json"))
            case .labelsCSV:
                _ = try LabelTable.load(try FuzzScratch.write(bytes, name: "labels.csv"))
            case .audio:
                try FuzzTarget.readAudio(try FuzzScratch.write(bytes, name: "input.audio"))
            case .midi:
                let file = try MIDIFile(bytes: bytes, name: "input.mid")
                // As training reads a file: no accents means bars from the start; accents
                // without a consistent downbeat are an error (returned like any other).
                let phase: Int
                do {
                    phase = try Melody.downbeatPhase(of: file)
                } catch DownbeatError.noAccents {
                    phase = 0
                }
                for melody in Melody.extract(from: file, downbeatPhase: phase) { _ = melody.chunks(steps: 32) }
                _ = try file.bytes()
            case .melodyVAEConfig:
                _ = try MelodyVAEConfig.decode(bytes, source: "input.json")
            case .melodyLatents:
                _ = try MelodyLatents.read(try FuzzScratch.write(bytes, name: "input.latents.safetensors"))
            case .torchCheckpoint:
                let checkpoint = try TorchFile(path: try FuzzScratch.write(bytes, name: "input.pth.tar"))
                _ = checkpoint.descriptionLines()
                for (_, tensor) in checkpoint.tensors {
                    _ = tensor.floatValues() ?? tensor.integerValues().map { $0.map(Float.init) }
                    _ = tensor.contiguousBytes
                }
            }
            return nil
        } catch {
            return error
        }
    }

    /// Every audio reading path: the header, a full read without and with resampling, and a
    /// window from the middle.
    private static func readAudio(_ path: String) throws {
        let info = try AudioFile.info(path)
        _ = try AudioFile.read(path, sampleRate: info.sampleRate)
        // The rate the tiny test models use; a file at another rate is resampled.
        _ = try AudioFile.read(path, sampleRate: 8000)
        let available = info.length(atSampleRate: 8000)
        _ = try AudioFile.readWindow(path, sampleRate: 8000, offset: available / 3, length: min(available / 3, 4096))
    }
}

/// The scratch folder of this process, removed when it exits.
enum FuzzScratch {
    static let folder: String = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let folder = base + "/jukebox-fuzz-\(getpid())"
        // A folder that cannot be made shows up as the first write's error, which the target
        // returns; removing it at exit is best effort (a leftover in /dev/shm does no harm).
        try? FileManager.default.createDirectory(atPath: folder + "/bundle", withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: FuzzScratch.folder) }
        return folder
    }()

    /// Writes `bytes` to `name` in the scratch folder and returns its path.
    static func write(_ bytes: Data, name: String) throws -> String {
        let path = folder + "/" + name
        try bytes.write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The folder the bundle target loads, with the models of ``FuzzTarget/bundleModelsVariable``
    /// linked in on first use.
    static func bundleFolder() throws -> String {
        _ = linkedBundleModels
        return folder + "/bundle"
    }

    private static let linkedBundleModels: Void = {
        // Optional: without the variable, or with a folder that cannot be listed, the bundle
        // target fuzzes the manifest alone (as its documentation says).
        guard let models = ProcessInfo.processInfo.environment[FuzzTarget.bundleModelsVariable],
              let names = try? FileManager.default.contentsOfDirectory(atPath: models) else { return }
        for name in names where name.hasSuffix(".safetensors") {
            symlink(models + "/" + name, folder + "/bundle/" + name)
        }
    }()
}
