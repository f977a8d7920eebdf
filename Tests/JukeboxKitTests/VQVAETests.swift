// The VQ-VAE: hop arithmetic, quantisation, the EMA codebook with restarts, a gradient check of
// a whole level, overfitting a clip, exact resume, chunked coding, and bad inputs.

import XCTest
import Foundation
import TensorCore
import AudioDSP
import JukeboxKit
import ModelKit

/// The tiny config from configs/, found from this source file's location.
func repoPath(_ relative: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(relative).path
}

func tinyVQVAEConfig() throws -> VQVAEConfig { try VQVAEConfig.load(path: repoPath("configs/vqvae-tiny.json")) }

/// A chord with clicks: three sines and a click every 0.1 s.
func chordWithClicks(count: Int, sampleRate: Int, phase: Int = 0) -> [Float] {
    (0..<count).map { i in
        let t = Float(i + phase) / Float(sampleRate)
        var x = 0.3 * sinf(2 * .pi * 220 * t) + 0.2 * sinf(2 * .pi * 330 * t) + 0.1 * sinf(2 * .pi * 550 * t)
        if (i + phase) % (sampleRate / 10) < 4 { x += 0.5 }
        return x
    }
}

/// The folder of every test folder of this process, removed when the process exits (so that
/// repeated test runs do not fill the temporary folder).
let testRoot: String = {
    let root = NSTemporaryDirectory() + "jukebox-tests-\(getpid())"
    try! FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    // Best effort at exit: a folder left in the temporary folder does no harm.
    atexit { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "jukebox-tests-\(getpid())") }
    return root
}()

/// A fresh temporary folder.
func temporaryDirectory(_ name: String) -> String {
    let path = testRoot + "/jukebox-test-\(name)-\(Int.random(in: 0..<1_000_000))"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

final class VQVAETests: XCTestCase {
    func testHopArithmeticAndDecodeLength() throws {
        let config = try tinyVQVAEConfig()
        XCTAssertEqual(config.hops, [8, 32, 128])
        let model = VQVAE(config: config, seed: 1)
        var g = RandomGenerator(seed: 1)
        let T = 2048   // the spectral loss's 2048-point STFT needs more than 1024 samples
        let audio = Tensor(chordWithClicks(count: 2 * T, sampleRate: 8000), shape: [2, T])
        _ = model.step(audio, training: true, generator: &g)   // initialises the codebooks
        for (level, hop) in [8, 32, 128].enumerated() {
            let codes = model.encode(audio, level: level)
            XCTAssertEqual(codes.count, 2 * T / hop)
            XCTAssertEqual(model.decode(codes, batch: 2, level: level).shape, [2, T])
        }
    }

    func testQuantizeMatchesBruteForce() {
        var g = RandomGenerator(seed: 3)
        let b = Bottleneck(bins: 37, width: 5, mu: 0.99, threshold: 1)
        g.fillNormal(b.codebook.data, count: 37 * 5, std: 1)
        let rows = 5000   // more than one block of rows
        let x = Tensor.randomNormal([rows, 5], generator: &g)
        let (codes, fit) = b.quantize(x.data, rows: rows)
        var totalFit = 0.0
        for i in 0..<rows {
            var best = Double.infinity, bestJ = -1
            for j in 0..<37 {
                var d = 0.0
                for c in 0..<5 { let e = Double(x.data[i * 5 + c] - b.codebook.data[j * 5 + c]); d += e * e }
                if d < best { best = d; bestJ = j }
            }
            XCTAssertEqual(Int(codes[i]), bestJ, "row \(i)")
            totalFit += best
        }
        XCTAssertEqual(Double(fit), totalFit / Double(rows) / 5, accuracy: 1e-4)
    }

    func testEMAUpdateByHandAndDeadCodeRestart() {
        // Two codes in 1-D at 0 and 10; latents 1, 2 (→ code 0) and 9 (→ code 1).
        let b = Bottleneck(bins: 3, width: 1, mu: 0.5, threshold: 1)
        b.codebook.data.update(from: [0, 10, 100], count: 3)
        b.kSum.data.update(from: [0, 10, 100], count: 3)
        b.kElem.data.update(from: [1, 1, 1], count: 3)
        b.initialized = true
        var g = RandomGenerator(seed: 1)
        let x = Tensor([1, 2, 9], shape: [1, 3, 1], requiresGrad: true)
        let q = b(x, training: true, generator: &g)
        XCTAssertEqual(q.codes, [0, 0, 1])
        XCTAssertEqual(q.output.array, [0, 0, 10], "codes come from the codebook before the update")
        // kElem = 0.5·1 + 0.5·count = [1.5, 1, 0.5]; kSum = 0.5·kSum + 0.5·Σx = [1.5, 9.5, 50]
        XCTAssertEqual(b.kElem.array, [1.5, 1, 0.5])
        XCTAssertEqual(b.kSum.array, [1.5, 9.5, 50])
        XCTAssertEqual(b.codebook.data[0], 1, accuracy: 1e-6)      // 1.5 / 1.5
        XCTAssertEqual(b.codebook.data[1], 9.5, accuracy: 1e-6)    // 9.5 / 1
        // Code 2 fell below the threshold: restarted from a latent of the batch.
        XCTAssertTrue([1, 2, 9].contains(b.codebook.data[2]), "dead code became \(b.codebook.data[2])")
        XCTAssertEqual(q.metrics.liveCodes, 2)
        XCTAssertEqual(q.metrics.usedCodes, 2)
        // Commitment loss: mean of (1−0)², (2−0)², (9−10)² = 2.
        XCTAssertEqual(q.commitLoss.item, 2, accuracy: 1e-6)
    }

    func testFirstBatchInitialisesCodebookFromLatents() {
        let b = Bottleneck(bins: 8, width: 2, mu: 0.99, threshold: 1)
        var g = RandomGenerator(seed: 2)
        let x = Tensor([1, 1, 2, 2, 3, 3], shape: [1, 3, 2])
        _ = b(x, training: true, generator: &g)
        XCTAssertTrue(b.initialized)
        // 3 rows tiled to 8 with small noise: every code sits near one of the latents.
        for j in 0..<8 {
            let v = b.codebook.data[j * 2]
            XCTAssertTrue([1, 2, 3].contains { Swift.abs($0 - v) < 0.1 }, "code \(j) = \(v)")
        }
    }

    /// The whole level-1 path (encoder, straight-through quantiser, decoder, lmix and spectral
    /// losses, commitment) against finite differences. The straight-through estimator treats
    /// the code offset `x_q − x` as a constant, so the reference freezes it at the base point.
    func testWholeLevelGradientAgainstFiniteDifferences() throws {
        var config = try tinyVQVAEConfig()
        config.downsT = [3, 2, 2]
        let model = VQVAE(config: config, seed: 4, bandwidth: Bandwidth(l2: 0.05, l1: 0.2, spec: 20))
        let level = 1
        let T = 2048
        let audio = Tensor(chordWithClicks(count: T, sampleRate: 8000), shape: [1, T])
        var g = RandomGenerator(seed: 5)
        _ = model.step(audio, training: true, generator: &g)   // initialise codebooks
        let encoder = model.encoders[level], decoder = model.decoders[level], bottleneck = model.bottlenecks[level]
        let base = Tensor.withoutGrad { encoder(audio.reshaped([1, T, 1])) }
        let codes = bottleneck.quantize(base.data, rows: base.shape[1]).codes
        let quantized = bottleneck.dequantize(codes).reshaped(base.shape)
        let offset = Tensor.withoutGrad { quantized - base }    // frozen x_q − x

        func loss() -> Tensor {
            let latents = encoder(audio.reshaped([1, T, 1]))
            let recon = decoder(latents + offset).reshaped([1, T])
            let commit = (latents - quantized).square().mean()
            return SpectralLoss.lmix(recon, audio, bandwidth: model.bandwidth)
                + SpectralLoss.multiResolution(recon, audio, bandwidth: model.bandwidth) + commit * config.commit
        }
        // The straight-through op itself: its gradient must equal the frozen-offset surrogate's.
        let params = model.namedParameters().filter { $0.name.hasPrefix("encoders.\(level)") || $0.name.hasPrefix("decoders.\(level)") }
        for p in params { p.tensor.grad = nil }
        let latents = encoder(audio.reshaped([1, T, 1]))
        let q = bottleneck(latents, training: false, generator: &g)
        let recon = decoder(q.output).reshaped([1, T])
        let real = SpectralLoss.lmix(recon, audio, bandwidth: model.bandwidth)
            + SpectralLoss.multiResolution(recon, audio, bandwidth: model.bandwidth) + q.commitLoss * config.commit
        real.backward()
        XCTAssertEqual(q.codes, codes)
        let picks = [params.first!, params[params.count / 2], params.last!]
        for p in picks {
            let analytic = p.tensor.grad!
            for i in [0, p.tensor.count / 2, p.tensor.count - 1] {
                let saved = p.tensor.data[i]
                let h: Float = 1e-2
                p.tensor.data[i] = saved + h
                let plus = Tensor.withoutGrad { loss() }.item
                p.tensor.data[i] = saved - h
                let minus = Tensor.withoutGrad { loss() }.item
                p.tensor.data[i] = saved
                let numeric = (plus - minus) / (2 * h)
                XCTAssertEqual(analytic.data[i], numeric, accuracy: 2e-2 * Swift.max(1, Swift.abs(numeric)),
                               "\(p.name)[\(i)]")
            }
        }
    }

    /// Level 0 of the tiny model learns one clip: spectral convergence below −6 dB and the loss
    /// down by at least 3x in 300 steps.
    func testTinyModelOverfitsAClip() throws {
        var config = try tinyVQVAEConfig()
        config.train.learningRate = 3e-3
        let T = 2048
        let clip = chordWithClicks(count: T, sampleRate: config.sampleRate)
        let audio = Tensor(clip + clip, shape: [2, T])
        let bandwidth = Bandwidth.estimate(crops: [clip])
        let model = VQVAE(config: config, seed: 7, bandwidth: bandwidth)
        let adam = Adam(parameters: model.namedParameters(), learningRate: config.train.learningRate, warmupSteps: 10)
        var g = RandomGenerator(seed: 8)
        var first: Float = 0, last: Float = 0
        for s in 0..<300 {
            adam.zeroGrad()
            let r = model.step(audio, training: true, generator: &g)
            if s == 0 { first = r.loss.item }
            last = r.loss.item
            r.loss.backward()
            clipGradientNorm(adam.parameters, maxNorm: 1)
            adam.update()
        }
        var g2 = RandomGenerator(seed: 0)
        let eval = Tensor.withoutGrad { model.step(audio, training: false, generator: &g2) }
        let sc = SpectralLoss.spectralConvergence(eval.reconstructions[0], audio).meanDecibels
        XCTAssertLessThan(sc, -6, "level-0 spectral convergence \(sc) dB")
        XCTAssertLessThan(last, first / 3, "loss went from \(first) to \(last)")
    }

    func testCodeStatistics() {
        let stats = CodeStatistics([1, 1, 2, 3, 3, 3] as [Int32], codebookSize: 4)
        XCTAssertEqual(stats.count, 6)
        XCTAssertEqual(stats.distinct, 3)
        // p = 2/6, 1/6, 3/6
        XCTAssertEqual(stats.entropyBits, -(log2(1.0 / 3) / 3 + log2(1.0 / 6) / 6 + log2(0.5) / 2), accuracy: 1e-12)
        XCTAssertEqual(stats.repeatRate, 3.0 / 5, accuracy: 1e-12)
        XCTAssertEqual(CodeStatistics((0..<16).map { Int32($0) }, codebookSize: 16).entropyBits, 4, accuracy: 1e-12)
        // A 5-code pattern played 4 times recurs at lag 5 (15 of 15 positions); distinct codes never do.
        let pattern = CodeStatistics((0..<20).map { Int32([7, 2, 9, 2, 4][$0 % 5]) }, codebookSize: 16)
        XCTAssertEqual(pattern.recurrenceLag, 5)
        XCTAssertEqual(pattern.recurrence, 1, accuracy: 1e-12)
        XCTAssertEqual(CodeStatistics((0..<16).map { Int32($0) }, codebookSize: 16).recurrence, 0)
    }

    /// A code file whose metadata lies (a negative or too large length, hops that overflow,
    /// an unknown version) is refused when read, with the file and the field named, instead
    /// of crashing a later computation.
    func testLyingCodeFileMetadataIsRefused() throws {
        let dir = temporaryDirectory("lying-codes")
        var file = CodeFile(batch: 1, sampleRate: 22050, hops: [8, 32, 128], codebookSize: 2048, vqvaeDigest: "d", source: "t")
        file.set(level: 2, codes: [1, 2, 3, 4], length: 4)
        file.samples = 500
        try file.write(dir + "/good.codes.safetensors")
        XCTAssertEqual(try CodeFile.read(dir + "/good.codes.safetensors").samples, 500)
        let good = try Safetensors.read(path: dir + "/good.codes.safetensors")
        let lies: [(String, String, String)] = [("samples", "-5", "samples"), ("samples", "513", "samples"),
                                                 ("hops", "8,32,9223372036854775807", "hops"), ("hops", "8,,128", "hops"),
                                                 ("hops", "32,8,128", "hops"), ("sample_rate", "0", "sample_rate"),
                                                 ("codebook_size", "99999999", "codebook_size"), ("version", "99", "version")]
        for (key, value, named) in lies {
            var metadata = good.metadata
            metadata[key] = value
            let path = dir + "/\(key)-\(value.count).codes.safetensors"
            try Safetensors.write(path: path, tensors: good.tensors.map { (name: $0.key, value: $0.value, storeAs: SafetensorsDType.i16) },
                                  metadata: metadata)
            XCTAssertThrowsError(try CodeFile.read(path), "\(key)=\(value)") {
                XCTAssertTrue("\($0)".contains(path) && "\($0)".contains(named), "\(key)=\(value): \($0)")
            }
        }
    }

    /// Chunked encoding and decoding equal a whole-signal pass bit for bit, whatever the chunk
    /// size: each window runs on the whole signal's tile grid (see `Tensor+Conv1d.swift`). This
    /// holds whatever kernels OpenBLAS picks; `make test-matrix` runs it under several.
    func testChunkedCodingEqualsWholeSignal() throws {
        let config = try tinyVQVAEConfig()
        let model = VQVAE(config: config, seed: 9)
        var g = RandomGenerator(seed: 1)
        let signal = chordWithClicks(count: 30_000, sampleRate: config.sampleRate, phase: 17)   // not a multiple of 128
        _ = model.step(Tensor(Array(signal[0..<4096]), shape: [1, 4096]), training: true, generator: &g)
        for level in 0..<3 {
            let reach = model.encoderReach(level: level)
            XCTAssertGreaterThan(reach, 0)
            let whole = model.encodeSignal(signal, level: level, chunk: 1 << 30)
            XCTAssertEqual(whole.count, (30_000 + 127) / 128 * 128 / config.hops[level])
            for chunk in [128, 2048, 5 * 128 + 1, 9000] {   // many chunks; sizes not on any tile grid
                let chunked = model.encodeSignal(signal, level: level, chunk: chunk)
                let differing = zip(chunked, whole).filter { $0 != $1 }.count
                XCTAssertTrue(chunked.count == whole.count && differing == 0,
                              "level \(level), chunk \(chunk): \(differing) of \(whole.count) codes differ")
            }
            let a = model.decodeSignal(whole, level: level, chunk: 1 << 30)
            for chunk in [1024, 3 * config.hops[level] + 5 * 8] {
                let b = model.decodeSignal(whole, level: level, chunk: chunk)
                let differing = zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count
                XCTAssertTrue(a.count == b.count && differing == 0,
                              "level \(level), chunk \(chunk): \(differing) of \(a.count) samples differ (max \(maxAbs(a, b)))")
            }
        }
    }
}

func maxAbs(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "sizes \(a.count) and \(b.count) differ")
    return zip(a, b).reduce(0) { Swift.max($0, Swift.abs($1.0 - $1.1)) }
}

/// Training runs through the trainer: exact resume, Ctrl-C, bad inputs.
final class VQVAETrainerTests: XCTestCase {
    /// A folder with a few synthetic WAV files.
    static func makeData(_ name: String, files: Int = 4, seconds: Double = 2, sampleRate: Int = 8000) throws -> String {
        let dir = temporaryDirectory(name)
        for i in 0..<files {
            let audio = chordWithClicks(count: Int(seconds * Double(sampleRate)), sampleRate: sampleRate, phase: 977 * i)
            try AudioFile.write(dir + "/clip\(i).wav", samples: audio, sampleRate: sampleRate)
        }
        return dir
    }

    func parameters(_ trainer: VQVAETrainer) -> [Float] {
        trainer.model.namedParameters().flatMap { $0.tensor.array } + trainer.model.stateTensors().flatMap { $0.1.array }
    }

    /// 10 steps straight and 5 + resume + 5 give the same parameters, bit for bit.
    func testResumeContinuesExactly() throws {
        var config = try tinyVQVAEConfig()
        config.train.evalEvery = 0
        let data = try Self.makeData("resume-data")
        let straightDir = temporaryDirectory("straight"), splitDir = temporaryDirectory("split")
        try FileManager.default.removeItem(atPath: splitDir)
        let straight = try VQVAETrainer(config: config, data: [data], outDirectory: straightDir + "/run", seed: 3, resume: false)
        XCTAssertEqual(try straight.train(totalSteps: 10) { _ in }, .finished(step: 10))
        let first = try VQVAETrainer(config: config, data: [data], outDirectory: splitDir, seed: 3, resume: false)
        XCTAssertEqual(try first.train(totalSteps: 5) { _ in }, .finished(step: 5))
        // Resuming with another config is refused, naming what differs (a new step budget is not).
        var other = config
        other.width += 1
        other.train.learningRate *= 2
        other.train.steps += 100
        XCTAssertThrowsError(try VQVAETrainer(config: other, data: [data], outDirectory: splitDir, seed: 3, resume: true)) {
            XCTAssertTrue("\($0)".contains("differs in train.learning_rate, width"), "\($0)")
        }
        var longer = config
        longer.train.steps += 100
        let second = try VQVAETrainer(config: longer, data: [data], outDirectory: splitDir, seed: 99, resume: true)
        XCTAssertEqual(second.step, 5)
        XCTAssertEqual(try second.train(totalSteps: 10) { _ in }, .finished(step: 10))
        XCTAssertEqual(parameters(straight), parameters(second), "resumed run differs from the straight run")
        // The metrics log holds each step once.
        let rows = try String(contentsOfFile: splitDir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(rows.count, 2)
    }

    func testInterruptWritesACheckpoint() throws {
        let config = try tinyVQVAEConfig()
        let data = try Self.makeData("interrupt-data")
        let out = temporaryDirectory("interrupt") + "/run"
        let trainer = try VQVAETrainer(config: config, data: [data], outDirectory: out, seed: 1, resume: false)
        Interrupt.request()
        defer { Interrupt.reset() }
        XCTAssertEqual(try trainer.train(totalSteps: 50) { _ in }, .interrupted(step: 1))
        XCTAssertEqual(try Checkpoint.read(out + "/checkpoint.safetensors", kind: "vqvae").step, 1)
        // A second run in the same folder without --resume is refused (nothing is overwritten).
        XCTAssertThrowsError(try VQVAETrainer(config: config, data: [data], outDirectory: out, seed: 1, resume: false)) {
            XCTAssertTrue("\($0)".contains("--resume"), "\($0)")
        }
    }

    /// `--extend`: a VQ-VAE with a level added on top keeps the trained levels bit for bit and
    /// trains only the new one; codes of the kept levels from the old VQ-VAE are accepted as
    /// its own, codes of the new level are not the old one's, and a config that changes a kept
    /// level is refused.
    func testExtendingAVQVAEKeepsItsLevels() throws {
        var config = try tinyVQVAEConfig()
        config.train.evalEvery = 0
        let data = try Self.makeData("extend-data")
        let dir = temporaryDirectory("extend")
        let base = try VQVAETrainer(config: config, data: [data], outDirectory: dir + "/base", seed: 1, resume: false)
        _ = try base.train(totalSteps: 5) { _ in }
        let basePath = dir + "/base/checkpoint.safetensors"
        var four = config
        four.downsT = [3, 2, 2, 1]
        four.stridesT = [2, 2, 2, 2]
        four.hvqvaeMultipliers = [1, 1, 1, 1]
        let extended = try VQVAETrainer(config: four, data: [data], outDirectory: dir + "/ext", seed: 2, resume: false,
                                        extending: basePath)
        XCTAssertEqual(extended.trainedLevels, [3])
        _ = try extended.train(totalSteps: 5) { _ in }
        let old = try VQVAE.load(basePath), new = try VQVAE.load(dir + "/ext/checkpoint.safetensors")
        let oldTensors = Dictionary(uniqueKeysWithValues: old.inferenceTensors().map { ($0.0, $0.1.array) })
        for (name, tensor) in new.inferenceTensors() {
            if let kept = oldTensors[name] { XCTAssertEqual(tensor.array, kept, "\(name) changed") }
        }
        XCTAssertNotEqual(new.identity, old.identity)
        XCTAssertEqual(new.lineage, [VQVAELineage(digest: old.identity, levels: 3)])
        XCTAssertTrue(new.accepts(digest: old.identity, levels: [0, 1, 2]))
        XCTAssertFalse(new.accepts(digest: old.identity, levels: [2, 3]))
        // Resuming keeps training level 3 only.
        let resumed = try VQVAETrainer(config: four, data: [data], outDirectory: dir + "/ext", seed: 2, resume: true)
        XCTAssertEqual(resumed.trainedLevels, [3])
        // A config whose level 0 differs cannot extend the old VQ-VAE.
        var other = four
        other.downsT = [2, 3, 2, 1]
        XCTAssertThrowsError(try VQVAETrainer(config: other, data: [data], outDirectory: dir + "/bad", seed: 2, resume: false,
                                              extending: basePath)) {
            XCTAssertTrue("\($0)".contains("not the config's first 3 levels"), "\($0)")
        }
        // Code files: the old VQ-VAE's level-2 codes are the new one's too.
        let signal = chordWithClicks(count: 4096, sampleRate: config.sampleRate)
        var codes = CodeFile(batch: 1, sampleRate: config.sampleRate, hops: old.hops, codebookSize: config.lBins,
                             vqvaeDigest: old.identity, source: "t")
        codes.set(level: 2, codes: old.encodeSignal(signal, level: 2), length: 4096 / 128)
        XCTAssertNoThrow(try Codec.checkCompatible(codes, path: "t", model: new))
        XCTAssertEqual(codes.levels[2], new.encodeSignal(signal, level: 2))

        // A four-level bundle: upsamplers 1 and 0 trained on the old VQ-VAE, the level-2
        // upsampler and the top prior on the new one; it assembles, loads and samples.
        func trainPrior(_ name: String, level: Int, vqvae: String, downT: Int = 2) throws -> String {
            var c = try PriorConfig.load(path: repoPath("configs/\(name).json"))
            c.level = level
            c.conditioner.downT = downT
            c.train.evalEvery = 0
            let trainer = try PriorTrainer(config: c, vqvaePath: vqvae, data: [data], labels: nil,
                                           outDirectory: dir + "/prior\(level)", seed: 1, resume: false) { _ in }
            _ = try trainer.train(totalSteps: 1) { _ in }
            return dir + "/prior\(level)/checkpoint.safetensors"
        }
        let extendedPath = dir + "/ext/checkpoint.safetensors"
        let priors = [try trainPrior("prior-tiny", level: 3, vqvae: extendedPath),
                      try trainPrior("upsampler-tiny", level: 2, vqvae: extendedPath, downT: 1),
                      try trainPrior("upsampler-tiny", level: 1, vqvae: basePath),
                      try trainPrior("upsampler-tiny", level: 0, vqvae: basePath)]
        try ModelBundle.assemble(vqvae: extendedPath, priors: priors, into: dir + "/bundle", storeAs: .f16)
        let bundle = try ModelBundle(path: dir + "/bundle")
        XCTAssertEqual(bundle.topLevel, 3)
        let r = SamplingRequest(samples: 4096, seed: 1, artist: bundle.manifest.defaultArtist, levels: [3, 2, 1, 0])
        let sampler = try MusicSampler(bundle: bundle, request: r, jobPath: dir + "/s.codes.safetensors", resume: false)
        guard case .finished(let sampled) = try sampler.run(progress: { _ in }) else { return XCTFail("sampling stopped") }
        XCTAssertEqual(sampled.lengths[0], 4096 / 8)
        // The bundle's VQ-VAE keeps the level-0 decoder only, under the full model's identity:
        // its level-0 audio is the full model's, bit for bit (F32 storage), and other levels
        // are refused with the file named.
        try ModelBundle.assemble(vqvae: extendedPath, priors: priors, into: dir + "/b32")
        let full = try VQVAE.load(extendedPath), trimmed = try VQVAE.load(dir + "/b32/vqvae.safetensors")
        XCTAssertEqual(trimmed.decoderLevels, [0])
        XCTAssertEqual(trimmed.identity, full.identity)
        XCTAssertEqual(trimmed.decode(sampled.levels[0]!, batch: 1, level: 0).array, full.decode(sampled.levels[0]!, batch: 1, level: 0).array)
        XCTAssertNoThrow(try trimmed.requireDecoders([0], source: "b32"))
        XCTAssertThrowsError(try trimmed.requireDecoders([0, 2], source: "b32/vqvae.safetensors")) {
            XCTAssertTrue("\($0)".contains("b32/vqvae.safetensors") && "\($0)".contains("level-2"), "\($0)")
        }
        // A four-level VQ-VAE trained from scratch is not the old one's extension: the old
        // upsamplers are refused.
        let scratch = try VQVAETrainer(config: four, data: [data], outDirectory: dir + "/scratch", seed: 5, resume: false)
        _ = try scratch.train(totalSteps: 1) { _ in }
        XCTAssertThrowsError(try ModelBundle.assemble(vqvae: dir + "/scratch/checkpoint.safetensors", priors: priors,
                                                      into: dir + "/b2")) {
            XCTAssertTrue("\($0)".contains("VQ-VAE"), "\($0)")
        }
    }

    func testBadInputsGiveNamedErrors() throws {
        let dir = temporaryDirectory("bad")
        XCTAssertThrowsError(try VQVAE.load(dir + "/missing.safetensors")) { XCTAssertTrue("\($0)".contains("missing.safetensors")) }
        // A checkpoint of another kind.
        try Checkpoint.write(dir + "/prior.safetensors", kind: "prior", config: "{}", step: 0, tensors: [("w", Tensor.zeros([2]))])
        XCTAssertThrowsError(try VQVAE.load(dir + "/prior.safetensors")) {
            XCTAssertTrue("\($0)".contains("is a prior checkpoint, expected a vqvae"), "\($0)")
        }
        // Configs: unknown key, hops that do not divide, zero width.
        for (json, key) in [("{\"widht\": 3}", "widht"), ("{\"train\": {\"sample_length\": 3000}}", "sample_length"),
                            ("{\"width\": 0}", "width"), ("{\"downs_t\": [3, 2]}", "downs_t")] {
            XCTAssertThrowsError(try VQVAEConfig.decode(Data(json.utf8), source: "c.json")) {
                XCTAssertTrue("\($0)".contains(key), "\($0) should name \(key)")
            }
        }
        // Code files: a code beyond the codebook, and codes from another VQ-VAE.
        let config = try tinyVQVAEConfig()
        let model = VQVAE(config: config, seed: 1)
        var codes = CodeFile(batch: 1, sampleRate: config.sampleRate, hops: config.hops, codebookSize: config.lBins,
                             vqvaeDigest: model.identity, source: "test")
        codes.set(level: 2, codes: [1, 2, Int32(config.lBins)], length: 3)
        try codes.write(dir + "/bad.codes.safetensors")
        XCTAssertThrowsError(try CodeFile.read(dir + "/bad.codes.safetensors")) {
            XCTAssertTrue("\($0)".contains("outside the codebook"), "\($0)")
        }
        codes.set(level: 2, codes: [1, 2, 3], length: 3)
        codes.vqvaeDigest = "0123456789abcdef"
        try codes.write(dir + "/other.codes.safetensors")
        let other = try CodeFile.read(dir + "/other.codes.safetensors")
        XCTAssertThrowsError(try Codec.checkCompatible(other, path: "other", model: model)) {
            XCTAssertTrue("\($0)".contains("another VQ-VAE"), "\($0)")
        }
        XCTAssertNoThrow(try Codec.checkCompatible(other, path: "other", model: model, allowOtherModel: true))
    }
}
