// The command-line contract: bad input gives one line on stderr that names the file or flag,
// a non-zero exit status, and no output file; --help explains each subcommand.

import XCTest
import Foundation
import AudioDSP
import MIDI
import MIDIRender

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
            (["sample", "--model", dir, "--seconds", "10", "--seed", "-1", "-o", dir + "/z.wav"], "--seed"),
            (["sample", "--model", dir, "--seconds", "10", "--top-k", "-5", "-o", dir + "/z.wav"], "--top-k"),
            (["encode", "--vqvae", repoPath("models/default/vqvae.safetensors"), garbage, "--out-dir", garbage + "/codes"], "is a file"),
            (["train", "prior", "--config", repoPath("configs/prior-tiny.json"), "--vqvae", repoPath("models/default/vqvae.safetensors"),
              "--level", "2", "--data", dir, "--out", garbage + "/run"], "is a file"),
            (["sample", "--model", dir, "--seconds", "inf", "-o", dir + "/z.wav"], "--seconds"),
            (["sample", "--model", dir, "--seconds", "10", "--temperature", "inf", "-o", dir + "/z.wav"], "--temperature"),
            (["upsample", "--model", dir, garbage, "--top-p", "nan", "-o", dir + "/z.wav"], "--top-p"),
        ]
        for (arguments, mention) in cases {
            let r = try run(arguments)
            XCTAssertNotEqual(r.status, 0, "\(arguments) should fail")
            let lines = r.err.split(separator: "\n").filter { !$0.hasPrefix("Usage") && !$0.hasPrefix("  See") && !$0.hasPrefix("Help:") && !$0.isEmpty }
            XCTAssertEqual(lines.count, 1, "\(arguments): expected one error line, got: \(r.err)")
            XCTAssertTrue(r.err.contains(mention), "\(arguments): '\(r.err)' should name \(mention)")
        }
        for name in ["x.codes.safetensors", "y.wav", "z.wav", "run/checkpoint.safetensors"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/" + name), "\(name) should not be written")
        }
    }

    /// `info` on a PyTorch checkpoint lists the step and every tensor; a hostile or truncated
    /// one gets one line naming the file and the problem.
    func testInfoReadsPyTorchCheckpointsAndRefusesHostileOnes() throws {
        let fixture = repoPath("Tests/TorchCheckpointTests/Fixtures/tiny.legacy.pth.tar")
        let ok = try run(["info", fixture])
        XCTAssertEqual(ok.status, 0, ok.err)
        XCTAssertTrue(ok.out.hasPrefix("PyTorch checkpoint, legacy format (torch < 1.6), step 123456\n"), ok.out)
        XCTAssertTrue(ok.out.contains("\nmodel.prior.transformer._attn_mods.0.attn.c_attn.w: F16 [6, 9]\n"), ok.out)
        XCTAssertTrue(ok.out.hasSuffix("15 tensors, 443 values (F32 353, F16 90); 12 storages, 1348 bytes of data\n"), ok.out)
        let hostile = repoPath("Tests/JukeboxKitTests/Fixtures/fuzz-crashes/torch-checkpoint")
        for (name, mention) in [("os-system.pth", "offset 47: global os.system is not allowed"),
                                ("truncated.legacy.pth.tar", "the file is truncated")] {
            let r = try run(["info", hostile + "/" + name])
            XCTAssertNotEqual(r.status, 0)
            XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
            XCTAssertTrue(r.err.contains(name) && r.err.contains(mention), r.err)
        }
    }

    /// No command writes over one of its own inputs, however the output path names it (the
    /// same text, `./`, a symbolic link, a hard link): it refuses before any work, and every
    /// file stays as it was.
    func testAnOutputThatIsAnInputIsRefused() throws {
        let dir = temporaryDirectory("clash")
        let fm = FileManager.default
        let vqvae = dir + "/v.safetensors", audio = dir + "/a.wav", codes = dir + "/c.codes.safetensors"
        try fm.copyItem(atPath: repoPath("models/default/vqvae.safetensors"), toPath: vqvae)
        try AudioFile.write(audio, samples: (0..<22050).map { sin(Float($0) * 0.05) * 0.3 }, sampleRate: 22050)
        XCTAssertEqual(try run(["encode", "--vqvae", vqvae, audio, "-o", codes]).status, 0)
        try fm.createSymbolicLink(atPath: dir + "/link.safetensors", withDestinationPath: vqvae)
        try fm.linkItem(atPath: audio, toPath: dir + "/hard.wav")
        try fm.createDirectory(atPath: dir + "/b", withIntermediateDirectories: true)
        try fm.copyItem(atPath: vqvae, toPath: dir + "/b/vqvae.safetensors")
        try fm.createDirectory(atPath: dir + "/run", withIntermediateDirectories: true)
        try fm.copyItem(atPath: vqvae, toPath: dir + "/run/checkpoint.safetensors")
        let model = repoPath("models/default")
        let cases: [[String]] = [
            ["encode", "--vqvae", vqvae, audio, "-o", dir + "/link.safetensors"],
            ["encode", "--vqvae", vqvae, audio, "-o", dir + "/./a.wav"],
            ["encode", "--vqvae", vqvae, audio, "-o", dir + "/hard.wav"],
            ["encode", "--vqvae", codes, dir + "/c.wav", "--out-dir", dir],     // writes dir/c.codes.safetensors
            ["decode", "--vqvae", vqvae, codes, "-o", codes],
            ["decode", "--vqvae", vqvae, codes, "-o", dir + "/link.safetensors"],
            ["sample", "--model", model, "--seconds", "8", "--prime", audio, "--prime-seconds", "1", "-o", dir + "/../" +
                URL(fileURLWithPath: dir).lastPathComponent + "/a.wav"],
            ["upsample", "--model", model, codes, "-o", codes],
            ["bundle", "--vqvae", dir + "/b/vqvae.safetensors", "--prior", model + "/upsampler-level0.safetensors", "-o", dir + "/b"],
            ["train", "prior", "--config", repoPath("configs/prior-tiny.json"), "--vqvae", dir + "/run/checkpoint.safetensors",
             "--level", "2", "--data", dir, "--out", dir + "/run", "--resume"],
            ["train", "vqvae", "--config", repoPath("configs/vqvae-tiny.json"), "--extend", dir + "/run/checkpoint.safetensors",
             "--data", dir, "--out", dir + "/run"],
        ]
        try fm.copyItem(atPath: audio, toPath: dir + "/c.wav")
        func snapshot() throws -> [String: Data] {
            var files: [String: Data] = [:]
            for name in try fm.subpathsOfDirectory(atPath: dir) where !name.hasSuffix("link.safetensors") {
                var isDir: ObjCBool = false
                if fm.fileExists(atPath: dir + "/" + name, isDirectory: &isDir), !isDir.boolValue {
                    files[name] = fm.contents(atPath: dir + "/" + name)
                }
            }
            return files
        }
        let before = try snapshot()
        for arguments in cases {
            let r = try run(arguments)
            XCTAssertNotEqual(r.status, 0, "\(arguments) should fail")
            let lines = r.err.split(separator: "\n").filter { !$0.isEmpty }
            XCTAssertEqual(lines.count, 1, "\(arguments): expected one error line, got: \(r.err)")
            XCTAssertTrue(r.err.contains("is the same file as"), "\(arguments): \(r.err)")
        }
        XCTAssertEqual(try snapshot(), before, "no file may change")
    }

    func testHelpExplainsEverySubcommand() throws {
        for sub in [["train", "vqvae"], ["train", "prior"], ["encode"], ["decode"], ["sample"], ["upsample"], ["bundle"],
                    ["eval", "vqvae"], ["info"], ["bench"], ["train", "melody-vae"], ["melody", "encode"], ["melody", "decode"],
                    ["melody", "stats"], ["eval", "melody-vae"], ["train", "melody-prior"], ["melody", "bundle"], ["melody", "sample"],
                    ["melody", "infill"], ["melody", "render"], ["eval", "melody"]] {
            let r = try run(sub + ["--help"])
            XCTAssertEqual(r.status, 0)
            XCTAssertTrue(r.out.contains("USAGE") && r.out.contains("Example") || sub == ["bench"], "\(sub) help lacks an example")
        }
    }

    /// `melody render` writes a mono WAV at the asked rate that lasts to the file's end plus the
    /// 1 s tail, the same bytes twice; bad input gives one named line and writes nothing, with
    /// no FluidSynth or GLib chatter on stderr.
    func testMelodyRenderWritesTheSameWAVTwiceAndRefusesBadInput() throws {
        let dir = temporaryDirectory("render")
        let fm = FileManager.default
        // Two quarters at 90 qpm, then tempo 180 and two more: 4/3 s + 2/3 s.
        let q = 480
        let events = [MIDITimedEvent(tick: 0, .tempo(microsecondsPerQuarter: 666_667)),
                      MIDITimedEvent(tick: 0, .noteOn(channel: 0, key: 69, velocity: 80)),
                      MIDITimedEvent(tick: 2 * q, .noteOff(channel: 0, key: 69, velocity: 0)),
                      MIDITimedEvent(tick: 2 * q, .tempo(microsecondsPerQuarter: 333_333)),
                      MIDITimedEvent(tick: 2 * q, .noteOn(channel: 0, key: 72, velocity: 80)),
                      MIDITimedEvent(tick: 4 * q, .noteOff(channel: 0, key: 72, velocity: 0))]
        let midi = dir + "/tune.mid"
        try MIDIFile(format: .singleTrack, ticksPerQuarter: q, tracks: [MIDITrack(events: events)]).write(to: midi)
        for name in ["a.wav", "b.wav"] {
            let r = try run(["melody", "render", midi, "-o", dir + "/out/" + name, "--sample-rate", "22050"])
            XCTAssertEqual(r.status, 0, r.err)
            XCTAssertEqual(r.err.split(separator: "\n").count, 1, "one line on stderr: \(r.err)")
        }
        let info = try AudioFile.info(dir + "/out/a.wav")
        XCTAssertEqual(info.sampleRate, 22050)
        XCTAssertEqual(info.channels, 1)
        XCTAssertEqual(info.duration, 4.0 / 3 + 2.0 / 3 + 1, accuracy: 1e-3)
        XCTAssertEqual(fm.contents(atPath: dir + "/out/a.wav"), fm.contents(atPath: dir + "/out/b.wav"))

        let garbage = dir + "/garbage.mid", truncated = dir + "/truncated.sf2"
        try Data("not MIDI at all".utf8).write(to: URL(fileURLWithPath: garbage))
        try fm.contents(atPath: try MIDIRenderer.findSoundfont())!.prefix(4000).write(to: URL(fileURLWithPath: truncated))
        let cases: [([String], String)] = [
            ([dir + "/missing.mid"], "missing.mid"),
            ([garbage], "garbage.mid"),
            ([midi, "--soundfont", dir + "/none.sf2"], "none.sf2"),
            ([midi, "--soundfont", garbage], "garbage.mid: cannot use it as a soundfont"),
            ([midi, "--soundfont", truncated], "truncated.sf2"),
            ([midi, "--sample-rate", "100"], "--sample-rate"),
            ([midi, "--gain", "-1"], "--gain"),
            ([midi, "--gain", "inf"], "--gain"),
        ]
        for (arguments, mention) in cases {
            let r = try run(["melody", "render"] + arguments + ["-o", dir + "/bad.wav"])
            XCTAssertNotEqual(r.status, 0, "\(arguments) should fail")
            let lines = r.err.split(separator: "\n").filter { !$0.hasPrefix("Usage") && !$0.hasPrefix("  See") && !$0.isEmpty }
            XCTAssertEqual(lines.count, 1, "\(arguments): expected one error line, got: \(r.err)")
            XCTAssertTrue(r.err.contains(mention), "\(arguments): '\(r.err)' should name \(mention)")
        }
        let clash = try run(["melody", "render", midi, "-o", dir + "/./tune.mid"])
        XCTAssertNotEqual(clash.status, 0)
        XCTAssertTrue(clash.err.contains("is the same file as input"), clash.err)
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: dir).sorted(), ["garbage.mid", "out", "truncated.sf2", "tune.mid"])
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: dir + "/out").sorted(), ["a.wav", "b.wav"])
    }
}
