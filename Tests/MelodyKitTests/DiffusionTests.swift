// The latent diffusion model: the reference's schedule constants, the paper-sized denoiser's
// size and a training step, and a tiny model that learns a two-mode distribution of sequences
// and samples it back with DDPM and with few-step DDIM, and infills.

import XCTest
import TensorCore
import ModelKit
import MIDI
@testable import MelodyKit

final class DiffusionTests: XCTestCase {
    func testTheScheduleMatchesTheReference() {
        let s = DiffusionSchedule()
        XCTAssertEqual(s.steps, 1000)
        XCTAssertEqual(s.betas.first!, 1e-6, accuracy: 1e-15)
        XCTAssertEqual(s.betas.last!, 0.01, accuracy: 1e-15)
        XCTAssertEqual(s.alphaBars[1000], 0.0066226, accuracy: 5e-7)
        XCTAssertEqual(s.alphaBars[1000].squareRoot(), 0.0814, accuracy: 1e-4)
        var g = RandomGenerator(seed: 1)
        for _ in 0..<1000 {
            let a = s.trainingAlphaBar(&g)
            XCTAssertTrue(a >= s.alphaBars[1000] && a <= 1)
        }
        var c = MelodyDiffusionConfig()
        c.train.decayEvery = 10000
        XCTAssertEqual(c.train.learningRate(step: 9999), 1e-3, accuracy: 1e-9)
        XCTAssertEqual(c.train.learningRate(step: 20000), 1e-3 * 0.98 * 0.98, accuracy: 1e-9)
    }

    func testThePaperDenoiserHasItsSizeAndTakesAStep() throws {
        var c = MelodyDiffusionConfig()
        c.latentDims = 42
        c.length = 32
        let model = Denoiser(config: c, seed: 1)
        // The reference note counts about 25.5 M parameters for these shapes.
        XCTAssertEqual(Double(model.parameterCount), 25.5e6, accuracy: 0.3e6)
        let optimizer = Adam(parameters: model.namedParameters(), learningRate: c.train.learningRate, warmupSteps: 0)
        var g = RandomGenerator(seed: 2)
        let x0 = Tensor.randomUniform([2, 32, 42], low: -1, high: 1, generator: &g)
        let loss = model.loss(x0, schedule: c.schedule, generator: &g)
        XCTAssertTrue(loss.item.isFinite)
        loss.backward()
        XCTAssertTrue(clipGradientNorm(optimizer.parameters, maxNorm: 1).isFinite)
        optimizer.update()
    }

    /// Sequences of 4 latents of 2 dimensions, all (0.5, −0.5) or all (−0.5, 0.5): a tiny model
    /// learns them, and its samples land on the two modes with every position agreeing.
    func testATinyModelLearnsTwoModesAndSamplesThem() throws {
        var c = MelodyDiffusionConfig()
        (c.latentDims, c.length, c.width, c.layers, c.heads, c.mlpWidth) = (2, 4, 32, 1, 2, 64)
        (c.denseWidth, c.denseBlocks, c.noiseFeatures, c.filmWidth) = (64, 1, 32, 32)
        c.diffusionSteps = 200
        c.betaEnd = 0.05
        let model = Denoiser(config: c, seed: 3)
        let optimizer = Adam(parameters: model.namedParameters(), learningRate: 3e-3, warmupSteps: 0)
        var g = RandomGenerator(seed: 4)
        let schedule = c.schedule
        let B = 64
        for _ in 0..<800 {
            var values: [Float] = []
            for _ in 0..<B {
                let s: Float = g.uniform() < 0.5 ? 1 : -1
                for _ in 0..<c.length { values += [0.5 * s, -0.5 * s] }
            }
            optimizer.zeroGrad()
            let loss = model.loss(Tensor(values, shape: [B, c.length, 2]), schedule: schedule, generator: &g)
            loss.backward()
            _ = clipGradientNorm(optimizer.parameters, maxNorm: 1)
            optimizer.update()
        }
        let sampler = DiffusionSampler(model: model)
        func check(_ x: Tensor, _ what: String) {
            let n = x.shape[0]
            var onMode = 0, agreeing = 0
            for i in 0..<n {
                let row = Array(x.array[(i * 8)..<((i + 1) * 8)])
                let sign: Float = row[0] > 0 ? 1 : -1
                if (0..<4).allSatisfy({ abs(row[2 * $0] - 0.5 * sign) < 0.2 && abs(row[2 * $0 + 1] + 0.5 * sign) < 0.2 }) { onMode += 1 }
                if (0..<4).allSatisfy({ (row[2 * $0] > 0) == (sign > 0) }) { agreeing += 1 }
            }
            XCTAssertGreaterThanOrEqual(onMode, n * 8 / 10, "\(what): \(onMode) of \(n) samples on a mode")
            XCTAssertGreaterThanOrEqual(agreeing, n * 9 / 10, "\(what): \(agreeing) of \(n) samples agree along the sequence")
        }
        check(sampler.sample(count: 40, generator: &g), "DDPM")
        check(sampler.sample(count: 40, steps: 20, eta: 0, generator: &g), "DDIM-20")
        // Infilling: positions 0 and 3 fixed on the negative mode; 1 and 2 must follow it.
        var values: [Float] = [], mask: [Float] = []
        for _ in 0..<20 {
            for p in 0..<4 {
                values += [-0.5, 0.5]
                mask += (p == 0 || p == 3) ? [1, 1] : [0, 0]
            }
        }
        let infilled = sampler.sample(count: 20, generator: &g, keep: (values, mask)).array
        var followed = 0
        for i in 0..<20 where infilled[i * 8 + 2] < -0.3 && infilled[i * 8 + 4] < -0.3 { followed += 1 }
        XCTAssertGreaterThanOrEqual(followed, 18, "infilled positions follow the fixed ones")
    }
}

final class MelodyDiffusionTrainerTests: XCTestCase {
    /// Latent sequences from a tiny VAE, the transform fitted on them, training that resumes
    /// exactly.
    func testTrainingOnLatentsResumesExactly() throws {
        let (folder, _, vae) = try MelodyVAETests.tinyVAE("diffusion", steps: 5)
        let config = try MelodyDiffusionConfig.load(path: repoPath("configs/melody-diffusion-tiny.json"))
        let straight = temporaryDirectory("diffusion-straight") + "/run", resumed = temporaryDirectory("diffusion-resumed") + "/run"
        let a = try MelodyDiffusionTrainer(config: config, vaePath: vae, data: [folder], outDirectory: straight, seed: 2, resume: false)
        XCTAssertEqual(a.train.count, 4, "one window of two chunks per melody")
        XCTAssertEqual(a.config.latentDims, a.transform.kept.count)
        XCTAssertTrue(a.train.values.allSatisfy { $0 >= -1 && $0 <= 1 }, "training latents lie in [−1, 1]")
        XCTAssertEqual(a.train.values.min()!, -1, accuracy: 1e-5)
        XCTAssertEqual(a.train.values.max()!, 1, accuracy: 1e-5)
        _ = try a.train(totalSteps: 20) { _ in }
        _ = try MelodyDiffusionTrainer(config: config, vaePath: vae, data: [folder], outDirectory: resumed, seed: 2, resume: false)
            .train(totalSteps: 10) { _ in }
        let c = try MelodyDiffusionTrainer(config: config, vaePath: vae, data: [folder], outDirectory: resumed, seed: 2, resume: true)
        XCTAssertEqual(c.step, 10)
        XCTAssertEqual(c.transform, a.transform)
        _ = try c.train(totalSteps: 20) { _ in }
        for (x, y) in zip(a.model.namedParameters(), c.model.namedParameters()) { XCTAssertEqual(x.tensor.array, y.tensor.array, x.name) }
        // The inverse restores the kept dimensions.
        var g = RandomGenerator(seed: 1)
        let z = (0..<a.transform.zSize).map { Float($0) / Float(a.transform.zSize) - 0.5 }
        let back = a.transform.inverse(a.transform.forward(z[...])[...], generator: &g)
        for d in a.transform.kept { XCTAssertEqual(back[d], z[d], accuracy: 1e-5) }
        // Transposition adds a window per shift that keeps a melody in range (all four of ±2
        // here), leaves the held-out split alone, and the transposed latents differ.
        let model = try MelodyVAE.load(vae)
        let plain = try LatentTrainingData(vae: model, sources: [folder], length: config.length, transform: nil, seed: 3) { _ in }
        let moved = try LatentTrainingData(vae: model, sources: [folder], length: config.length, transform: nil, seed: 3, transpose: 2) { _ in }
        XCTAssertEqual(moved.train.count, 5 * plain.train.count)
        XCTAssertEqual(moved.heldOut.count, plain.heldOut.count)
        XCTAssertEqual(Set(moved.train.values.map(\.bitPattern)).count > Set(plain.train.values.map(\.bitPattern)).count, true)
    }
}

final class MelodyModelTests: XCTestCase {
    /// A bundle of tiny checkpoints samples the same melodies for the same seed, refuses bars
    /// it cannot make, and infilling keeps the bars it was not asked to generate.
    func testBundleSampleAndInfill() throws {
        let (folder, melodies, vae) = try MelodyVAETests.tinyVAE("model")
        let config = try MelodyDiffusionConfig.load(path: repoPath("configs/melody-diffusion-tiny.json"))
        let bundle = try MelodyVAETests.tinyBundle("model", Denoiser.self, config: config, vae: vae, folder: folder)
        let model = try MelodyModel(path: bundle)
        XCTAssertEqual(model.maximumBars, 4)
        let a = try model.sample(count: 3, bars: 4, steps: 10, eta: 0, seed: 7)
        let b = try model.sample(count: 3, bars: 4, steps: 10, eta: 0, seed: 7)
        XCTAssertEqual(a.map(\.events), b.map(\.events))
        XCTAssertEqual(a[0].events.count, 64)
        XCTAssertEqual(try model.sample(count: 1, bars: 2, steps: nil, eta: 0, seed: 1)[0].events.count, 32)
        XCTAssertThrowsError(try model.sample(count: 1, bars: 6, steps: 10, eta: 0, seed: 1))
        XCTAssertThrowsError(try model.sample(count: 1, bars: 3, steps: 10, eta: 0, seed: 1))
        let infilled = try model.infill(melodies[0], bars: 3...4, steps: 10, eta: 0, seed: 3)
        XCTAssertEqual(Array(infilled.events[0..<32]), Array(melodies[0].events[0..<32]), "bars 1-2 are kept")
        XCTAssertThrowsError(try model.infill(melodies[0], bars: 2...3, steps: 10, eta: 0, seed: 3))
    }

    /// Batch infilling keeps every melody's other bars, and the interpolation baseline decodes
    /// the midpoint of the latents either side (three 2-bar chunks, the middle one generated).
    func testBatchInfillAndInterpolation() throws {
        let (folder, melodies, vae) = try MelodyVAETests.tinyVAE("interpolation", rounds: 3)
        var config = try MelodyDiffusionConfig.load(path: repoPath("configs/melody-diffusion-tiny.json"))
        config.length = 3
        let bundle = try MelodyVAETests.tinyBundle("interpolation", Denoiser.self, config: config, vae: vae, folder: folder, storeAs: .f32)
        let model = try MelodyModel(path: bundle)
        XCTAssertEqual(model.maximumBars, 6)
        let kept = { (m: Melody) in Array(m.events[0..<32]) + Array(m.events[64..<96]) }
        let infilled = try model.infill(melodies, bars: 3...4, steps: 5, eta: 0, seed: 4)
        XCTAssertEqual(infilled.count, melodies.count)
        for (made, original) in zip(infilled, melodies) {
            XCTAssertEqual(made.events.count, 96)
            XCTAssertEqual(kept(made), kept(original), "bars 1-2 and 5-6 are kept")
        }
        let interpolated = try model.infill(melodies, bars: 3...4, steps: nil, eta: 0, seed: 4, method: .interpolate)
        let firstBars = melodies.map { Melody(events: Array($0.events[0..<96])) }
        let latents = MelodyLatents.encode(firstBars, sources: firstBars.indices.map { "\($0)" }, model: model.vae, seed: 4)
        let Z = model.vae.config.zSize
        var midpoints: [Float] = []
        for n in 0..<melodies.count {
            for d in 0..<Z {
                let before: Float = latents.z[3 * n * Z + d], after: Float = latents.z[(3 * n + 2) * Z + d]
                midpoints.append(0.5 * before + 0.5 * after)
            }
        }
        let decoded = model.vae.greedyDecode(Tensor(midpoints, shape: [melodies.count, Z]), steps: 32)
        for (n, made) in interpolated.enumerated() {
            XCTAssertEqual(kept(made), kept(melodies[n]))
            XCTAssertEqual(made.events[32..<64].map(Int32.init), Array(decoded[(n * 32)..<((n + 1) * 32)]), "the middle chunk decodes the midpoint")
        }
        XCTAssertThrowsError(try model.infill(melodies, bars: 1...2, steps: nil, eta: 0, seed: 4, method: .interpolate), "no kept chunk before")
        XCTAssertThrowsError(try model.infill([Melody(events: Array(melodies[0].events[0..<64]))], bars: 3...4, steps: 5, eta: 0, seed: 4),
                             "too short for the sequence")
    }
}

final class MelodyMetricsTests: XCTestCase {
    func testTheOverlapFormulaIsExact() {
        XCTAssertEqual(normalOverlap((60, 2), (60, 2)), 1, accuracy: 1e-12)
        // Equal variances, means one σ apart: 2Φ(−1/2).
        XCTAssertEqual(normalOverlap((0, 1), (1, 1)), 0.617075, accuracy: 1e-6)
        XCTAssertEqual(normalOverlap((1, 1), (0, 1)), 0.617075, accuracy: 1e-6)
        // The cases the reference repo's formula gets wrong (CPython's NormalDist.overlap values).
        XCTAssertEqual(normalOverlap((60, 2), (62, 2)), 0.617075, accuracy: 1e-6)
        XCTAssertEqual(normalOverlap((0, 2), (0, 3)), 0.806, accuracy: 1e-3)
        XCTAssertEqual(normalOverlap((0, 1), (0, 2)), normalOverlap((0, 2), (0, 1)), accuracy: 1e-12)
        XCTAssertLessThan(normalOverlap((0, 1), (10, 1)), 1e-6)
    }

    func testFramesPairsAndScores() {
        // 16 bars of one repeated bar: 6 frames, 5 identical pairs with overlap 1.
        let bar: [UInt8] = [Melody.noteOn(pitch: 60)] + [UInt8](repeating: 0, count: 3) + [Melody.noteOn(pitch: 64)] + [UInt8](repeating: 0, count: 11)
        let steady = Melody(events: (0..<16).flatMap { _ in bar })
        let overlaps = FrameOverlaps([steady])
        XCTAssertEqual(overlaps.pitch.count, 5)
        XCTAssertTrue(overlaps.pitch.allSatisfy { abs($0 - 1) < 1e-9 })
        let scores = ConsistencyVariance(overlaps, reference: overlaps)
        XCTAssertEqual(scores.pitchConsistency, 1)
        XCTAssertEqual(scores.durationConsistency, 1)
        // A melody that changes register halfway scores lower consistency against the steady one.
        let moving = Melody(events: (0..<16).flatMap { b in b < 8 ? bar : bar.map { $0 >= 2 ? $0 + 12 : $0 } })
        let other = FrameOverlaps([moving])
        XCTAssertLessThan(ConsistencyVariance(other, reference: overlaps).pitchConsistency, 1)
        var g = RandomGenerator(seed: 1)
        XCTAssertEqual(MelodyBaselines.randomChunks([steady], count: 3, bars: 8, generator: &g).map { $0.events.count }, [128, 128, 128])
        XCTAssertEqual(MelodyBaselines.randomNotes([steady], count: 2, bars: 8, generator: &g).map { $0.events.count }, [128, 128])
    }
}
