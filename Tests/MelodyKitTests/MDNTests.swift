// The TransformerMDN baseline: the mixture negative log-likelihood against finite differences
// and against the density written out by hand, causality, a tiny model that learns a two-mode
// distribution of sequences and samples it back, the trainer's exact resume, and model folders
// with an MDN prior (sampling, continuation, and the requests it refuses).

import XCTest
import Foundation
import TensorCore
import ModelKit
import MIDI
@testable import MelodyKit

final class MDNTests: XCTestCase {
    /// A tiny random mixture: logits (N, K), means and log scales (N, K, D), latents (N, D).
    func randomMixture(N: Int, K: Int, D: Int, seed: UInt64) -> (MixtureDensity, Tensor) {
        var g = RandomGenerator(seed: seed)
        let logits = Tensor.randomNormal([N, K], std: 1, generator: &g)
        let means = Tensor.randomNormal([N, K, D], std: 0.7, generator: &g)
        let logScales = Tensor.randomNormal([N, K, D], std: 0.4, generator: &g)
        for t in [logits, means, logScales] { t.requiresGrad = true }
        return (MixtureDensity(logits: logits, means: means, logScales: logScales), Tensor.randomNormal([N, D], std: 0.8, generator: &g))
    }

    /// Every element of the three inputs against central differences of Σ_n w_n·NLL_n. The
    /// objective is accumulated in Double over a Float forward pass; with a step of 1e-2 its
    /// rounding error is about 1e-5 and its truncation error about 1e-4 here, so a relative
    /// tolerance of 2e-3 (of max(1, |numeric|)) separates a right gradient from a wrong one.
    func testTheNegativeLogLikelihoodGradientMatchesFiniteDifferences() {
        let (N, K, D) = (3, 4, 2)
        let (mixture, x) = randomMixture(N: N, K: K, D: D, seed: 11)
        let weights: [Double] = [0.7, -1.3, 0.4]
        func objective() -> Double {
            let nll = Tensor.withoutGrad { mixture.negativeLogLikelihood(x) }
            return (0..<N).reduce(0) { $0 + weights[$1] * Double(nll.data[$1]) }
        }
        let nll = mixture.negativeLogLikelihood(x)
        nll.backward(gradient: Tensor(weights.map(Float.init), shape: [N]))
        let step: Float = 1e-2, tolerance: Float = 2e-3
        for (name, t) in [("logits", mixture.logits), ("means", mixture.means), ("log scales", mixture.logScales)] {
            guard let grad = t.grad else { return XCTFail("\(name): no gradient") }
            XCTAssertEqual(grad.shape, t.shape)
            for i in 0..<t.count {
                let saved = t.data[i]
                t.data[i] = saved + step
                let plus = objective()
                t.data[i] = saved - step
                let minus = objective()
                t.data[i] = saved
                let numeric = Float((plus - minus) / (2 * Double(step)))
                let error = abs(grad.data[i] - numeric) / max(1, abs(numeric))
                XCTAssertLessThanOrEqual(error, tolerance, "\(name)[\(i)]: analytic \(grad.data[i]), numeric \(numeric)")
            }
        }
    }

    /// −log Σ_k π_k Π_d N(x_d; μ_kd, σ_kd²) written out in Double, for a near latent and for a
    /// far one whose density (about e^−531) underflows Float: the log-sum-exp keeps it exact.
    func testTheNegativeLogLikelihoodIsTheMixtureDensity() {
        let logits: [Double] = [0.3, -0.2, 1.1, 0.3, -0.2, 1.1]                 // (2, 3)
        let means: [Double] = [0.1, -0.4, 0.8, 0.5, -0.3, 0.0, 0.1, -0.4, 0.8, 0.5, -0.3, 0.0]
        let logScales: [Double] = [-0.5, 0.2, 0.1, -1.0, 0.4, -0.2, -1.2, -1.0, -1.1, -1.3, -1.0, -1.2]
        let x: [Double] = [0.2, 0.1, 8.0, -7.5]                                // (2, 2)
        let (K, D) = (3, 2)
        let mixture = MixtureDensity(logits: Tensor(logits.map(Float.init), shape: [2, K]),
                                     means: Tensor(means.map(Float.init), shape: [2, K, D]),
                                     logScales: Tensor(logScales.map(Float.init), shape: [2, K, D]))
        let nll = mixture.negativeLogLikelihood(Tensor(x.map(Float.init), shape: [2, D])).array
        for n in 0..<2 {
            let total = (0..<K).reduce(0.0) { $0 + exp(logits[n * K + $1]) }
            var p = 0.0
            for k in 0..<K {
                var density = exp(logits[n * K + k]) / total
                for d in 0..<D {
                    let i = (n * K + k) * D + d, sigma = exp(logScales[i])
                    density *= exp(-0.5 * pow((x[n * D + d] - means[i]) / sigma, 2)) / (sigma * (2 * Double.pi).squareRoot())
                }
                p += density
            }
            XCTAssertGreaterThan(p, 0, "the density stays representable in Double")
            XCTAssertEqual(Double(nll[n]), -log(p), accuracy: 1e-5 * max(1, abs(log(p))), "row \(n)")
        }
        XCTAssertGreaterThan(nll[1], 500, "the far latent is very unlikely, and finite")
    }

    func tinyConfig(length: Int, dims: Int, components: Int) -> MelodyMDNConfig {
        var c = MelodyMDNConfig()
        (c.latentDims, c.length, c.width, c.layers, c.heads, c.mlpWidth) = (dims, length, 32, 2, 2, 64)
        (c.denseWidth, c.denseBlocks, c.components) = (48, 1, components)
        return c
    }

    /// Changing latent j changes no output at positions ≤ j (bit for bit) and does change the
    /// output at j + 1.
    func testAnOutputSeesOnlyEarlierLatents() {
        let model = TransformerMDN(config: tinyConfig(length: 5, dims: 3, components: 4), seed: 5)
        var g = RandomGenerator(seed: 6)
        let x = Tensor.randomNormal([2, 5, 3], std: 0.6, generator: &g)
        let base = Tensor.withoutGrad { model(x) }
        // The row of sequence b at position p of an output with rows (b, p).
        func row(_ t: Tensor, b: Int, p: Int) -> [Float] {
            let per = t.count / 10
            return Array(t.array[((b * 5 + p) * per)..<((b * 5 + p + 1) * per)])
        }
        for j in 0..<5 {
            let changed = Tensor(x.array, shape: x.shape)
            for b in 0..<2 { for d in 0..<3 { changed.data[(b * 5 + j) * 3 + d] += 0.5 } }
            let out = Tensor.withoutGrad { model(changed) }
            for b in 0..<2 {
                for p in 0..<5 {
                    let pairs = [(base.logits, out.logits), (base.means, out.means), (base.logScales, out.logScales)]
                    let same = pairs.allSatisfy { row($0.0, b: b, p: p) == row($0.1, b: b, p: p) }
                    if p <= j {
                        XCTAssertTrue(same, "latent \(j) changed the output at position \(p)")
                    } else if p == j + 1 {
                        XCTAssertFalse(same, "latent \(j) did not reach position \(p)")
                    }
                }
            }
        }
    }

    /// Sequences of 4 latents of 2 dimensions, all near (0.5, −0.5) or all near (−0.5, 0.5)
    /// (noise σ 0.05): the loss falls from about 3 nats per latent to below −1.5 (the
    /// distribution's own entropy is about −3); samples land on the two modes with every
    /// position following the first, and a given first latent is kept and followed.
    func testATinyModelLearnsTwoModesAndSamplesThem() {
        let c = tinyConfig(length: 4, dims: 2, components: 3)
        let model = TransformerMDN(config: c, seed: 3)
        let optimizer = Adam(parameters: model.namedParameters(), learningRate: 3e-3, warmupSteps: 0)
        var g = RandomGenerator(seed: 4)
        let B = 32
        var losses: [Float] = []
        for _ in 0..<500 {
            var values: [Float] = []
            for _ in 0..<B {
                let s: Float = g.uniform() < 0.5 ? 1 : -1
                for _ in 0..<c.length { values += [0.5 * s + 0.05 * g.normal(), -0.5 * s + 0.05 * g.normal()] }
            }
            optimizer.zeroGrad()
            let loss = model.loss(Tensor(values, shape: [B, c.length, 2]))
            losses.append(loss.item)
            loss.backward()
            _ = clipGradientNorm(optimizer.parameters, maxNorm: 1)
            optimizer.update()
        }
        let last = losses.suffix(20).reduce(0, +) / 20
        XCTAssertGreaterThan(losses[0], 1, "an untrained model is far off")
        XCTAssertLessThan(last, -1.5, "the loss falls: first \(losses[0]), last 20 steps \(last)")
        let x = MDNSampler(model: model).sample(count: 40, generator: &g).array
        var onMode = 0, agreeing = 0, positive = 0
        for i in 0..<40 {
            let row = Array(x[(i * 8)..<((i + 1) * 8)])
            let sign: Float = row[0] > 0 ? 1 : -1
            if sign > 0 { positive += 1 }
            if (0..<4).allSatisfy({ abs(row[2 * $0] - 0.5 * sign) < 0.2 && abs(row[2 * $0 + 1] + 0.5 * sign) < 0.2 }) { onMode += 1 }
            if (0..<4).allSatisfy({ (row[2 * $0] > 0) == (sign > 0) }) { agreeing += 1 }
        }
        XCTAssertGreaterThanOrEqual(onMode, 32, "\(onMode) of 40 samples on a mode")
        XCTAssertGreaterThanOrEqual(agreeing, 36, "\(agreeing) of 40 samples agree along the sequence")
        XCTAssertTrue((8...32).contains(positive), "both modes are drawn (\(positive) of 40 positive)")
        // A given first latent is kept, and the rest follow its mode.
        let prefix = Tensor((0..<10).flatMap { _ in [Float(-0.5), 0.5] }, shape: [10, 1, 2])
        let continued = MDNSampler(model: model).sample(count: 10, prefix: prefix, generator: &g).array
        for i in 0..<10 {
            XCTAssertEqual(Array(continued[(i * 8)..<(i * 8 + 2)]), [-0.5, 0.5])
            XCTAssertTrue((1..<4).allSatisfy { continued[i * 8 + 2 * $0] < -0.2 }, "continuation \(i) follows the given mode")
        }
    }

    /// `configs/melody-mdn-small.json` at the reference's 42 dimensions: its size (the head,
    /// 512 → 100 · 42 twice, dominates) and a training step.
    func testTheSmallConfigHasItsSizeAndTakesAStep() throws {
        var c = try MelodyMDNConfig.load(path: repoPath("configs/melody-mdn-small.json"))
        c.latentDims = 42
        let model = TransformerMDN(config: c, seed: 1)
        let head = 2 * (512 * 4200 + 4200) + 512 * 100 + 100
        let layer = 4 * 128 + (128 * 384 + 384) + (128 * 128 + 128) + (128 * 512 + 512) + (512 * 128 + 128)
        let trunk = (42 * 128 + 128) + 4 * layer + 2 * 128 + (128 * 512 + 512)
        let blocks = 2 * (4 * 512 + 2 * (512 * 512 + 512)) + 2 * 512
        XCTAssertEqual(model.parameterCount, trunk + blocks + head)
        let optimizer = Adam(parameters: model.namedParameters(), learningRate: c.train.learningRate, warmupSteps: 0)
        var g = RandomGenerator(seed: 2)
        let loss = model.loss(Tensor.randomUniform([2, 8, 42], low: -1, high: 1, generator: &g))
        XCTAssertTrue(loss.item.isFinite)
        loss.backward()
        XCTAssertTrue(clipGradientNorm(optimizer.parameters, maxNorm: 1).isFinite)
        optimizer.update()
    }
}

final class MelodyMDNTrainerTests: XCTestCase {
    /// Train 20 steps straight, or 10, resume, 10 more: the checkpoints are the same bytes.
    func testTrainingResumesExactly() throws {
        let (folder, _, vae) = try MelodyVAETests.tinyVAE("mdn", steps: 5)
        let config = try MelodyMDNConfig.load(path: repoPath("configs/melody-mdn-tiny.json"))
        let straight = temporaryDirectory("mdn-straight") + "/run", resumed = temporaryDirectory("mdn-resumed") + "/run"
        let a = try MelodyMDNTrainer(config: config, vaePath: vae, data: [folder], outDirectory: straight, seed: 2, resume: false)
        XCTAssertEqual(a.config.latentDims, a.transform.kept.count)
        _ = try a.train(totalSteps: 20) { _ in }
        _ = try MelodyMDNTrainer(config: config, vaePath: vae, data: [folder], outDirectory: resumed, seed: 2, resume: false)
            .train(totalSteps: 10) { _ in }
        let c = try MelodyMDNTrainer(config: config, vaePath: vae, data: [folder], outDirectory: resumed, seed: 2, resume: true)
        XCTAssertEqual(c.step, 10)
        _ = try c.train(totalSteps: 20) { _ in }
        let bytes = { (run: String) in FileManager.default.contents(atPath: run + "/checkpoint.safetensors") }
        XCTAssertNotNil(bytes(straight))
        XCTAssertEqual(bytes(straight), bytes(resumed), "resumed training writes the same checkpoint")
        // A diffusion run's checkpoint is not resumed as an MDN.
        let diffusion = try MelodyDiffusionConfig.load(path: repoPath("configs/melody-diffusion-tiny.json"))
        let other = temporaryDirectory("mdn-other") + "/run"
        _ = try MelodyDiffusionTrainer(config: diffusion, vaePath: vae, data: [folder], outDirectory: other, seed: 2, resume: false)
            .train(totalSteps: 2) { _ in }
        XCTAssertThrowsError(try MelodyMDNTrainer(config: config, vaePath: vae, data: [folder], outDirectory: other, seed: 2, resume: true))
    }
}

final class MelodyMDNModelTests: XCTestCase {
    /// A bundle with an MDN prior samples the same melodies for the same seed, refuses the
    /// diffusion settings, continues a melody (kept bars unchanged) and refuses to infill bars
    /// that kept bars follow.
    func testBundleSampleAndContinue() throws {
        let (folder, melodies, vae) = try MelodyVAETests.tinyVAE("mdn-model")
        let config = try MelodyMDNConfig.load(path: repoPath("configs/melody-mdn-tiny.json"))
        let bundle = try MelodyVAETests.tinyBundle("mdn-model", TransformerMDN.self, config: config, vae: vae, folder: folder)
        XCTAssertTrue(FileManager.default.fileExists(atPath: bundle + "/mdn.safetensors"))
        let model = try MelodyModel(path: bundle)
        guard case .mdn = model.prior else { return XCTFail("the bundle's prior is not the MDN") }
        XCTAssertEqual(model.maximumBars, 4)
        var latents: [Int] = []
        let a = try model.sample(count: 3, bars: 4, steps: nil, eta: 0, seed: 7) { done, _ in latents.append(done) }
        let b = try model.sample(count: 3, bars: 4, steps: nil, eta: 0, seed: 7)
        XCTAssertEqual(latents, [1, 2], "progress counts latents")
        XCTAssertEqual(a.map(\.events), b.map(\.events))
        XCTAssertEqual(a[0].events.count, 64)
        XCTAssertEqual(try model.sample(count: 1, bars: 2, steps: nil, eta: 0, seed: 1)[0].events.count, 32)
        XCTAssertThrowsError(try model.sample(count: 1, bars: 4, steps: 10, eta: 0, seed: 1))
        XCTAssertThrowsError(try model.sample(count: 1, bars: 4, steps: nil, eta: 0.5, seed: 1))
        XCTAssertThrowsError(try model.sample(count: 1, bars: 6, steps: nil, eta: 0, seed: 1))
        let continued = try model.infill(melodies[0], bars: 3...4, steps: nil, eta: 0, seed: 3)
        XCTAssertEqual(continued.events.count, 64)
        XCTAssertEqual(Array(continued.events[0..<32]), Array(melodies[0].events[0..<32]), "bars 1-2 are kept")
        XCTAssertEqual(try model.infill(melodies[0], bars: 1...4, steps: nil, eta: 0, seed: 3).events.count, 64)
        XCTAssertThrowsError(try model.infill(melodies[0], bars: 1...2, steps: nil, eta: 0, seed: 3)) { error in
            XCTAssertTrue("\(error)".contains("left to right"), "\(error)")
        }
        // A checkpoint that is not a prior is named as such.
        XCTAssertThrowsError(try MelodyModel.assemble(vae: vae, prior: vae,
                                                      into: temporaryDirectory("mdn-model-wrong"))) { error in
            XCTAssertTrue("\(error)".contains("not a melody prior"), "\(error)")
        }
    }
}
