// The command-line contract: bad input gives one line on stderr that names the file or flag,
// a non-zero exit status, and no output file; --help explains each subcommand.

import XCTest
import Foundation

final class CommandLineTests: XCTestCase {
    /// The built `jukebox` executable beside the test bundle (swift test builds it too).
    static var binary: String {
        let candidates = [repoPath(".build/release/jukebox"), repoPath(".build/debug/jukebox")]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }

    /// Runs jukebox with `arguments`; returns exit status, stdout and stderr.
    func run(_ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    func testBadInputGivesOneNamedLineAndNoOutput() throws {
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: Self.binary), "build the executable first: \(Self.binary)")
        let dir = temporaryDirectory("cli")
        let garbage = dir + "/garbage.wav"
        try Data("not audio at all".utf8).write(to: URL(fileURLWithPath: garbage))
        let cases: [([String], String)] = [
            (["encode", "--vqvae", dir + "/missing.safetensors", garbage, "-o", dir + "/x.codes.safetensors"], "missing.safetensors"),
            (["train", "vqvae", "--config", dir + "/none.json", "--data", dir, "--out", dir + "/run"], "none.json"),
            (["decode", "--vqvae", garbage, garbage, "-o", dir + "/y.wav"], "garbage.wav"),
            (["info", garbage], "garbage.wav"),
            (["sample", "--model", dir, "--seconds", "10", "-o", dir + "/z.wav"], "bundle"),
            (["sample", "--model", dir, "--seconds", "0", "-o", dir + "/z.wav"], "--seconds"),
            (["bench", "nothing"], "nothing"),
        ]
        for (arguments, mention) in cases {
            let r = try run(arguments)
            XCTAssertNotEqual(r.status, 0, "\(arguments) should fail")
            let lines = r.err.split(separator: "\n").filter { !$0.hasPrefix("Usage") && !$0.hasPrefix("  See") && !$0.isEmpty }
            XCTAssertEqual(lines.count, 1, "\(arguments): expected one error line, got: \(r.err)")
            XCTAssertTrue(r.err.contains(mention), "\(arguments): '\(r.err)' should name \(mention)")
        }
        for name in ["x.codes.safetensors", "y.wav", "z.wav", "run/checkpoint.safetensors"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/" + name), "\(name) should not be written")
        }
    }

    func testHelpExplainsEverySubcommand() throws {
        for sub in [["train", "vqvae"], ["train", "prior"], ["encode"], ["decode"], ["sample"], ["upsample"], ["bundle"],
                    ["eval", "vqvae"], ["info"], ["bench"]] {
            let r = try run(sub + ["--help"])
            XCTAssertEqual(r.status, 0)
            XCTAssertTrue(r.out.contains("USAGE") && r.out.contains("Example") || sub == ["bench"], "\(sub) help lacks an example")
        }
    }
}
