// The hostile user's table: the built executable run on bad inputs of every class (truncated and
// lying files, out-of-range metadata, absurd flags and configs, an output that is an input,
// unwritable folders). Each must end with exit status 1 (64 for the argument parser's usage
// errors), not a signal, one line on stderr that
// names the file or flag at fault, and every file as it was: nothing written, nothing changed.
// Also: a signal stops a training run within seconds even in the middle of a long step.

import XCTest
import Foundation
import TensorCore
import AudioDSP
@testable import JukeboxKit
@testable import ModelKit

final class BadInputTableTests: XCTestCase {
    struct Outcome {
        var status: Int32
        var signalled: Bool
        var err: String
    }

    func jukebox(_ arguments: [String]) throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLineTests.binary)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        _ = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus, signalled: process.terminationReason == .uncaughtSignal,
                       err: String(decoding: e, as: UTF8.self))
    }

    /// Every file under `dir` with its bytes.
    func snapshot(_ dir: String) throws -> [String: Data] {
        let fm = FileManager.default
        var files: [String: Data] = [:]
        for name in try fm.subpathsOfDirectory(atPath: dir) {
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: dir + "/" + name, isDirectory: &isDir), !isDir.boolValue {
                files[name] = fm.contents(atPath: dir + "/" + name) ?? Data()
            }
        }
        return files
    }

    /// A float WAV with a NaN at frame 777.
    func writeNaNWAV(_ path: String) throws {
        var samples = (0..<8000).map { Float(sin(Double($0) * 0.05) * 0.3) }
        samples[777] = .nan
        var data = Data("RIFF".utf8)
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        u32(UInt32(36 + samples.count * 4))
        data.append(contentsOf: Array("WAVEfmt ".utf8))
        u32(16); u16(3); u16(1); u32(22050); u32(22050 * 4); u16(4); u16(32)
        data.append(contentsOf: Array("data".utf8))
        u32(UInt32(samples.count * 4))
        for s in samples { u32(s.bitPattern) }
        try data.write(to: URL(fileURLWithPath: path))
    }

    func testEveryClassOfBadInputIsRefusedInOneNamedLineAndChangesNothing() throws {
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: CommandLineTests.binary), "build the executable first")
        let fm = FileManager.default
        let dir = temporaryDirectory("bad-table")
        let model = dir + "/model", vqvae = model + "/vqvae.safetensors"
        try fm.copyItem(atPath: repoPath("models/default"), toPath: model)
        let audio = dir + "/a.wav", codes = dir + "/c.codes.safetensors"
        try AudioFile.write(audio, samples: (0..<44100).map { sin(Float($0) * 0.05) * 0.3 }, sampleRate: 22050)
        XCTAssertEqual(try jukebox(["encode", "--vqvae", vqvae, audio, "-o", codes]).status, 0)
        let good = try CodeFile.read(codes)

        // Lying and damaged files.
        func lyingCodes(_ name: String, _ change: (inout CodeFile) -> Void) throws -> String {
            var file = good
            change(&file)
            try file.write(dir + "/" + name)
            return dir + "/" + name
        }
        /// The code file with metadata changed as written, bypassing CodeFile's own writer.
        func lyingMetadata(_ name: String, _ changes: [String: String]) throws -> String {
            let file = try Safetensors.read(path: codes)
            let tensors = file.entries.map { (name: $0.name, value: file.tensors[$0.name]!, storeAs: $0.dtype) }
            try Safetensors.write(path: dir + "/" + name, tensors: tensors, metadata: file.metadata.merging(changes) { $1 })
            return dir + "/" + name
        }
        let negativeSamples = try lyingMetadata("negative.codes.safetensors", ["samples": "-5"])
        let hugeHop = try lyingMetadata("hops.codes.safetensors", ["hops": "8,32,9223372036854775807"])
        let version99 = try lyingMetadata("v99.codes.safetensors", ["version": "99"])
        let outside = try lyingCodes("outside.codes.safetensors") {
            var level = $0.levels[2]!
            level[3] = 4000
            $0.set(level: 2, codes: level, length: $0.lengths[2]!)
        }
        let truncatedCodes = dir + "/truncated.codes.safetensors"
        try fm.contents(atPath: codes)!.prefix(100).write(to: URL(fileURLWithPath: truncatedCodes))
        let foreign = dir + "/foreign.safetensors"                  // a code file by another name, damaged
        try fm.contents(atPath: codes)!.prefix(300).write(to: URL(fileURLWithPath: foreign))
        let truncatedModel = dir + "/truncated-vqvae.safetensors"
        try fm.contents(atPath: vqvae)!.prefix(5000).write(to: URL(fileURLWithPath: truncatedModel))
        let bigConfigModel = dir + "/big-config-vqvae.safetensors"
        let checkpoint = try Checkpoint.read(vqvae, kind: "vqvae")
        var bigConfig = try VQVAEConfig.decode(Data(try checkpoint.require("config").utf8), source: vqvae)
        bigConfig.width = 60000
        try Checkpoint.write(bigConfigModel, kind: "vqvae", config: bigConfig.jsonString(), step: 1,
                             tensors: checkpoint.tensors.map { ($0.key, $0.value) }, metadata: checkpoint.metadata.filter {
                                 !["config", "kind", "step", "format", "version"].contains($0.key) })
        let nan = dir + "/nan.wav"
        try writeNaNWAV(nan)
        let garbage = dir + "/garbage.wav", empty = dir + "/empty.wav"
        try Data("not audio at all".utf8).write(to: URL(fileURLWithPath: garbage))
        try Data().write(to: URL(fileURLWithPath: empty))
        let escaping = dir + "/escaping"
        try fm.copyItem(atPath: model, toPath: escaping)
        var manifest = try JSONSerialization.jsonObject(with: fm.contents(atPath: escaping + "/bundle.json")!) as! [String: Any]
        manifest["priors"] = ["2": "../../../../etc/passwd"]
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: escaping + "/bundle.json"))
        let notJSONBundle = dir + "/notjson"
        try fm.createDirectory(atPath: notJSONBundle, withIntermediateDirectories: true)
        try Data("{ not json".utf8).write(to: URL(fileURLWithPath: notJSONBundle + "/bundle.json"))
        let notJSON = dir + "/bad.json", unknownKey = dir + "/unknown.json", wide = dir + "/wide.json"
        try Data("{ not json".utf8).write(to: URL(fileURLWithPath: notJSON))
        try Data(#"{"widht": 32}"#.utf8).write(to: URL(fileURLWithPath: unknownKey))
        try Data(#"{"width": 100000}"#.utf8).write(to: URL(fileURLWithPath: wide))
        let aFile = dir + "/plain-file"
        try Data("x".utf8).write(to: URL(fileURLWithPath: aFile))
        try fm.createSymbolicLink(atPath: dir + "/link.safetensors", withDestinationPath: vqvae)
        let tiny = repoPath("configs/vqvae-tiny.json"), priorTiny = repoPath("configs/prior-tiny.json")
        let small = repoPath("configs/vqvae-small.json"), priorSmall = repoPath("configs/prior-small.json")

        let cases: [(arguments: [String], names: String)] = [
            // Truncated and lying files, each reader naming its own problem.
            (["decode", "--vqvae", vqvae, truncatedCodes, "-o", dir + "/o1.wav"], "truncated.codes.safetensors"),
            (["decode", "--vqvae", vqvae, negativeSamples, "-o", dir + "/o2.wav"], "samples"),
            (["info", hugeHop], "hops"),
            (["upsample", "--model", model, hugeHop, "-o", dir + "/o3.wav"], "hops"),
            (["decode", "--vqvae", vqvae, version99, "-o", dir + "/o4.wav"], "version"),
            (["decode", "--vqvae", vqvae, outside, "-o", dir + "/o5.wav"], "outside the codebook"),
            (["train", "prior", "--config", priorTiny, "--vqvae", vqvae, "--data", foreign, "--out", dir + "/r1"], "foreign.safetensors"),
            (["train", "prior", "--config", priorTiny, "--vqvae", vqvae, "--data", hugeHop, "--out", dir + "/r2"], "hops"),
            (["encode", "--vqvae", truncatedModel, audio, "-o", dir + "/o6.codes.safetensors"], "truncated-vqvae.safetensors"),
            (["encode", "--vqvae", bigConfigModel, audio, "-o", dir + "/o7.codes.safetensors"], "big-config-vqvae.safetensors"),
            (["encode", "--vqvae", vqvae, nan, "-o", dir + "/o8.codes.safetensors"], "nan.wav: frame 777"),
            (["eval", "vqvae", "--vqvae", vqvae, nan], "nan.wav"),
            (["train", "prior", "--config", priorTiny, "--vqvae", vqvae, "--data", nan, "--out", dir + "/r3"], "nan.wav"),
            (["encode", "--vqvae", vqvae, garbage, "-o", dir + "/o9.codes.safetensors"], "garbage.wav"),
            (["encode", "--vqvae", vqvae, empty, "-o", dir + "/o10.codes.safetensors"], "empty.wav"),
            (["sample", "--model", escaping, "--seconds", "8", "-o", dir + "/o11.wav"], "bundle.json"),
            (["sample", "--model", notJSONBundle, "--seconds", "8", "-o", dir + "/o12.wav"], "bundle.json"),
            (["train", "vqvae", "--config", notJSON, "--data", audio, "--out", dir + "/r4"], "bad.json"),
            (["train", "vqvae", "--config", unknownKey, "--data", audio, "--out", dir + "/r5"], "widht"),
            (["train", "vqvae", "--config", wide, "--data", audio, "--out", dir + "/r6"], "width"),
            (["train", "prior", "--config", wide, "--level", "2", "--vqvae", vqvae, "--data", codes, "--out", dir + "/r7"], "wide.json"),
            // Absurd flags.
            (["sample", "--model", model, "--seconds", "inf", "-o", dir + "/o13.wav"], "--seconds"),
            (["sample", "--model", model, "--seconds", "-1", "-o", dir + "/o14.wav"], "--seconds"),
            (["sample", "--model", model, "--seconds", "8", "--temperature", "inf", "-o", dir + "/o15.wav"], "--temperature"),
            (["sample", "--model", model, "--seconds", "8", "--top-k", "-5", "-o", dir + "/o16.wav"], "--top-k"),
            (["sample", "--model", model, "--seconds", "8", "--top-p", "2", "-o", dir + "/o17.wav"], "--top-p"),
            (["sample", "--model", model, "--seconds", "8", "--batch", "100000", "-o", dir + "/o18.wav"], "--batch"),
            (["sample", "--model", model, "--seconds", "8", "--song-seconds", "1e9", "-o", dir + "/o19.wav"], "--song-seconds"),
            (["sample", "--model", model, "--seconds", "8", "--resume", "-o", dir + "/o20.wav"], "--resume"),
            (["sample", "--model", model, "--seconds", "8", "--prime", audio, "--prime-seconds", "9", "-o", dir + "/o21.wav"],
             "--prime-seconds"),
            (["train", "vqvae", "--config", small, "--data", audio, "--batch", "100000", "--out", dir + "/r8"], "--batch 100000"),
            (["train", "prior", "--config", priorSmall, "--vqvae", vqvae, "--data", codes, "--batch", "100000", "--out", dir + "/r9"],
             "--batch 100000"),
            (["train", "prior", "--config", priorTiny, "--level", "1", "--vqvae", vqvae, "--data", codes, "--out", dir + "/r10"], "--level 1"),
            (["train", "vqvae", "--config", tiny, "--data", audio, "--steps", "-1", "--out", dir + "/r11"], "--steps"),
            (["encode", "--vqvae", vqvae, audio, "--levels", "7", "-o", dir + "/o22.codes.safetensors"], "--levels"),
            // An output that is an input.
            (["encode", "--vqvae", vqvae, audio, "-o", audio], "is the same file as"),
            (["encode", "--vqvae", vqvae, audio, "-o", dir + "/link.safetensors"], "is the same file as"),
            (["decode", "--vqvae", vqvae, codes, "-o", codes], "is the same file as"),
            (["sample", "--model", model, "--seconds", "8", "--prime", audio, "--prime-seconds", "1", "-o", audio], "is the same file as"),
            // Folders that cannot be written.
            (["encode", "--vqvae", vqvae, audio, "--out-dir", aFile + "/codes"], "plain-file"),
            (["train", "vqvae", "--config", tiny, "--data", audio, "--out", aFile + "/run"], "plain-file"),
            (["sample", "--model", model, "--seconds", "8", "-o", aFile + "/x.wav"], "plain-file"),
            (["bundle", "--vqvae", vqvae, "--prior", model + "/prior-level2.safetensors", "--upsampler", model + "/upsampler-level1.safetensors",
              "--upsampler", model + "/upsampler-level0.safetensors", "-o", aFile + "/bundle"], "plain-file"),
        ]
        var before = try snapshot(dir)
        var refused = 0
        for (arguments, names) in cases {
            let r = try jukebox(arguments)
            // 1: refused by the command; 64: refused by the argument parser (EX_USAGE).
            let failed = !r.signalled && (r.status == 1 || r.status == 64)
            XCTAssertTrue(failed, "\(arguments) should fail with status 1 or 64, not a crash: status \(r.status), \(r.err)")
            // One error line, naming the culprit (progress lines before it are allowed).
            let lines = r.err.split(separator: "\n").filter { $0.hasPrefix("jukebox: error:") || $0.hasPrefix("Error:") }
            XCTAssertEqual(lines.count, 1, "\(arguments): expected one error line, got: \(r.err)")
            XCTAssertTrue(lines.first?.contains(names) ?? false, "\(arguments): '\(r.err)' should name \(names)")
            XCTAssertFalse(r.err.contains("Fatal error") || r.err.contains("Backtrace"), "\(arguments): \(r.err)")
            let after = try snapshot(dir)
            let changed = Set(before.keys).union(after.keys).filter { before[$0] != after[$0] }.sorted()
            XCTAssertEqual(changed, [], "\(arguments) changed or left these files")
            before = after
            if failed && lines.count == 1 && lines[0].contains(names) && changed.isEmpty { refused += 1 }
        }
        print("bad-input table: \(refused) of \(cases.count) refused in one named line with every file unchanged")
    }

    /// SIGTERM in the middle of a long training step stops the run within seconds (the
    /// watchdog's grace, set short here), with status 130 and one line saying what is kept.
    func testASignalStopsTrainingMidStep() throws {
        let dir = temporaryDirectory("signal")
        for i in 0..<2 {
            try AudioFile.write(dir + "/a\(i).wav", samples: (0..<66150).map { sin(Float($0 + 977 * i) * 0.05) * 0.3 },
                                sampleRate: 22050)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLineTests.binary)
        // vqvae-small with 8 crops: a step takes seconds on any CPU this runs on.
        process.arguments = ["train", "vqvae", "--config", repoPath("configs/vqvae-small.json"), "--data", dir + "/a0.wav",
                             dir + "/a1.wav", "--batch", "8", "--steps", "100", "--out", dir + "/run"]
        var environment = ProcessInfo.processInfo.environment
        environment["JUKEBOX_INTERRUPT_GRACE"] = "0.5"
        process.environment = environment
        let err = Pipe()
        process.standardError = err
        process.standardOutput = Pipe()
        try process.run()
        // Wait for the run to start its first step.
        var text = ""
        while !text.contains("training vqvae") {
            let chunk = err.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        Thread.sleep(forTimeInterval: 1.0)
        let sent = Date()
        process.terminate()                            // SIGTERM
        text += String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let stoppedAfter = Date().timeIntervalSince(sent)
        XCTAssertEqual(process.terminationStatus, 130, text)
        XCTAssertLessThan(stoppedAfter, 2.0, "a signal must stop the run within seconds: \(text)")
        XCTAssertTrue(text.contains("interrupted"), text)
    }
}
