// Memory estimates made from configs before anything is allocated: parameter counts equal the
// built models', and a training run's estimate bounds the tensor memory its steps really reach
// (TensorStorage's high-water mark) from above, by no more than 2.5 times.

import XCTest
import TensorCore
@testable import JukeboxKit
@testable import ModelKit

final class MemoryEstimateTests: XCTestCase {
    func testParameterCountsEqualTheBuiltModels() throws {
        for name in ["vqvae-tiny", "vqvae-small", "vqvae-small-4level", "vqvae-jukebox"] {
            var config = try VQVAEConfig.load(path: repoPath("configs/\(name).json"))
            XCTAssertEqual(config.parameterCount, VQVAE(config: config, seed: 1).parameterCount, name)
            config.mConv = 0.5
            config.hvqvaeMultipliers = Array(repeating: 1, count: config.levels - 1) + [2]
            XCTAssertEqual(config.parameterCount, VQVAE(config: config, seed: 1).parameterCount, name + " varied")
        }
        let vocabulary = LabelVocabulary(artists: ["a", "b", "c"], genres: ["g", "h"])
        for (name, level) in [("prior-tiny", 2), ("upsampler-tiny", 1), ("prior-small", 2), ("upsampler-small", 0),
                              ("prior-5b", 2), ("prior-1b", 2), ("upsampler-jukebox", 1), ("prior-small-hop512", 3)] {
            var config = try PriorConfig.load(path: repoPath("configs/\(name).json"), level: level)
            if config.width > 512 {             // the paper's shapes, at a depth and context that build quickly
                config.depth = 2
                config.nCtx = 256
                config.blocks = Swift.min(config.blocks, 4)
            }
            let levels = level == 3 ? 4 : 3
            let built = Prior(config: config, levels: levels, vocabulary: vocabulary, sampleRate: 22050, seed: 1)
            XCTAssertEqual(config.parameterCount(levels: levels, artists: vocabulary.artists.count, genres: vocabulary.genres.count),
                           built.parameterCount, name)
        }
    }

    /// Measures the peak of tensor memory over a few real training steps against the estimate.
    func testTrainingEstimatesBoundTheMeasuredPeak() throws {
        let data = try VQVAETrainerTests.makeData("memory-data", files: 2, seconds: 4, sampleRate: 22050)
        func measure(_ body: () throws -> Int) rethrows -> (bytes: Int, parameters: Int) {
            let before = TensorStorage.liveBytes
            TensorStorage.resetPeakBytes()
            let parameters = try body()
            return (TensorStorage.peakBytes - before, parameters)
        }
        func check(_ what: String, _ estimate: MemoryEstimate, _ measured: (bytes: Int, parameters: Int)) {
            XCTAssertEqual(estimate.parameters, measured.parameters, what)
            let ratio = estimate.bytes / Double(measured.bytes)
            XCTAssertGreaterThanOrEqual(ratio, 1, "\(what): estimate \(estimate.bytes) below the measured peak \(measured.bytes)")
            XCTAssertLessThanOrEqual(ratio, 2.5, "\(what): estimate \(estimate.bytes) far above the measured peak \(measured.bytes)")
        }
        for (name, batch, length) in [("vqvae-tiny", 1, 8192), ("vqvae-tiny", 3, 16384), ("vqvae-small", 1, 33024), ("vqvae-small", 2, 33024)] {
            var config = try VQVAEConfig.load(path: repoPath("configs/\(name).json"))
            config.sampleRate = 22050
            config.train.batchSize = batch
            config.train.sampleLength = length
            config.train.evalEvery = 0
            let measured = try measure {
                let trainer = try VQVAETrainer(config: config, data: [data], outDirectory: temporaryDirectory("memory") + "/run",
                                               seed: 1, resume: false)
                _ = try trainer.train(totalSteps: 2) { _ in }
                return trainer.model.parameterCount
            }
            check("\(name) batch \(batch) × \(length)", config.trainingMemory(batch: batch, sampleLength: length), measured)
        }
        var tiny = try VQVAEConfig.load(path: repoPath("configs/vqvae-tiny.json"))
        tiny.sampleRate = 22050
        let vqvae = temporaryDirectory("memory-vqvae") + "/run"
        _ = try VQVAETrainer(config: tiny, data: [data], outDirectory: vqvae, seed: 1, resume: false).train(totalSteps: 1) { _ in }
        for (name, level, batch, bins) in [("prior-small", 2, 1, 64), ("prior-small", 2, 2, 64), ("upsampler-small", 1, 2, 64),
                                           ("prior-small-hop512", 2, 2, 64)] {
            var config = try PriorConfig.load(path: repoPath("configs/\(name).json"))
            config.level = level
            config.bins = bins
            config.nCtx = 256
            config.blocks = Swift.min(config.blocks, 4)
            config.train.batchSize = batch
            config.train.evalEvery = 0
            var artists = 0, genres = 0
            let measured = try measure {
                let trainer = try PriorTrainer(config: config, vqvaePath: vqvae + "/checkpoint.safetensors", data: [data], labels: nil,
                                               outDirectory: temporaryDirectory("memory-prior") + "/run", seed: 1, resume: false) { _ in }
                _ = try trainer.train(totalSteps: 2) { _ in }
                artists = trainer.prior.vocabulary.artists.count
                genres = trainer.prior.vocabulary.genres.count
                return trainer.prior.parameterCount
            }
            check("\(name) level \(level) batch \(batch)", config.trainingMemory(batch: batch, levels: 3, artists: artists, genres: genres),
                  measured)
        }
    }

    /// A run that cannot fit is refused before its folder is made.
    func testARunTooLargeForMemoryIsRefusedBeforeAnythingIsWritten() throws {
        var config = try VQVAEConfig.load(path: repoPath("configs/vqvae-small.json"))
        config.train.batchSize = 1 << 20
        let out = temporaryDirectory("memory-refused") + "/run"
        XCTAssertThrowsError(try VQVAETrainer(config: config, data: [repoPath("Tests")], outDirectory: out, seed: 1, resume: false)) {
            guard let e = $0 as? MemoryError else { return XCTFail("\($0)") }
            XCTAssertGreaterThan(e.estimate.bytes, e.available)
            XCTAssertLessThan(e.estimate.largestBatch(fitting: e.available), 1 << 20)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }
}
