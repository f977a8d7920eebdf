import ArgumentParser
import Foundation
import JukeboxKit

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
