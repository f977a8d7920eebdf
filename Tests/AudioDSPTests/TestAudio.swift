// Helpers shared by the AudioDSP tests: a scratch folder per test, synthetic signals, and raw
// libsndfile writes for layouts AudioFile.write does not produce (stereo, many channels, OGG).

import Foundation
import XCTest
import CSndFile
import TensorCore

/// A fresh folder under the system temporary folder, removed by `tearDown`.
func makeScratchFolder(_ name: String = #function) -> String {
    let safe = name.filter { $0.isLetter || $0.isNumber }
    let path = NSTemporaryDirectory() + "jukebox-audio-tests-\(safe)-\(getpid())-\(UInt32.random(in: 0 ... .max))"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A sine of `frequency` Hz.
func sine(_ frequency: Double, amplitude: Double = 0.5, sampleRate: Int, count: Int) -> [Float] {
    (0..<count).map { Float(amplitude * sin(2 * Double.pi * frequency * Double($0) / Double(sampleRate))) }
}

/// Seeded Gaussian noise.
func noise(_ count: Int, std: Float = 0.1, seed: UInt64) -> [Float] {
    var generator = RandomGenerator(seed: seed)
    return (0..<count).map { _ in generator.normal() * std }
}

/// Writes interleaved float frames with libsndfile in any `format` (SF_FORMAT_* major | minor).
func writeRaw(_ path: String, interleaved: [Float], channels: Int, sampleRate: Int,
              format: Int32 = Int32(SF_FORMAT_WAV | SF_FORMAT_FLOAT)) {
    var info = SF_INFO(frames: 0, samplerate: Int32(sampleRate), channels: Int32(channels), format: format,
                       sections: 0, seekable: 0)
    guard let file = sf_open(path, Int32(SFM_WRITE), &info) else {
        XCTFail("libsndfile cannot write \(path): \(String(cString: sf_strerror(nil)))")
        return
    }
    let frames = interleaved.count / channels
    XCTAssertEqual(Int(sf_writef_float(file, interleaved, sf_count_t(frames))), frames)
    sf_close(file)
}

/// Largest |a − b|.
func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "maxDifference: \(a.count) vs \(b.count)")
    var m: Float = 0
    for i in a.indices { m = max(m, abs(a[i] - b[i])) }
    return m
}
