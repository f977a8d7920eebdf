import ArgumentParser
import Foundation
import JukeboxKit
import ModelKit
import TensorCore

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what a checkpoint, code file or model bundle holds.",
        discussion: """
            Reads only the file's header: kind, config, step, tensor shapes, levels and \
            durations.

            Example:
              jukebox info runs/vqvae/checkpoint.safetensors
            """)

    @Argument(help: "A checkpoint, code file or bundle folder.")
    var path: String

    func run() throws {
        try reportingErrors {
            for line in try describe(path: path) { print(line) }
        }
    }
}
