// Dataset indexing, split, bad-file handling, index cache, and the background loader.

import Foundation
import XCTest
import AudioDSP
import TensorCore

final class AudioDatasetTests: XCTestCase {
    var folder = ""
    let rate = 8000, length = 4000

    override func setUp() { folder = makeScratchFolder(name) }
    override func tearDown() { try? FileManager.default.removeItem(atPath: folder) }

    /// 24 one-second files in two subfolders (a distinct tone each), a bad one, a short one and
    /// a text file; returns the music folder.
    func makeMusic() throws -> String {
        let music = folder + "/music"
        for sub in ["a", "b/c"] { try FileManager.default.createDirectory(atPath: music + "/" + sub, withIntermediateDirectories: true) }
        for i in 0..<24 {
            let path = music + (i % 2 == 0 ? "/a" : "/b/c") + "/track\(i).wav"
            try AudioFile.write(path, samples: sine(Double(100 + 10 * i), sampleRate: rate, count: rate), sampleRate: rate)
        }
        try "not audio".write(toFile: music + "/a/broken.wav", atomically: true, encoding: .utf8)
        try AudioFile.write(music + "/b/short.wav", samples: [0.1, 0.2, 0.3], sampleRate: rate)
        try "liner notes".write(toFile: music + "/README.txt", atomically: true, encoding: .utf8)
        return music
    }

    func testFNV1aIsTheStandardHash() {
        XCTAssertEqual(AudioDataset.fnv1a(""), 0xcbf2_9ce4_8422_2325)
        XCTAssertEqual(AudioDataset.fnv1a("a"), 0xaf63_dc4c_8601_ec8c)
        XCTAssertEqual(AudioDataset.fnv1a("foobar"), 0x8594_4171_f739_67e8)
    }

    func testSplitIsDeterministicAndBadFilesAreSkipped() throws {
        let music = try makeMusic()
        let dataset = try AudioDataset(sources: [music], sampleRate: rate, sampleLength: length)
        XCTAssertEqual(dataset.train.count + dataset.test.count, 24)
        XCTAssertEqual(dataset.problems.count, 1)
        XCTAssertTrue(dataset.problems[0].hasPrefix(music + "/a/broken.wav: "), dataset.problems[0])
        XCTAssertEqual(dataset.shortFileCount, 1)
        for entry in dataset.train { XCTAssertFalse(AudioDataset.isTestKey(entry.splitKey)) }
        for entry in dataset.test { XCTAssertTrue(AudioDataset.isTestKey(entry.splitKey)) }
        for entry in dataset.train + dataset.test {
            XCTAssertTrue(entry.splitKey.hasPrefix("a/track") || entry.splitKey.hasPrefix("b/c/track"), entry.splitKey)
        }
        XCTAssertEqual(dataset.train.map(\.path), dataset.train.map(\.path).sorted())

        // Same split again, and through a file list naming the same files.
        let again = try AudioDataset(sources: [music], sampleRate: rate, sampleLength: length)
        XCTAssertEqual(again.train, dataset.train)
        XCTAssertEqual(again.test, dataset.test)
        // The list lives beside the folders, so its lines are the same relative paths.
        let list = music + "/files.txt"
        let lines = (dataset.train + dataset.test).map(\.splitKey)
        try (["# every track", ""] + lines).joined(separator: "\n").write(toFile: list, atomically: true, encoding: .utf8)
        let listed = try AudioDataset(sources: [list], sampleRate: rate, sampleLength: length)
        XCTAssertEqual(Set(listed.train.map(\.path)), Set(dataset.train.map(\.path)))
        XCTAssertEqual(Set(listed.test.map(\.path)), Set(dataset.test.map(\.path)))
        XCTAssertEqual(listed.train.count + listed.test.count, 24)
    }

    func testAllFilesTrainWhenTheSplitWouldLeaveNone() throws {
        // Find a name the hash puts in the test split; alone, it must train.
        let name = (0..<1000).map { "clip\($0).wav" }.first { AudioDataset.isTestKey($0) }!
        let path = folder + "/" + name
        try AudioFile.write(path, samples: noise(length, seed: 1), sampleRate: rate)
        let dataset = try AudioDataset(sources: [path], sampleRate: rate, sampleLength: length)
        XCTAssertEqual(dataset.train.map(\.splitKey), [name])
        XCTAssertEqual(dataset.test, [])
    }

    func testEmptyFolderAndMissingSourceAreErrors() throws {
        let empty = folder + "/empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        XCTAssertThrowsError(try AudioDataset(sources: [empty], sampleRate: rate, sampleLength: length)) { error in
            guard case .noUsableAudio = error as? AudioError else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".hasPrefix(empty + ": "))
        }
        let onlyBad = folder + "/bad"
        try FileManager.default.createDirectory(atPath: onlyBad, withIntermediateDirectories: true)
        try "x".write(toFile: onlyBad + "/x.flac", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try AudioDataset(sources: [onlyBad], sampleRate: rate, sampleLength: length))
        XCTAssertThrowsError(try AudioDataset(sources: [folder + "/nowhere"], sampleRate: rate, sampleLength: length)) { error in
            XCTAssertEqual(error as? AudioError, .missing(path: self.folder + "/nowhere"))
        }
    }

    func testIndexCacheIsReused() throws {
        let music = try makeMusic()
        let run = folder + "/run"
        let first = try AudioDataset(sources: [music], sampleRate: rate, sampleLength: length, runDirectory: run)
        XCTAssertEqual(first.scannedFileCount, 26)          // 24 tracks, the short one, the bad one
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/" + AudioDataset.indexFileName))
        let second = try AudioDataset(sources: [music], sampleRate: rate, sampleLength: length, runDirectory: run)
        XCTAssertEqual(second.scannedFileCount, 0)
        XCTAssertEqual(second.cachedFileCount, 26)
        XCTAssertEqual(second.train, first.train)
        XCTAssertEqual(second.problems, first.problems)
        // A rewritten file (new size and mtime) is indexed again.
        try AudioFile.write(music + "/a/track0.wav", samples: sine(300, sampleRate: rate, count: 2 * rate), sampleRate: rate)
        let third = try AudioDataset(sources: [music], sampleRate: rate, sampleLength: length, runDirectory: run)
        XCTAssertEqual(third.scannedFileCount, 1)
        XCTAssertEqual((third.train + third.test).first { $0.splitKey == "a/track0.wav" }?.length, 2 * rate)
    }

    func testLoaderCropsAreReproducibleAndResumable() throws {
        let music = try makeMusic()
        let dataset = try AudioDataset(sources: [music], sampleRate: rate, sampleLength: length)
        func batches(_ loader: AudioLoader, _ n: Int) throws -> [[Float]] { try (0..<n).map { _ in try loader.next().array } }

        let loader = AudioLoader(dataset: dataset, batchSize: 3, seed: 7)
        let first = try batches(loader, 4)
        XCTAssertEqual(try loader.next().shape, [3, length])
        XCTAssertEqual(try batches(AudioLoader(dataset: dataset, batchSize: 3, seed: 7, prefetch: 1), 4), first)
        XCTAssertNotEqual(try batches(AudioLoader(dataset: dataset, batchSize: 3, seed: 8), 4), first)

        // The crops are the sampler's draws, in order.
        var generator = RandomGenerator(seed: 7)
        let sampler = CropSampler(entries: dataset.train, sampleLength: length)
        for batch in first {
            for b in 0..<3 {
                let pick = sampler.draw(&generator)
                let expected = try dataset.crop(dataset.train[pick.entry], offset: pick.offset)
                XCTAssertEqual(Array(batch[(b * length)..<((b + 1) * length)]), expected)
            }
        }

        // Resume after two batches from the saved state.
        let original = AudioLoader(dataset: dataset, batchSize: 3, seed: 7)
        _ = try batches(original, 2)
        let resumed = AudioLoader(dataset: dataset, batchSize: 3, generatorState: original.generatorState)
        XCTAssertEqual(try batches(resumed, 2), Array(first[2...]))
    }

    func testCropSamplerCoversEveryOffsetOfEveryFile() {
        let entries = [100, 4000, 4001, 4010].map {
            AudioDataset.Entry(path: "/x\($0)", splitKey: "x", sampleRate: 8000, channels: 1, frames: $0, length: $0)
        }.filter { $0.length >= length }
        let sampler = CropSampler(entries: entries, sampleLength: length)
        var generator = RandomGenerator(seed: 1)
        var seen = Set<String>()
        for _ in 0..<2000 {
            let pick = sampler.draw(&generator)
            XCTAssertLessThanOrEqual(pick.offset + length, entries[pick.entry].length)
            seen.insert("\(pick.entry):\(pick.offset)")
        }
        XCTAssertEqual(seen.count, 1 + 2 + 11)                // every valid (file, offset) pair
    }

    func testBandwidthFromDatasetIsDeterministic() throws {
        let music = try makeMusic()
        let dataset = try AudioDataset(sources: [music], sampleRate: rate, sampleLength: length)
        let a = try Bandwidth.estimate(dataset: dataset, seconds: 5)
        XCTAssertEqual(a, try Bandwidth.estimate(dataset: dataset, seconds: 5))
        XCTAssertEqual(a.l2, 0.125, accuracy: 0.01)         // sines of amplitude 0.5
        XCTAssertGreaterThan(a.spec, 0)
    }
}
