// Sampling end to end with tiny models trained inside the test: windows, determinism, priming,
// interrupted-and-resumed jobs, bundles, and bad input.

import XCTest
import Foundation
import TensorCore
import AudioDSP
import JukeboxKit
import ModelKit

final class WindowTests: XCTestCase {
    func testWindowStartsFollowTheReferenceRule() {
        // Reference: range(0, total - n_ctx + hop, hop), a start whose window reaches the end
        // replaced by total - n_ctx.
        func reference(_ total: Int, _ n: Int, _ hop: Int) -> [Int] {
            var out: [Int] = []
            var s = 0
            while s < total - n + hop {
                out.append(s + n >= total ? total - n : s)
                if s + n >= total { break }
                s += hop
            }
            return out
        }
        for total in [32, 33, 48, 63, 64, 100, 1000, 6890] {
            for (n, hop) in [(32, 16), (32, 4), (32, 32), (16, 2)] where total >= n {
                let starts = windowStarts(total: total, nCtx: n, hop: hop)
                XCTAssertEqual(starts, reference(total, n, hop), "total \(total) n \(n) hop \(hop)")
                XCTAssertEqual(starts.last! + n, total, "the last window ends at the end")
                XCTAssertEqual(Set(starts).count, starts.count)
            }
        }
        XCTAssertEqual(windowStarts(total: 100, nCtx: 32, hop: 16), [0, 16, 32, 48, 64, 68])
        XCTAssertEqual(windowHop(nCtx: 32, fraction: 0.125, alignment: 4), 4)
        XCTAssertEqual(windowHop(nCtx: 8192, fraction: 0.5, alignment: 4), 4096)
    }
}

/// Tiny trained stack shared by the sampling tests (trained once per test process).
final class TinyStack {
    static let shared = try! TinyStack()
    let dir: String
    let bundlePath: String
    let otherVQVAEPath: String

    init() throws {
        dir = temporaryDirectory("stack")
        let data = try VQVAETrainerTests.makeData("stack-data", files: 5, seconds: 3)
        var vqConfig = try tinyVQVAEConfig()
        vqConfig.train.evalEvery = 0
        let vq = try VQVAETrainer(config: vqConfig, data: [data], outDirectory: dir + "/vqvae", seed: 1, resume: false)
        _ = try vq.train(totalSteps: 30) { _ in }
        let vqPath = dir + "/vqvae/checkpoint.safetensors"
        // A second VQ-VAE (another seed) for the mismatch tests.
        let other = try VQVAETrainer(config: vqConfig, data: [data], outDirectory: dir + "/vqvae-other", seed: 2, resume: false)
        _ = try other.train(totalSteps: 2) { _ in }
        otherVQVAEPath = dir + "/vqvae-other/checkpoint.safetensors"
        var priors: [String] = []
        for (level, name) in [(2, "prior-tiny"), (1, "upsampler-tiny"), (0, "upsampler-tiny")] {
            var config = try PriorConfig.load(path: repoPath("configs/\(name).json"))
            config.level = level
            config.train.evalEvery = 0
            let trainer = try PriorTrainer(config: config, vqvaePath: vqPath, data: [data], labels: nil,
                                           outDirectory: dir + "/prior\(level)", seed: UInt64(level), resume: false) { _ in }
            _ = try trainer.train(totalSteps: 20) { _ in }
            priors.append(dir + "/prior\(level)/checkpoint.safetensors")
        }
        bundlePath = dir + "/bundle"
        try ModelBundle.assemble(vqvae: vqPath, priors: priors, into: bundlePath, storeAs: .f16)
    }
}

final class SamplingTests: XCTestCase {
    var stack: TinyStack { TinyStack.shared }

    func request(seconds: Double = 1.5, seed: UInt64 = 1, levels: [Int] = [2, 1, 0], bundle: ModelBundle) -> SamplingRequest {
        let top = bundle.vqvae.hops.last!
        return SamplingRequest(samples: Int(seconds * 8000) / top * top, seed: seed, artist: bundle.manifest.defaultArtist, levels: levels)
    }

    func sample(_ r: SamplingRequest, bundle: ModelBundle, output: String, resume: Bool = false,
                stopAfterWindows: Int? = nil) throws -> SamplingOutcome {
        let sampler = try MusicSampler(bundle: bundle, request: r, jobPath: SamplingOutput.jobPath(for: output), resume: resume)
        var windows = 0
        defer { Interrupt.reset() }
        let outcome = try sampler.run { p in
            if p.windowFinished {
                windows += 1
                if let stop = stopAfterWindows, windows >= stop { Interrupt.request() }
            }
        }
        if case .finished(let codes) = outcome { try SamplingOutput.write(codes, to: output, bundle: bundle) }
        return outcome
    }

    func testSampleWritesRequestedLengthAndIsDeterministic() throws {
        let bundle = try ModelBundle(path: stack.bundlePath)
        let window = Double(bundle.priors[2]!.config.nCtx * 128) / 8000
        let r = request(bundle: bundle)
        XCTAssertGreaterThan(Double(r.samples) / 8000, window, "longer than one top-level window")
        let out = temporaryDirectory("sample")
        _ = try sample(r, bundle: bundle, output: out + "/a.wav")
        _ = try sample(r, bundle: bundle, output: out + "/b.wav")
        var other = r
        other.seed = 2
        _ = try sample(other, bundle: bundle, output: out + "/c.wav")
        let a = try AudioFile.read(out + "/a.wav", sampleRate: 8000)
        XCTAssertEqual(a.count, r.samples)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/a.wav")),
                       try Data(contentsOf: URL(fileURLWithPath: out + "/b.wav")), "same seed, same file")
        XCTAssertNotEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/a.wav")),
                          try Data(contentsOf: URL(fileURLWithPath: out + "/c.wav")), "another seed, another file")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/a.wav.job.codes.safetensors"), "job file removed when done")
    }

    func testPrimedCodesStartWithThePrime() throws {
        let bundle = try ModelBundle(path: stack.bundlePath)
        let out = temporaryDirectory("prime")
        let primeAudio = chordWithClicks(count: 8000, sampleRate: 8000, phase: 123)
        try AudioFile.write(out + "/prime.wav", samples: primeAudio, sampleRate: 8000)
        var r = request(bundle: bundle)
        r.prime = out + "/prime.wav"
        r.primeSamples = 4096
        _ = try sample(r, bundle: bundle, output: out + "/primed.codes.safetensors")
        let codes = try CodeFile.read(out + "/primed.codes.safetensors")
        var levelsTheCutChanges = 0
        for level in 0..<3 {
            // The primed codes are the recording's own (its audio after the cut is seen too),
            // not those of the cut-off prime.
            let expected = Array(bundle.vqvae.encodeSignal(primeAudio, level: level).prefix(4096 / bundle.vqvae.hops[level]))
            if expected != bundle.vqvae.encodeSignal(Array(primeAudio.prefix(4096)), level: level) { levelsTheCutChanges += 1 }
            XCTAssertEqual(Array(codes.codes(level: level, item: 0).prefix(expected.count)), expected, "level \(level)")
        }
        // Where the cut changes no code the two readings agree anyway; which levels it changes
        // depends on the kernels' rounding, so the test asks only that it tells them apart somewhere.
        XCTAssertGreaterThan(levelsTheCutChanges, 0, "the cut changes the last codes of some level")
    }

    /// A tiny top prior trained on audio whose top-level codes repeat with period 7 continues
    /// that pattern when primed the way users prime: `--prime` audio encoded by the VQ-VAE,
    /// several windows that each prime the cache on the codes before them, the bundle's F16
    /// weights and the sampling kernels (float16 where the CPU has them).
    func testPrimedSamplingContinuesALearnedPattern() throws {
        let dir = temporaryDirectory("pattern")
        let (top, period) = (128, 7)
        // Seven different 128-sample segments (tones of different pitch and loudness), repeated.
        let segment = (0..<(period * top)).map { i -> Float in
            let k = Float(i / top), t = Float(i % top)
            return (0.15 + 0.1 * k) * sin(2 * .pi * t * (k + 1) / 32)
        }
        let audio = (0..<60).flatMap { _ in segment }
        try AudioFile.write(dir + "/pattern.wav", samples: audio, sampleRate: 8000)
        // A tiny VQ-VAE that has heard the pattern, so that its segments get codes of their own.
        var vqConfig = try tinyVQVAEConfig()
        vqConfig.train.evalEvery = 0
        let vqTrainer = try VQVAETrainer(config: vqConfig, data: [dir + "/pattern.wav"], outDirectory: dir + "/vqvae", seed: 1, resume: false)
        _ = try vqTrainer.train(totalSteps: 60) { _ in }
        let vqPath = dir + "/vqvae/checkpoint.safetensors"
        let reference = try VQVAE.load(vqPath).encodeSignal(audio, level: 2)
        // The premise: away from the ends the codes repeat with the period and vary within it.
        let interior = 16..<(reference.count - 16)
        XCTAssertTrue(interior.allSatisfy { reference[$0] == reference[$0 - period] }, "codes are not periodic: \(reference)")
        XCTAssertGreaterThanOrEqual(Set(reference[interior]).count, 3, "the pattern has too few distinct codes")

        var config = try PriorConfig.load(path: repoPath("configs/prior-tiny.json"))
        config.train.evalEvery = 0
        let trainer = try PriorTrainer(config: config, vqvaePath: vqPath, data: [dir + "/pattern.wav"], labels: nil,
                                       outDirectory: dir + "/prior", seed: 3, resume: false) { _ in }
        _ = try trainer.train(totalSteps: 400) { _ in }
        // Upsamplers complete the bundle; this test samples the top level only.
        for level in [1, 0] {
            var up = try PriorConfig.load(path: repoPath("configs/upsampler-tiny.json"))
            up.level = level
            up.train.evalEvery = 0
            _ = try PriorTrainer(config: up, vqvaePath: vqPath, data: [dir + "/pattern.wav"], labels: nil,
                                 outDirectory: dir + "/up\(level)", seed: 1, resume: false) { _ in }.train(totalSteps: 1) { _ in }
        }
        try ModelBundle.assemble(vqvae: vqPath, priors: [dir + "/prior/checkpoint.safetensors", dir + "/up1/checkpoint.safetensors",
                                                         dir + "/up0/checkpoint.safetensors"],
                                 into: dir + "/bundle", storeAs: .f16)
        let bundle = try ModelBundle(path: dir + "/bundle")
        // 96 top-level codes in windows of 32 (3+ windows), the first 40 from the prime.
        let r = SamplingRequest(samples: 96 * top, seed: 1, artist: bundle.manifest.defaultArtist, temperature: 0.01,
                                levels: [2], prime: dir + "/pattern.wav", primeSamples: 40 * top)
        _ = try sample(r, bundle: bundle, output: dir + "/continued.codes.safetensors")
        let sampled = Array(try CodeFile.read(dir + "/continued.codes.safetensors").codes(level: 2, item: 0))
        // The prime's last codes see its cut end, so allow one period to find the phase again.
        let checked = (40 + period)..<96
        let wrong = checked.filter { sampled[$0] != reference[$0] }
        XCTAssertTrue(wrong.isEmpty, "\(wrong.count) of \(checked.count) continued codes break the pattern: \(Array(sampled[40...])) vs \(Array(reference[40..<96]))")
    }

    /// `eval prior`: the mean of its per-position losses is the prior's own loss on the same
    /// windows, the context buckets cover every position once, and the top prior's timing gets
    /// the song length sampling would give it: the median length of its training songs (the
    /// stack's are 3 s long) unless the music is longer.
    func testPriorEvaluationMatchesThePriorsLoss() throws {
        let bundle = try ModelBundle(path: stack.bundlePath)
        let vq = bundle.vqvae
        let audio = chordWithClicks(count: 24_064, sampleRate: 8000, phase: 77)   // 188 top-level codes
        var file = CodeFile(batch: 1, sampleRate: 8000, hops: vq.hops, codebookSize: 64, vqvaeDigest: vq.identity, source: "t")
        file.samples = audio.count
        for level in 0..<3 {
            let codes = vq.encodeSignal(audio, level: level)
            file.set(level: level, codes: codes, length: codes.count)
        }
        let path = temporaryDirectory("eval-prior") + "/t.codes.safetensors"
        try file.write(path)
        XCTAssertEqual(try XCTUnwrap(bundle.priors[2]!.songSeconds), 3, accuracy: 0.05)
        for level in [2, 1] {
            let prior = bundle.priors[level]!
            let result = try PriorEvaluation.run(bundle: bundle, level: level, paths: [path])
            let n = prior.config.nCtx, length = file.lengths[level]!, ratio = 1 << prior.config.conditioner.downT
            var losses: [Double] = []
            for start in stride(from: 0, through: length - n, by: n) {
                var cond = PriorConditioning(artists: [try prior.vocabulary.artistID(bundle.manifest.defaultArtist)], genres: [[]])
                if prior.isUpsampler {
                    cond.upperCodes = Array(file.levels[level + 1]![(start / ratio)..<((start + n) / ratio)])
                } else {
                    cond.timing = [TimingInfo(total: 24_064, offset: start * 128, length: n * 128)]
                }
                let window = Array(file.levels[level]![start..<(start + n)])
                losses.append(Double(Tensor.withoutGrad { prior.loss(window, batch: 1, conditioning: cond).item }))
            }
            XCTAssertEqual(result.bitsPerToken, losses.reduce(0, +) / Double(losses.count), accuracy: 1e-3, "level \(level)")
            XCTAssertEqual(result.tokens, losses.count * n)
            XCTAssertEqual(result.byContext.map(\.tokens).reduce(0, +), result.tokens)
            XCTAssertEqual(result.byContext.first!.from, 0)
            XCTAssertEqual(result.byContext.last!.to, n - 1)
            if level == 2 { XCTAssertEqual(try XCTUnwrap(result.songSeconds), 3.008, accuracy: 1e-6) }
        }
        // A song length shorter than the music is refused.
        var r = request(bundle: bundle)
        r.songSamples = r.samples - 128
        XCTAssertThrowsError(try MusicSampler(bundle: bundle, request: r, jobPath: temporaryDirectory("song") + "/x.codes.safetensors",
                                              resume: false)) {
            XCTAssertEqual(($0 as? SamplingRequestError)?.field, .songLength, "\($0)")
        }
    }

    func testInterruptedJobResumesToTheSameFile() throws {
        let bundle = try ModelBundle(path: stack.bundlePath)
        let out = temporaryDirectory("resume")
        let r = request(seconds: 2, bundle: bundle)
        _ = try sample(r, bundle: bundle, output: out + "/whole.codes.safetensors")
        guard case .interrupted = try sample(r, bundle: bundle, output: out + "/parts.codes.safetensors", stopAfterWindows: 1) else {
            return XCTFail("the job should stop after its first window")
        }
        // A second start without --resume is refused: nothing is lost.
        XCTAssertThrowsError(try MusicSampler(bundle: bundle, request: r, jobPath: out + "/parts.codes.safetensors", resume: false))
        // Resuming with other options is refused.
        var changed = r
        changed.seed = 9
        XCTAssertThrowsError(try MusicSampler(bundle: bundle, request: changed, jobPath: out + "/parts.codes.safetensors", resume: true))
        _ = try sample(r, bundle: bundle, output: out + "/parts.codes.safetensors", resume: true)
        let whole = try CodeFile.read(out + "/whole.codes.safetensors"), parts = try CodeFile.read(out + "/parts.codes.safetensors")
        for level in 0..<3 { XCTAssertEqual(whole.levels[level], parts.levels[level], "level \(level)") }
    }

    /// Music shorter than the top prior's context (32 codes, 0.51 s) is the start of one window.
    func testMusicShorterThanTheTopContext() throws {
        let bundle = try ModelBundle(path: stack.bundlePath)
        let r = request(seconds: 0.3, bundle: bundle)
        XCTAssertLessThan(r.samples, bundle.priors[2]!.config.nCtx * 128)
        let out = temporaryDirectory("short")
        _ = try sample(r, bundle: bundle, output: out + "/short.wav")
        XCTAssertEqual(try AudioFile.read(out + "/short.wav", sampleRate: 8000).count, r.samples)
    }

    func testTopLevelThenUpsample() throws {
        let bundle = try ModelBundle(path: stack.bundlePath)
        let out = temporaryDirectory("upsample")
        _ = try sample(request(levels: [2], bundle: bundle), bundle: bundle, output: out + "/top.codes.safetensors")
        let top = try CodeFile.read(out + "/top.codes.safetensors")
        XCTAssertEqual(top.levels.keys.sorted(), [2], "a top-level job's file holds only the top level")
        var r = request(levels: [1, 0], bundle: bundle)
        r.upsampleFrom = out + "/top.codes.safetensors"
        _ = try sample(r, bundle: bundle, output: out + "/full.codes.safetensors")
        let full = try CodeFile.read(out + "/full.codes.safetensors")
        XCTAssertEqual(full.levels[2], top.levels[2], "upsampling keeps the top level")
        XCTAssertEqual(full.lengths[0], r.samples / 8)
    }

    func testBadInputs() throws {
        let bundle = try ModelBundle(path: stack.bundlePath)
        let out = temporaryDirectory("bad")
        // Too short (less than one level-1 window of 32 × 32 samples) and absurdly long.
        for seconds in [0.1, 100_000] {
            XCTAssertThrowsError(try MusicSampler(bundle: bundle, request: request(seconds: seconds, bundle: bundle),
                                                  jobPath: out + "/x.codes.safetensors", resume: false)) {
                XCTAssertEqual(($0 as? SamplingRequestError)?.field, .length, "\($0)")
            }
        }
        // Unknown artist: the error lists the known ones.
        var r = request(bundle: bundle)
        r.artist = "nobody"
        XCTAssertThrowsError(try MusicSampler(bundle: bundle, request: r, jobPath: out + "/y.codes.safetensors", resume: false)) {
            XCTAssertTrue("\($0)".contains("unknown artist 'nobody'") && "\($0)".contains("knows:"), "\($0)")
        }
        // Codes of another VQ-VAE cannot be upsampled.
        let other = try VQVAE.load(stack.otherVQVAEPath)
        let signal = chordWithClicks(count: 12288, sampleRate: 8000)
        var foreign = CodeFile(batch: 1, sampleRate: 8000, hops: other.hops, codebookSize: 64, vqvaeDigest: other.identity, source: "x")
        foreign.set(level: 2, codes: other.encodeSignal(signal, level: 2), length: 12288 / 128)
        try foreign.write(out + "/foreign.codes.safetensors")
        var up = request(levels: [1, 0], bundle: bundle)
        up.samples = 12288
        up.upsampleFrom = out + "/foreign.codes.safetensors"
        XCTAssertThrowsError(try MusicSampler(bundle: bundle, request: up, jobPath: out + "/z.codes.safetensors", resume: false)) {
            XCTAssertTrue("\($0)".contains("another VQ-VAE"), "\($0)")
        }
        // A level mismatch: upsampling a file without its top level.
        var partial = CodeFile(batch: 1, sampleRate: 8000, hops: bundle.vqvae.hops, codebookSize: 64,
                               vqvaeDigest: bundle.vqvae.identity, source: "x")
        partial.set(level: 1, codes: [Int32](repeating: 1, count: 12288 / 32), length: 12288 / 32)
        try partial.write(out + "/partial.codes.safetensors")
        up.upsampleFrom = out + "/partial.codes.safetensors"
        up.levels = [0]
        XCTAssertThrowsError(try MusicSampler(bundle: bundle, request: up, jobPath: out + "/w.codes.safetensors", resume: false)) {
            XCTAssertTrue("\($0)".contains("level 2 is missing"), "\($0)")
        }
        // A code file too short to upsample is named (there is no --seconds to blame).
        var short = CodeFile(batch: 1, sampleRate: 8000, hops: bundle.vqvae.hops, codebookSize: 64,
                             vqvaeDigest: bundle.vqvae.identity, source: "x")
        short.set(level: 2, codes: [1, 2, 3, 4], length: 4)
        try short.write(out + "/short.codes.safetensors")
        up.upsampleFrom = out + "/short.codes.safetensors"
        up.samples = 4 * 128
        up.levels = [1, 0]
        XCTAssertThrowsError(try MusicSampler(bundle: bundle, request: up, jobPath: out + "/s.codes.safetensors", resume: false)) {
            XCTAssertTrue("\($0)".contains("short.codes.safetensors") && !"\($0)".contains("--seconds"), "\($0)")
        }
        // A bundle whose priors come from another VQ-VAE.
        XCTAssertThrowsError(try ModelBundle.assemble(vqvae: stack.otherVQVAEPath,
                                                      priors: [stack.dir + "/prior2/checkpoint.safetensors",
                                                               stack.dir + "/prior1/checkpoint.safetensors",
                                                               stack.dir + "/prior0/checkpoint.safetensors"],
                                                      into: out + "/mixed")) {
            XCTAssertTrue("\($0)".contains("VQ-VAE"), "\($0)")
        }
        // A bundle missing a level.
        XCTAssertThrowsError(try ModelBundle.assemble(vqvae: stack.dir + "/vqvae/checkpoint.safetensors",
                                                      priors: [stack.dir + "/prior2/checkpoint.safetensors"],
                                                      into: out + "/incomplete")) {
            XCTAssertTrue("\($0)".contains("no prior for levels 0, 1"), "\($0)")
        }
        // A manifest that points outside its folder, or claims what its files do not say.
        let fm = FileManager.default
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: bundle.path + "/bundle.json")))
            as! [String: Any]
        let lies: [(String, Any, String)] = [("priors", ["2": "../../../../etc/passwd"], "not a file name"),
                                             ("vqvae", "/etc/passwd", "not a file name"), ("hops", [8, 32, 64], "hops"),
                                             ("codebook_size", 4096, "codebook_size"), ("sample_rate", 44100, "sample_rate"),
                                             ("vqvae_digest", "0123", "vqvae_digest")]
        for (i, (key, value, named)) in lies.enumerated() {
            let folder = out + "/lying\(i)"
            try fm.copyItem(atPath: bundle.path, toPath: folder)
            var changed = manifest
            changed[key] = value
            try JSONSerialization.data(withJSONObject: changed).write(to: URL(fileURLWithPath: folder + "/bundle.json"))
            XCTAssertThrowsError(try ModelBundle(path: folder), key) {
                XCTAssertTrue("\($0)".contains(folder + "/bundle.json") && "\($0)".contains(named), "\(key): \($0)")
            }
        }
    }
}
