// Replays the committed corpus of hostile inputs (Fixtures/fuzz-crashes/TARGET/: inputs that
// once crashed a reader under `make fuzz`, and hand-made ones: truncated headers, lengths past
// the end, absurd shapes, huge counts, negative numbers) through every fuzz target. A reader
// that traps ends the test process, so passing means none did; each input must also be
// rejected with an error, and quickly.

import XCTest
import Foundation
import FuzzTargets
import JukeboxKit

final class FuzzCorpusTests: XCTestCase {
    static let corpus = repoPath("Tests/JukeboxKitTests/Fixtures/fuzz-crashes")

    /// The files of one target's corpus, sorted.
    func files(of target: FuzzTarget) throws -> [String] {
        let folder = Self.corpus + "/" + target.rawValue
        return try FileManager.default.contentsOfDirectory(atPath: folder)
            .filter { !$0.hasPrefix(".") }.sorted().map { folder + "/" + $0 }
    }

    func testEveryFolderIsATargetAndEveryTargetHasInputs() throws {
        let folders = try FileManager.default.contentsOfDirectory(atPath: Self.corpus).filter { !$0.hasPrefix(".") }
        for folder in folders {
            XCTAssertNotNil(FuzzTarget(rawValue: folder), "\(Self.corpus)/\(folder) names no fuzz target")
        }
        for target in FuzzTarget.allCases {
            XCTAssertFalse(try files(of: target).isEmpty, "no replay inputs for \(target.rawValue)")
        }
    }

    func testEveryInputIsRejectedWithoutATrapOrAHang() throws {
        for target in FuzzTarget.allCases {
            for file in try files(of: target) {
                let bytes = try XCTUnwrap(FileManager.default.contents(atPath: file), file)
                let start = Date()
                let error = target.run(bytes)
                let seconds = Date().timeIntervalSince(start)
                XCTAssertNotNil(error, "\(target.rawValue): \(file) was accepted")
                // Each input is small; the fuzzer's hang limit is 10 s, this is stricter.
                XCTAssertLessThan(seconds, 2, "\(target.rawValue): \(file) took \(seconds) s")
            }
        }
    }
}
