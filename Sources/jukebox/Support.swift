import ArgumentParser
import Foundation
import JukeboxKit
import ModelKit

/// Runs `body`, turning a library error into one line on stderr (`jukebox: error: …`) and
/// exit status 1.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as ExitCode {
        throw e
    } catch {
        printError("jukebox: error: \(error)")
        throw ExitCode.failure
    }
}

/// Parses a comma-separated list of levels (`2,1,0`), each in `0..<count`.
func parseLevels(_ text: String, count: Int, flag: String) throws -> [Int] {
    let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    var levels: [Int] = []
    for p in parts {
        guard let l = Int(p), l >= 0, l < count else {
            throw ValidationError("\(flag) '\(text)': each level must be a number in 0...\(count - 1)")
        }
        if !levels.contains(l) { levels.append(l) }
    }
    if levels.isEmpty { throw ValidationError("\(flag) is empty") }
    return levels
}

/// `value` as one line of JSON with snake_case keys, sorted, slashes unescaped (what `--json`
/// prints).
func jsonLine<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// Refuses, before any work, to write an output that is one of the command's inputs (the same
/// file, however the two paths are spelled). Each path comes with the flag or argument that
/// gave it, for the message.
func refuseOverwritingInputs(outputs: [(flag: String, path: String)], inputs: [(flag: String, path: String)]) throws {
    try reportingErrors {
        guard let clash = FileIdentity.clash(outputs: outputs.map(\.path), inputs: inputs.map(\.path)) else { return }
        let output = outputs.first { $0.path == clash.output }!, input = inputs.first { $0.path == clash.input }!
        throw ConfigError("\(output.flag) \(output.path): is the same file as \(input.flag) \(input.path); "
                          + "writing it would destroy that input")
    }
}

/// The files a training run writes in its folder `out`.
func runFolderOutputs(_ out: String) -> [(flag: String, path: String)] {
    let run = RunDirectory(naming: out)
    return [run.checkpointPath, run.configPath, run.metricsPath].map { ("--out", $0) }
}

/// A model folder shipped in the checkout (`relative`, e.g. `models/default`, holding
/// `manifest`): in the current folder, else in the checkout the executable was built in (it
/// lives in `.build/<triple>/release/`), so the commands find it from anywhere.
func shippedModel(_ relative: String, manifest: String) -> String? {
    let fm = FileManager.default
    if fm.fileExists(atPath: relative + "/" + manifest) { return relative }
    guard let executable = Foundation.Bundle.main.executableURL else { return nil }
    var folder = executable.resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<4 {
        folder = folder.deletingLastPathComponent()
        let candidate = folder.appendingPathComponent(relative).path
        if fm.fileExists(atPath: candidate + "/" + manifest) { return candidate }
    }
    return nil
}
