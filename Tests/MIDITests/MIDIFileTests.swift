import Foundation
import XCTest
import MIDI

/// The bytes of a Standard MIDI File with the given header and track bodies (each wrapped in an
/// `MTrk` chunk).
func smfBytes(format: UInt16 = 0, trackCount: UInt16? = nil, division: UInt16 = 96, tracks: [[UInt8]]) -> Data {
    var out: [UInt8] = Array("MThd".utf8) + [0, 0, 0, 6]
    let count = trackCount ?? UInt16(tracks.count)
    out += [UInt8(format >> 8), UInt8(format & 0xFF), UInt8(count >> 8), UInt8(count & 0xFF),
            UInt8(division >> 8), UInt8(division & 0xFF)]
    for body in tracks {
        out += Array("MTrk".utf8)
        out += [UInt8(body.count >> 24), UInt8((body.count >> 16) & 0xFF), UInt8((body.count >> 8) & 0xFF),
                UInt8(body.count & 0xFF)]
        out += body
    }
    return Data(out)
}

final class MIDIFileTests: XCTestCase {
    /// A format-0 file at 96 ticks per quarter: tempo 120, 4/4, a two-note chord for a quarter,
    /// with running status for the second note-on and the second note-off.
    static let goldenBytes: [UInt8] = [
        0x4D, 0x54, 0x68, 0x64, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x01, 0x00, 0x60,
        0x4D, 0x54, 0x72, 0x6B, 0x00, 0x00, 0x00, 0x21,
        0x00, 0xFF, 0x51, 0x03, 0x07, 0xA1, 0x20,           // tempo 500000 µs
        0x00, 0xFF, 0x58, 0x04, 0x04, 0x02, 0x18, 0x08,     // 4/4, 24 clocks, 8 32nds
        0x00, 0x90, 0x3C, 0x64,                             // note on C4
        0x00, 0x40, 0x64,                                   // note on E4, running status
        0x60, 0x80, 0x3C, 0x00,                             // note off C4 after 96 ticks
        0x00, 0x40, 0x00,                                   // note off E4, running status
        0x00, 0xFF, 0x2F, 0x00,                             // end of track
    ]

    static let goldenFile = MIDIFile(format: .singleTrack, ticksPerQuarter: 96, tracks: [MIDITrack(events: [
        MIDITimedEvent(tick: 0, .tempo(microsecondsPerQuarter: 500_000)),
        MIDITimedEvent(tick: 0, .timeSignature(numerator: 4, denominatorPower: 2, clocksPerClick: 24,
                                               thirtySecondsPerQuarter: 8)),
        MIDITimedEvent(tick: 0, .noteOn(channel: 0, key: 60, velocity: 100)),
        MIDITimedEvent(tick: 0, .noteOn(channel: 0, key: 64, velocity: 100)),
        MIDITimedEvent(tick: 96, .noteOff(channel: 0, key: 60, velocity: 0)),
        MIDITimedEvent(tick: 96, .noteOff(channel: 0, key: 64, velocity: 0)),
        MIDITimedEvent(tick: 96, .endOfTrack),
    ])])

    func testWriterProducesGoldenBytes() throws {
        XCTAssertEqual([UInt8](try Self.goldenFile.bytes()), Self.goldenBytes)
    }

    func testReaderParsesGoldenBytesWithRunningStatus() throws {
        XCTAssertEqual(try MIDIFile(bytes: Data(Self.goldenBytes), name: "golden.mid"), Self.goldenFile)
    }

    func testWriterAddsEndOfTrackWhenMissing() throws {
        var file = Self.goldenFile
        file.tracks[0].events.removeLast()
        XCTAssertEqual([UInt8](try file.bytes()), Self.goldenBytes)
    }

    /// Every kind of event, at deltas of every variable-length size up to the largest.
    static func everyEventTrack(channel: UInt8) -> MIDITrack {
        MIDITrack(events: [
            MIDITimedEvent(tick: 0, .text("track name é", type: 0x03)),
            MIDITimedEvent(tick: 0, .text("hello")),
            MIDITimedEvent(tick: 0, .programChange(channel: channel, program: 40)),
            MIDITimedEvent(tick: 0, .noteOn(channel: channel, key: 60, velocity: 90)),
            MIDITimedEvent(tick: 127, .noteOn(channel: channel, key: 60, velocity: 0)),
            MIDITimedEvent(tick: 128, .controlChange(channel: channel, controller: 7, value: 100)),
            MIDITimedEvent(tick: 16_383, .pitchBend(channel: channel, value: 16_383)),
            MIDITimedEvent(tick: 16_384, .pitchBend(channel: channel, value: 0)),
            MIDITimedEvent(tick: 16_384, .keyPressure(channel: channel, key: 61, pressure: 5)),
            MIDITimedEvent(tick: 2_097_151, .channelPressure(channel: channel, pressure: 127)),
            MIDITimedEvent(tick: 2_097_152, .sysex([0x7E, 0x7F, 0x09, 0x01, 0xF7])),
            MIDITimedEvent(tick: 2_097_152, .escape([0xF3, 0x01])),
            MIDITimedEvent(tick: 2_097_152, .meta(type: 0x7F, data: [0x00, 0x00, 0x41])),
            MIDITimedEvent(tick: 2_097_152, .noteOff(channel: channel, key: 62, velocity: 64)),
            MIDITimedEvent(tick: 2_097_152 + 0x0FFF_FFFF, .endOfTrack),
        ])
    }

    func testRoundTripFormatsAndResolutions() throws {
        for ticksPerQuarter in [1, 24, 96, 480, 960, 32_767] {
            let single = MIDIFile(format: .singleTrack, ticksPerQuarter: ticksPerQuarter,
                                  tracks: [Self.everyEventTrack(channel: 3)])
            let conductor = MIDITrack(events: [
                MIDITimedEvent(tick: 0, .tempo(microsecondsPerQuarter: 600_000)),
                MIDITimedEvent(tick: 0, .timeSignature(numerator: 6, denominatorPower: 3, clocksPerClick: 36,
                                                       thirtySecondsPerQuarter: 8)),
                MIDITimedEvent(tick: 4 * ticksPerQuarter, .tempo(microsecondsPerQuarter: 1)),
                MIDITimedEvent(tick: 5 * ticksPerQuarter, .tempo(microsecondsPerQuarter: 0xFF_FFFF)),
                MIDITimedEvent(tick: 5 * ticksPerQuarter, .endOfTrack),
            ])
            let multiple = MIDIFile(format: .multipleTracks, ticksPerQuarter: ticksPerQuarter,
                                    tracks: [conductor, Self.everyEventTrack(channel: 0),
                                             Self.everyEventTrack(channel: 15), MIDITrack(events: [
                                                MIDITimedEvent(tick: 0, .endOfTrack)])])
            for file in [single, multiple] {
                let bytes = try file.bytes()
                XCTAssertEqual(try MIDIFile(bytes: bytes, name: "round-trip"), file, "PPQ \(ticksPerQuarter)")
            }
        }
    }

    func testAtomicWriteAndReadFromPath() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("MIDITests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("golden.mid").path
        try Self.goldenFile.write(to: path)
        try Self.goldenFile.write(to: path)   // over an existing file
        XCTAssertEqual(try MIDIFile.read(path: path), Self.goldenFile)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["golden.mid"])
        XCTAssertThrowsError(try MIDIFile.read(path: folder.appendingPathComponent("absent.mid").path)) {
            guard case .cannotRead = $0 as? MIDIError else { return XCTFail("\($0)") }
        }
    }

    func testWriterRefusesWhatAFileCannotHold() {
        let cases: [(String, MIDIFile)] = [
            ("ticks out of order", MIDIFile(format: .singleTrack, ticksPerQuarter: 96, tracks: [MIDITrack(events: [
                MIDITimedEvent(tick: 5, .noteOn(channel: 0, key: 1, velocity: 1)),
                MIDITimedEvent(tick: 4, .noteOff(channel: 0, key: 1, velocity: 0))])])),
            ("channel 16", MIDIFile(format: .singleTrack, ticksPerQuarter: 96, tracks: [MIDITrack(events: [
                MIDITimedEvent(tick: 0, .noteOn(channel: 16, key: 1, velocity: 1))])])),
            ("key 128", MIDIFile(format: .singleTrack, ticksPerQuarter: 96, tracks: [MIDITrack(events: [
                MIDITimedEvent(tick: 0, .noteOn(channel: 0, key: 128, velocity: 1))])])),
            ("delta too large", MIDIFile(format: .singleTrack, ticksPerQuarter: 96, tracks: [MIDITrack(events: [
                MIDITimedEvent(tick: 0x1000_0000, .endOfTrack)])])),
            ("tempo 0", MIDIFile(format: .singleTrack, ticksPerQuarter: 96, tracks: [MIDITrack(events: [
                MIDITimedEvent(tick: 0, .tempo(microsecondsPerQuarter: 0))])])),
            ("early end of track", MIDIFile(format: .singleTrack, ticksPerQuarter: 96, tracks: [MIDITrack(events: [
                MIDITimedEvent(tick: 0, .endOfTrack), MIDITimedEvent(tick: 0, .text("x"))])])),
            ("format 0 with 2 tracks", MIDIFile(format: .singleTrack, ticksPerQuarter: 96,
                                                tracks: [MIDITrack(), MIDITrack()])),
            ("PPQ 0", MIDIFile(format: .multipleTracks, ticksPerQuarter: 0, tracks: [])),
            ("PPQ 32768", MIDIFile(format: .multipleTracks, ticksPerQuarter: 32_768, tracks: [])),
        ]
        for (name, file) in cases {
            XCTAssertThrowsError(try file.bytes(), name) {
                guard case .unwritable = $0 as? MIDIError else { return XCTFail("\(name): \($0)") }
            }
        }
    }

    func testTempoAndTimeSignatureMaps() throws {
        let file = MIDIFile(format: .multipleTracks, ticksPerQuarter: 100, tracks: [
            MIDITrack(events: [
                MIDITimedEvent(tick: 0, .tempo(microsecondsPerQuarter: 1_000_000)),
                MIDITimedEvent(tick: 200, .timeSignature(numerator: 3, denominatorPower: 2, clocksPerClick: 24,
                                                         thirtySecondsPerQuarter: 8)),
                MIDITimedEvent(tick: 400, .tempo(microsecondsPerQuarter: 250_000)),
            ]),
            MIDITrack(events: [MIDITimedEvent(tick: 600, .timeSignature(numerator: 6, denominatorPower: 3,
                                                                         clocksPerClick: 36, thirtySecondsPerQuarter: 8))]),
        ])
        XCTAssertEqual(file.tempoMap, [TempoChange(tick: 0, microsecondsPerQuarter: 1_000_000),
                                       TempoChange(tick: 400, microsecondsPerQuarter: 250_000)])
        XCTAssertEqual(file.timeSignatureMap, [TimeSignatureChange(tick: 0, numerator: 4, denominator: 4),
                                               TimeSignatureChange(tick: 200, numerator: 3, denominator: 4),
                                               TimeSignatureChange(tick: 600, numerator: 6, denominator: 8)])
        XCTAssertEqual(file.tempo(atTick: 399).quartersPerMinute, 60)
        XCTAssertEqual(file.tempo(atTick: 400).quartersPerMinute, 240)
        XCTAssertEqual(file.timeSignature(atTick: 599).numerator, 3)
        XCTAssertEqual(file.timeSignature(atTick: 700).quartersPerBar, 3)
        // 4 quarters at 1 s each, then 2 quarters at 0.25 s: exact in binary floating point.
        XCTAssertEqual(file.seconds(atTick: 600), 4.5)
        XCTAssertEqual(MIDIFile(format: .multipleTracks, ticksPerQuarter: 480, tracks: []).seconds(atTick: 960), 1)
    }
}
