import Foundation
import XCTest
import MIDI

/// End to end on abc2midi's output: a 4/4 tune with a one-quarter pickup is read by our reader,
/// its downbeat found from the velocity-105 accents and its melody aligned so every bar line is
/// a multiple of 16 steps. Skipped only when abc2midi (Debian `abcmidi`, `make deps`) is absent.
final class Abc2midiTests: XCTestCase {
    static let tune = """
        X:1
        T:Pickup test
        M:4/4
        L:1/8
        Q:1/4=120
        K:G
        D2|G2B2 d2B2|c2A2 F2D2|(3GAB (3cde d2B2|G6:|
        """

    func testPickupTuneAlignsToDownbeats() throws {
        guard let abc2midi = ["/usr/bin/abc2midi", "/usr/local/bin/abc2midi"]
            .first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("abc2midi is not installed; `make deps` installs it")
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("MIDITests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let abcPath = folder.appendingPathComponent("tune.abc").path
        let midiPath = folder.appendingPathComponent("tune.mid").path
        try Self.tune.write(toFile: abcPath, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: abc2midi)
        process.arguments = [abcPath, "-silent", "-NGRA", "-NGUI", "-o", midiPath]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()

        let file = try MIDIFile.read(path: midiPath)
        XCTAssertEqual(file.ticksPerQuarter, 480)
        let phase = try Melody.downbeatPhase(of: file)
        XCTAssertEqual(phase, 4)
        let melody = try XCTUnwrap(Melody.extract(from: file, downbeatPhase: phase).first)
        // The pickup D4 sits in a bar of its own after 12 steps of rest; G4 opens the first
        // full bar, on step 16.
        XCTAssertEqual(Array(melody.events[0..<17]),
                       [UInt8](repeating: Melody.noEvent, count: 12) + [Melody.noteOn(pitch: 62), 0, 0, 0,
                                                                        Melody.noteOn(pitch: 67)])
        XCTAssertEqual(melody.events[32], Melody.noteOn(pitch: 72))   // c, the second bar
        XCTAssertEqual(melody.events.count % 16, 0)
    }
}
