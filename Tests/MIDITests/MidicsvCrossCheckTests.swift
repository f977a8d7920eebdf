import Foundation
import XCTest
import MIDI

/// Cross-checks the writer (and so the reader's idea of the format) against Debian's `midicsv`,
/// an independent parser: `midicsv` must list the events of a generated file exactly as we hold
/// them. `make deps` installs it; the test is skipped only when it is absent.
final class MidicsvCrossCheckTests: XCTestCase {
    static let midicsvPath = ["/usr/bin/midicsv", "/usr/local/bin/midicsv"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    /// A format-1 file touching every event kind the writer produces, with running status,
    /// several tracks and deltas of every variable-length size.
    static func generatedFile() -> MIDIFile {
        var conductor = MIDITrack(events: [
            MIDITimedEvent(tick: 0, .text("conductor", type: 0x03)),
            MIDITimedEvent(tick: 0, .tempo(microsecondsPerQuarter: 428_571)),
            MIDITimedEvent(tick: 0, .timeSignature(numerator: 6, denominatorPower: 3, clocksPerClick: 36,
                                                   thirtySecondsPerQuarter: 8)),
            MIDITimedEvent(tick: 1_920, .tempo(microsecondsPerQuarter: 600_000)),
        ])
        conductor.events.append(MIDITimedEvent(tick: 300_000, .endOfTrack))
        var lead = MIDITrack(events: [
            MIDITimedEvent(tick: 0, .text("lead line", type: 0x01)),
            MIDITimedEvent(tick: 0, .programChange(channel: 2, program: 73)),
            MIDITimedEvent(tick: 0, .controlChange(channel: 2, controller: 7, value: 110)),
            MIDITimedEvent(tick: 0, .sysex([0x7E, 0x7F, 0x09, 0x01, 0xF7])),
        ])
        var tick = 0
        for (index, pitch) in [60, 62, 64, 65, 67, 69, 71, 72].enumerated() {
            lead.events.append(MIDITimedEvent(tick: tick, .noteOn(channel: 2, key: UInt8(pitch), velocity: 100)))
            tick += 120 * (index + 1)
            lead.events.append(MIDITimedEvent(tick: tick, .noteOn(channel: 2, key: UInt8(pitch), velocity: 0)))
        }
        lead.events += [
            MIDITimedEvent(tick: tick + 20_000, .pitchBend(channel: 2, value: 9_000)),
            MIDITimedEvent(tick: tick + 20_000, .keyPressure(channel: 2, key: 72, pressure: 3)),
            MIDITimedEvent(tick: tick + 20_001, .channelPressure(channel: 2, pressure: 64)),
            MIDITimedEvent(tick: tick + 20_001, .escape([0xF3, 0x01])),
            MIDITimedEvent(tick: tick + 20_002, .meta(type: 0x7F, data: [0x00, 0x00, 0x41])),
            MIDITimedEvent(tick: tick + 20_002, .noteOff(channel: 2, key: 50, velocity: 64)),
            MIDITimedEvent(tick: 2_500_000, .text("words", type: 0x05)),
        ]
        let bass = MIDITrack(events: [
            MIDITimedEvent(tick: 0, .noteOn(channel: 9, key: 36, velocity: 127)),
            MIDITimedEvent(tick: 240, .noteOff(channel: 9, key: 36, velocity: 0)),
            MIDITimedEvent(tick: 240, .endOfTrack),
        ])
        return MIDIFile(format: .multipleTracks, ticksPerQuarter: 480, tracks: [conductor, lead, bass])
    }

    /// Our events as midicsv's rows, fields joined by ", ".
    static func csvRows(_ file: MIDIFile) -> [String] {
        var rows = ["0, 0, Header, \(file.format.rawValue), \(file.tracks.count), \(file.ticksPerQuarter)"]
        for (index, track) in file.tracks.enumerated() {
            let number = index + 1
            rows.append("\(number), 0, Start_track")
            var events = track.events
            if events.last?.event != .endOfTrack {
                events.append(MIDITimedEvent(tick: events.last?.tick ?? 0, .endOfTrack))
            }
            for timed in events {
                rows.append("\(number), \(timed.tick), " + csvFields(timed.event).joined(separator: ", "))
            }
        }
        rows.append("0, 0, End_of_file")
        return rows
    }

    static func csvFields(_ event: MIDIEvent) -> [String] {
        let textNames: [UInt8: String] = [0x01: "Text_t", 0x02: "Copyright_t", 0x03: "Title_t",
                                          0x04: "Instrument_name_t", 0x05: "Lyric_t", 0x06: "Marker_t",
                                          0x07: "Cue_point_t"]
        switch event {
        case let .noteOff(c, k, v): return ["Note_off_c", "\(c)", "\(k)", "\(v)"]
        case let .noteOn(c, k, v): return ["Note_on_c", "\(c)", "\(k)", "\(v)"]
        case let .keyPressure(c, k, p): return ["Poly_aftertouch_c", "\(c)", "\(k)", "\(p)"]
        case let .controlChange(c, n, v): return ["Control_c", "\(c)", "\(n)", "\(v)"]
        case let .programChange(c, p): return ["Program_c", "\(c)", "\(p)"]
        case let .channelPressure(c, p): return ["Channel_aftertouch_c", "\(c)", "\(p)"]
        case let .pitchBend(c, v): return ["Pitch_bend_c", "\(c)", "\(v)"]
        case let .tempo(microseconds): return ["Tempo", "\(microseconds)"]
        case let .timeSignature(n, d, c, b): return ["Time_signature", "\(n)", "\(d)", "\(c)", "\(b)"]
        case .endOfTrack: return ["End_track"]
        case let .meta(type, data):
            if let name = textNames[type], let text = event.text { return [name, "\"\(text)\""] }
            if type == 0x7F { return ["Sequencer_specific", "\(data.count)"] + data.map { "\($0)" } }
            return ["Unknown_meta_event", "\(type)", "\(data.count)"] + data.map { "\($0)" }
        case let .sysex(data): return ["System_exclusive", "\(data.count)"] + data.map { "\($0)" }
        case let .escape(data): return ["System_exclusive_packet", "\(data.count)"] + data.map { "\($0)" }
        }
    }

    func testMidicsvListsTheSameEvents() throws {
        guard let midicsv = Self.midicsvPath else {
            throw XCTSkip("midicsv is not installed; `make deps` installs it")
        }
        let file = Self.generatedFile()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("MIDITests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("generated.mid").path
        try file.write(to: path)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: midicsv)
        process.arguments = [path]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let csv = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        let rows = String(decoding: csv, as: UTF8.self).split(whereSeparator: \.isNewline).map(String.init)
        XCTAssertEqual(rows, Self.csvRows(file))
        // And our reader agrees with the writer on the same bytes.
        var expected = file
        expected.tracks[1].events.append(MIDITimedEvent(tick: 2_500_000, .endOfTrack))
        XCTAssertEqual(try MIDIFile.read(path: path), expected)
    }
}
