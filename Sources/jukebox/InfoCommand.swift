import ArgumentParser
import Foundation
import JukeboxKit
import ModelKit
import TensorCore
import TorchCheckpoint

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what a checkpoint, code file or model bundle holds.",
        discussion: """
            Reads only the file's header: kind, config, step, tensor shapes, levels and \
            durations. A PyTorch checkpoint (`.pth.tar`, `.pth`, `.pt`, such as OpenAI's \
            Jukebox files) is read without running any of its pickle: its step, and each \
            tensor's name, dtype and shape.

            Examples:
              jukebox info runs/vqvae/checkpoint.safetensors
              jukebox info vqvae.pth.tar
            """)

    @Argument(help: "A checkpoint, code file or bundle folder, or a PyTorch checkpoint.")
    var path: String

    func run() throws {
        try reportingErrors {
            let lines = Self.isPyTorch(path) ? try TorchFile(path: path).descriptionLines() : try describe(path: path)
            for line in lines { print(line) }
        }
    }

    /// Whether `path` is to be read as a PyTorch checkpoint: by its first bytes, or by its name
    /// (so that a damaged `.pth.tar` gets the PyTorch reader's error, not the safetensors one).
    static func isPyTorch(_ path: String) -> Bool {
        if TorchFile.format(ofFileAt: path) != nil { return true }
        return [".pth", ".pt", ".pth.tar", ".ckpt"].contains { path.hasSuffix($0) }
    }
}
