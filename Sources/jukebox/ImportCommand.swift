import ArgumentParser
import Foundation
import JukeboxKit
import ModelKit
import TensorCore

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Convert another system's models into a model bundle.",
        subcommands: [ImportOpenAI.self])
}

struct ImportOpenAI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "openai",
        abstract: "Convert OpenAI's released Jukebox models into a model bundle.",
        discussion: """
            DIR holds the files you downloaded, in OpenAI's layout: 5b/vqvae.pth.tar, \
            5b/prior_level_0.pth.tar, 5b/prior_level_1.pth.tar and <model>/prior_level_2.pth.tar. \
            They are read without running any of their pickle; every tensor's name and shape is \
            checked against the official model (all problems listed), widths and vocabularies come \
            from each file's hps, and the weights are converted one tensor at a time.
            Artist and genre names come from OpenAI's id files when --ids names the folder \
            jukebox/data/ids of your copy of OpenAI's code (their licence is non-commercial, so \
            none ships here); otherwise they are artist_<id> and genre_<id>.
            Only 5b imports for now: the lyrics models' top priors need lyrics conditioning.

            Example:
              jukebox import openai ~/.cache/jukebox/models --model 5b -o models/openai-5b --half
            """)

    @Argument(help: "Folder with OpenAI's files (5b/vqvae.pth.tar, ...).")
    var directory: String

    @Option(help: "Which model: 5b, 5b_lyrics or 1b_lyrics.")
    var model: String

    @Option(name: .shortAndLong, help: "Bundle folder to write.")
    var output: String

    @Option(help: "Folder with OpenAI's artist and genre id files (jukebox/data/ids).")
    var ids: String?

    @Flag(help: "Store weights as 16-bit floats (half the size; loaded as 32-bit).")
    var half = false

    func validate() throws {
        guard OpenAIModel(rawValue: model) != nil else {
            throw ValidationError("--model '\(model)': give one of \(OpenAIModel.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() throws {
        try reportingErrors {
            try OpenAIImport.importBundle(from: directory, model: OpenAIModel(rawValue: model)!, into: output,
                                          storeAs: half ? .f16 : .f32, idsFolder: ids) { file in
                printError("importing \(file)")
            }
            print("wrote \(output)")
        }
    }
}
