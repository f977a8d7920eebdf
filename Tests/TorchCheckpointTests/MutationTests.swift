// Every truncation of the fixtures, and a few thousand seeded random mutants of them: each
// must read (and then every value of every tensor must be readable) or throw a
// TorchCheckpointError; a trap ends the test process, and a hang fails the time limit.
// `make fuzz FUZZ_TARGETS=torch-checkpoint` runs the same reader under libFuzzer for longer.

import XCTest
import Foundation
@testable import TorchCheckpoint

final class MutationTests: XCTestCase {
    let fixtures = ["tiny.legacy.pth.tar", "tiny.zip.pth.tar", "opt.legacy.pth.tar"]

    func bytes(of name: String) throws -> [UInt8] {
        Array(try XCTUnwrap(FileManager.default.contents(atPath: fixturePath(name))))
    }

    /// Reads `bytes` and touches every value; returns whether it read.
    @discardableResult
    func exercise(_ bytes: [UInt8]) -> Bool {
        do {
            let checkpoint = try read(bytes)
            _ = checkpoint.descriptionLines()
            for (_, tensor) in checkpoint.tensors {
                _ = tensor.floatValues() ?? tensor.integerValues().map { $0.map(Float.init) }
                _ = tensor.contiguousBytes
            }
            return true
        } catch is TorchCheckpointError {
            return false
        } catch {
            XCTFail("not a TorchCheckpointError: \(error)")
            return false
        }
    }

    func testEveryTruncationIsAnError() throws {
        for name in fixtures {
            let file = try bytes(of: name)
            XCTAssertTrue(exercise(file), name)
            for length in 0 ..< file.count {
                XCTAssertFalse(exercise(Array(file[..<length])), "\(name) cut to \(length) bytes was accepted")
            }
        }
    }

    /// Random changes of 1 to 8 bytes (a random byte, a flipped bit, or a value at the edge of
    /// a field: 0x00, 0x7f, 0x80, 0xff), an inserted or deleted run, from a fixed seed.
    func testRandomMutantsReadOrFailCleanly() throws {
        var rng = SplitMix64(seed: 20_240_501)
        var accepted = 0, total = 0
        let start = Date()
        for name in fixtures {
            let original = try bytes(of: name)
            for _ in 0 ..< 1500 {
                var file = original
                for _ in 0 ... rng.next(below: 8) {
                    let i = rng.next(below: file.count)
                    switch rng.next(below: 6) {
                    case 0: file[i] = UInt8(truncatingIfNeeded: rng.next())
                    case 1: file[i] ^= 1 << UInt8(rng.next(below: 8))
                    case 2: file[i] = [0x00, 0x7f, 0x80, 0xff][rng.next(below: 4)]
                    case 3: file.insert(contentsOf: (0 ..< rng.next(below: 16) + 1).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: i)
                    case 4: file.removeSubrange(i ..< min(file.count, i + rng.next(below: 16) + 1))
                    default: file[i] = file[rng.next(below: file.count)]
                    }
                    if file.isEmpty { file = [0] }
                }
                if exercise(file) { accepted += 1 }
                total += 1
            }
        }
        // Most mutants that still read changed a tensor value or an hps number in place.
        XCTAssertGreaterThan(accepted, 0)
        XCTAssertLessThan(accepted, total)
        XCTAssertLessThan(Date().timeIntervalSince(start), 60)
    }
}

/// A small seeded generator (SplitMix64), so the mutants are the same in every run.
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    mutating func next(below bound: Int) -> Int { Int(next() % UInt64(bound)) }
}
