// Reading, writing, mixing, resampling and windowed reads of audio files.

import Foundation
import XCTest
import CSndFile
import AudioDSP
import TensorCore

final class AudioFileTests: XCTestCase {
    var folder = ""

    override func setUp() { folder = makeScratchFolder(name) }
    override func tearDown() { try? FileManager.default.removeItem(atPath: folder) }

    func testPCM16RoundTripIsExact() throws {
        // Every value k/32768 for k in -32768...32767 survives, including both extremes.
        var samples = (0..<2000).map { Float(($0 * 37) % 65536 - 32768) / 32768 }
        samples += [-1, Float(32767) / 32768, 0]
        let path = folder + "/pcm.wav"
        try AudioFile.write(path, samples: samples, sampleRate: 16000)
        XCTAssertEqual(try AudioFile.read(path, sampleRate: 16000), samples)
        let info = try AudioFile.info(path)
        XCTAssertEqual(info, AudioInfo(path: path, sampleRate: 16000, channels: 1, frames: samples.count))
    }

    func testPCM16ClampsOutOfRange() throws {
        let path = folder + "/clamp.wav"
        try AudioFile.write(path, samples: [2, -3, 1], sampleRate: 8000)
        XCTAssertEqual(try AudioFile.read(path, sampleRate: 8000), [Float(32767) / 32768, -1, Float(32767) / 32768])
    }

    func testFloatRoundTripIsExact() throws {
        let samples = noise(5000, std: 0.7, seed: 3) + [1.5, -2.25, .leastNonzeroMagnitude]
        let path = folder + "/float.wav"
        try AudioFile.write(path, samples: samples, sampleRate: 22050, format: .float32)
        XCTAssertEqual(try AudioFile.read(path, sampleRate: 22050), samples)
    }

    func testWriteIsAtomicAndLeavesNoTemporaryFiles() throws {
        let path = folder + "/out.wav"
        try AudioFile.write(path, samples: [0.25, 0.5], sampleRate: 8000)
        try AudioFile.write(path, samples: [0.5], sampleRate: 8000)
        XCTAssertEqual(try AudioFile.read(path, sampleRate: 8000), [0.5])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), ["out.wav"])
    }

    func testResamplingKeepsFrequencyAndAmplitude() throws {
        let tone = sine(1000, amplitude: 0.5, sampleRate: 48000, count: 48000)
        for rate in [44100, 22050] {
            let out = try Resampler.resample(tone, from: 48000, to: rate)
            XCTAssertEqual(out.count, rate)
            // A 0.1 s excerpt from the middle: bins are 10 Hz apart, so 1 kHz is bin 100.
            let n = rate / 10
            let excerpt = Array(out[(rate / 2)..<(rate / 2 + n)]).map(Double.init)
            var best = (bin: 0, power: 0.0)
            for k in 1..<(n / 2) {
                var re = 0.0, im = 0.0
                for (i, x) in excerpt.enumerated() {
                    let angle = 2 * Double.pi * Double((k * i) % n) / Double(n)
                    re += x * cos(angle)
                    im -= x * sin(angle)
                }
                if re * re + im * im > best.power { best = (k, re * re + im * im) }
            }
            XCTAssertEqual(best.bin, 100, "peak at \(best.bin * 10) Hz after resampling to \(rate)")
            let rms = (excerpt.map { $0 * $0 }.reduce(0, +) / Double(n)).squareRoot()
            XCTAssertEqual(rms * 2.squareRoot(), 0.5, accuracy: 0.005, "amplitude after resampling to \(rate)")
        }
    }

    func testReadResamplesToTheRequestedRate() throws {
        let path = folder + "/48k.wav"
        try AudioFile.write(path, samples: sine(440, sampleRate: 48000, count: 48000), sampleRate: 48000, format: .float32)
        XCTAssertEqual(try AudioFile.read(path, sampleRate: 44100).count, 44100)
        XCTAssertEqual(try AudioFile.info(path).length(atSampleRate: 44100), 44100)
    }

    func testStereoIsMixedToTheMeanOfTheChannels() throws {
        let left = noise(3000, seed: 1), right = noise(3000, std: 0.3, seed: 2)
        let path = folder + "/stereo.wav"
        writeRaw(path, interleaved: zip(left, right).flatMap { [$0, $1] }, channels: 2, sampleRate: 32000)
        XCTAssertEqual(try AudioFile.info(path).channels, 2)
        XCTAssertEqual(try AudioFile.read(path, sampleRate: 32000), zip(left, right).map { ($0 + $1) / 2 })
        // Three channels: the plain mean.
        let third = noise(3000, seed: 5)
        let path3 = folder + "/three.wav"
        writeRaw(path3, interleaved: (0..<3000).flatMap { [left[$0], right[$0], third[$0]] }, channels: 3, sampleRate: 32000)
        let expected = (0..<3000).map { (left[$0] + right[$0] + third[$0]) / 3 }
        XCTAssertLessThan(maxDifference(try AudioFile.read(path3, sampleRate: 32000), expected), 1e-7)
    }

    func testWindowEqualsFullReadAtTheSameRate() throws {
        let samples = noise(100_000, seed: 9)
        for (name, format) in [("flac.flac", Int32(SF_FORMAT_FLAC | SF_FORMAT_PCM_16)),
                               ("float.wav", Int32(SF_FORMAT_WAV | SF_FORMAT_FLOAT))] {
            let path = folder + "/" + name
            writeRaw(path, interleaved: samples, channels: 1, sampleRate: 44100, format: format)
            let full = try AudioFile.read(path, sampleRate: 44100)
            for (offset, length) in [(0, 5000), (12345, 40000), (100_000 - 777, 777), (50_000, 0)] {
                let window = try AudioFile.readWindow(path, sampleRate: 44100, offset: offset, length: length)
                XCTAssertEqual(window, Array(full[offset..<(offset + length)]), "\(name) at \(offset)")
            }
        }
    }

    func testWindowMatchesFullReadWhenResampling() throws {
        // Stereo 48 kHz, read at 44.1 kHz: the window must agree with the full read to within
        // the resampler's rounding (both see the same source grid, only the excerpt edges differ).
        let count = 240_000
        let left = zip(sine(1234, sampleRate: 48000, count: count), noise(count, seed: 4)).map { $0 + $1 }
        let right = noise(count, seed: 8)
        let path = folder + "/long.wav"
        writeRaw(path, interleaved: zip(left, right).flatMap { [$0, $1] }, channels: 2, sampleRate: 48000)
        let full = try AudioFile.read(path, sampleRate: 44100)
        XCTAssertEqual(full.count, 220_500)
        for (offset, length) in [(0, 3000), (1, 1000), (70_001, 66048), (220_500 - 5000, 5000)] {
            let window = try AudioFile.readWindow(path, sampleRate: 44100, offset: offset, length: length)
            XCTAssertLessThan(maxDifference(window, Array(full[offset..<(offset + length)])), 1e-5, "offset \(offset)")
        }
    }

    func testWindowOfOggVorbisMatchesFullRead() throws {
        let samples = zip(sine(440, amplitude: 0.3, sampleRate: 48000, count: 96000), noise(96000, std: 0.05, seed: 6))
            .map { $0 + $1 }
        let path = folder + "/clip.ogg"
        writeRaw(path, interleaved: samples, channels: 1, sampleRate: 48000, format: Int32(SF_FORMAT_OGG | SF_FORMAT_VORBIS))
        let full48 = try AudioFile.read(path, sampleRate: 48000)
        XCTAssertEqual(full48.count, 96000)
        let window48 = try AudioFile.readWindow(path, sampleRate: 48000, offset: 50_000, length: 20_000)
        XCTAssertLessThan(maxDifference(window48, Array(full48[50_000..<70_000])), 1e-6)
        let full44 = try AudioFile.read(path, sampleRate: 44100)
        let window44 = try AudioFile.readWindow(path, sampleRate: 44100, offset: 40_000, length: 20_000)
        XCTAssertLessThan(maxDifference(window44, Array(full44[40_000..<60_000])), 1e-5)
    }

    func testWindowOutsideTheFileIsAnError() throws {
        let path = folder + "/short.wav"
        try AudioFile.write(path, samples: [Float](repeating: 0.1, count: 100), sampleRate: 8000)
        XCTAssertThrowsError(try AudioFile.readWindow(path, sampleRate: 8000, offset: 50, length: 51)) { error in
            XCTAssertEqual(error as? AudioError, .windowOutOfRange(path: path, offset: 50, length: 51, available: 100))
        }
    }

    // MARK: errors name the file

    func assertAudioError(_ path: String, _ expected: (AudioError) -> Bool, file: StaticString = #filePath,
                          line: UInt = #line, _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard let audioError = error as? AudioError else {
                return XCTFail("not an AudioError: \(error)", file: file, line: line)
            }
            XCTAssertTrue(expected(audioError), "unexpected \(audioError)", file: file, line: line)
            XCTAssertTrue(audioError.description.hasPrefix(path + ": "), audioError.description, file: file, line: line)
            XCTAssertFalse(audioError.description.contains("\n"), file: file, line: line)
        }
    }

    func testMissingEmptyAndNonAudioFilesGiveNamedErrors() throws {
        let missing = folder + "/nothing.wav"
        assertAudioError(missing, { $0 == .missing(path: missing) }) { _ = try AudioFile.read(missing, sampleRate: 44100) }

        let empty = folder + "/empty.wav"
        XCTAssertTrue(FileManager.default.createFile(atPath: empty, contents: Data()))
        assertAudioError(empty, { $0 == .empty(path: empty) }) { _ = try AudioFile.info(empty) }

        let text = folder + "/notes.wav"
        try "these are not samples\n".write(toFile: text, atomically: true, encoding: .utf8)
        assertAudioError(text, { if case .notAudio = $0 { true } else { false } }) { _ = try AudioFile.read(text, sampleRate: 44100) }

        assertAudioError(folder, { if case .notAudio = $0 { true } else { false } }) { _ = try AudioFile.info(folder) }
    }

    func testCorruptFilesGiveNamedErrors() throws {
        // A WAV cut off inside its header.
        let good = folder + "/good.wav"
        try AudioFile.write(good, samples: noise(4000, seed: 1), sampleRate: 16000)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        let cut = folder + "/cut.wav"
        try bytes.prefix(30).write(to: URL(fileURLWithPath: cut))
        assertAudioError(cut, { _ in true }) { _ = try AudioFile.read(cut, sampleRate: 16000) }

        // A FLAC file whose frames are overwritten with garbage after the header.
        let flac = folder + "/garbled.flac"
        writeRaw(flac, interleaved: noise(50_000, seed: 2), channels: 1, sampleRate: 16000,
                 format: Int32(SF_FORMAT_FLAC | SF_FORMAT_PCM_16))
        var data = try Data(contentsOf: URL(fileURLWithPath: flac))
        var generator = RandomGenerator(seed: 3)
        for i in 200..<data.count { data[i] = UInt8(truncatingIfNeeded: generator.next()) }
        try data.write(to: URL(fileURLWithPath: flac))
        assertAudioError(flac, { if case .corrupt = $0 { true } else { false } }) { _ = try AudioFile.read(flac, sampleRate: 16000) }
    }

    /// A file whose data ends a few frames before its header says (as in some Ogg Vorbis
    /// files) reads with the header's length, the missing tail silent; a large shortfall is
    /// a damaged file.
    func testShortTailPolicy() throws {
        XCTAssertTrue(AudioFile.acceptsShortTail(decoded: 2_747_769, declared: 2_747_873))
        XCTAssertTrue(AudioFile.acceptsShortTail(decoded: 1000, declared: 1000))
        XCTAssertFalse(AudioFile.acceptsShortTail(decoded: 1000, declared: 10_000))
        XCTAssertFalse(AudioFile.acceptsShortTail(decoded: 0, declared: 100))

        // A WAV with its last 100 frames cut off: whatever length the reader reports, the
        // read gives exactly that many samples and the surviving ones unchanged.
        let good = folder + "/whole.wav"
        try AudioFile.write(good, samples: noise(20_000, seed: 4), sampleRate: 16000)
        let samples = try AudioFile.read(good, sampleRate: 16000)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        let cut = folder + "/short.wav"
        try bytes.prefix(bytes.count - 200).write(to: URL(fileURLWithPath: cut))
        let info = try AudioFile.info(cut)
        let read = try AudioFile.read(cut, sampleRate: 16000)
        XCTAssertEqual(read.count, info.frames)
        XCTAssertTrue(read.prefix(19_900) == samples.prefix(19_900), "the frames before the cut read unchanged")
        let resampled = try AudioFile.read(cut, sampleRate: 8000)
        XCTAssertEqual(resampled.count, info.length(atSampleRate: 8000))
    }

    func testZeroLengthRatesAndChannelsGiveNamedErrors() throws {
        let silent = folder + "/zero.wav"
        try AudioFile.write(silent, samples: [], sampleRate: 16000)
        assertAudioError(silent, { $0 == .noSamples(path: silent) }) { _ = try AudioFile.read(silent, sampleRate: 16000) }

        let low = folder + "/low.wav"
        try AudioFile.write(low, samples: [0.1, 0.2], sampleRate: 1000)
        assertAudioError(low, { $0 == .unsupportedSampleRate(path: low, rate: 1000, target: 384_000) }) {
            _ = try AudioFile.read(low, sampleRate: 384_000)
        }
        assertAudioError(low, { $0 == .unsupportedSampleRate(path: low, rate: 1000, target: 0) }) {
            _ = try AudioFile.readWindow(low, sampleRate: 0, offset: 0, length: 0)
        }

        let wide = folder + "/wide.wav"
        writeRaw(wide, interleaved: [Float](repeating: 0, count: 65 * 4), channels: 65, sampleRate: 8000)
        assertAudioError(wide, { $0 == .unsupportedChannels(path: wide, channels: 65) }) { _ = try AudioFile.info(wide) }
    }

    func testNonFiniteSamplesAreNotWritten() throws {
        let path = folder + "/nan.wav"
        assertAudioError(path, { $0 == .nonFiniteSample(path: path, index: 2) }) {
            try AudioFile.write(path, samples: [0, 0.5, .nan, 1], sampleRate: 8000)
        }
        assertAudioError(path, { $0 == .nonFiniteSample(path: path, index: 0) }) {
            try AudioFile.write(path, samples: [-.infinity], sampleRate: 8000, format: .float32)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), [])
    }

    func testWritingIntoAMissingFolderIsANamedError() {
        let path = folder + "/no/such/folder/out.wav"
        assertAudioError(path, { if case .unwritable = $0 { true } else { false } }) {
            try AudioFile.write(path, samples: [0], sampleRate: 8000)
        }
    }
}
