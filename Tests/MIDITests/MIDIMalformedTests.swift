import Foundation
import XCTest
import MIDI

/// Malformed files, each with the track and byte offset its error must name. The header chunk is
/// 14 bytes, so the first track's body starts at byte 22.
final class MIDIMalformedTests: XCTestCase {
    struct Case {
        var name: String
        var bytes: Data
        var track: Int?
        var offset: Int
        var problem: MIDIProblem
    }

    static let endOfTrack: [UInt8] = [0x00, 0xFF, 0x2F, 0x00]

    static let cases: [Case] = {
        let noteOn: [UInt8] = [0x00, 0x90, 0x3C, 0x64]
        var cases: [Case] = []
        cases.append(Case(name: "missing MThd", bytes: Data(Array("MTrk".utf8) + [0, 0, 0, 4] + endOfTrack),
                          track: nil, offset: 0, problem: .missingHeader))
        cases.append(Case(name: "empty input", bytes: Data(), track: nil, offset: 0, problem: .missingHeader))
        cases.append(Case(name: "truncated chunk: event past the chunk end",
                          bytes: smfBytes(tracks: [[0x00, 0x90, 0x3C]]),
                          track: 0, offset: 22, problem: .truncatedEvent))
        cases.append(Case(name: "truncated chunk header",
                          bytes: smfBytes(format: 1, trackCount: 1, tracks: []) + Data("MTr".utf8),
                          track: 0, offset: 14, problem: .truncatedChunkHeader(available: 3)))
        cases.append(Case(name: "bad variable-length number of 5 bytes",
                          bytes: smfBytes(tracks: [[0x81, 0x81, 0x81, 0x81, 0x00, 0x90, 0x3C, 0x64] + endOfTrack]),
                          track: 0, offset: 22, problem: .badVariableLengthNumber))
        var pastEnd = [UInt8](smfBytes(tracks: [endOfTrack]))
        pastEnd[21] = 100   // the track declares 100 bytes; 4 are there
        cases.append(Case(name: "chunk length past the end", bytes: Data(pastEnd),
                          track: 0, offset: 18, problem: .chunkLengthPastEnd(length: 100, available: 4)))
        cases.append(Case(name: "running status without a prior status byte",
                          bytes: smfBytes(tracks: [[0x00, 0x3C, 0x64] + endOfTrack]),
                          track: 0, offset: 23, problem: .runningStatusWithoutStatus(byte: 0x3C)))
        cases.append(Case(name: "running status after a meta event",
                          bytes: smfBytes(tracks: [noteOn + [0x00, 0xFF, 0x01, 0x00, 0x00, 0x3C, 0x00] + endOfTrack]),
                          track: 0, offset: 31, problem: .runningStatusWithoutStatus(byte: 0x3C)))
        cases.append(Case(name: "zero tracks declared, one present",
                          bytes: smfBytes(format: 1, trackCount: 0, tracks: [endOfTrack]),
                          track: nil, offset: 10, problem: .trackCountMismatch(declared: 0, found: 1)))
        cases.append(Case(name: "three tracks declared, two present",
                          bytes: smfBytes(format: 1, trackCount: 3, tracks: [endOfTrack, endOfTrack]),
                          track: nil, offset: 10, problem: .trackCountMismatch(declared: 3, found: 2)))
        cases.append(Case(name: "format 0 with two tracks",
                          bytes: smfBytes(format: 0, tracks: [endOfTrack, endOfTrack]),
                          track: nil, offset: 10, problem: .format0TrackCount(2)))
        cases.append(Case(name: "format 2", bytes: smfBytes(format: 2, tracks: [endOfTrack]),
                          track: nil, offset: 8, problem: .unsupportedFormat(2)))
        cases.append(Case(name: "SMPTE division", bytes: smfBytes(division: 0xE728, tracks: [endOfTrack]),
                          track: nil, offset: 12, problem: .timecodeDivision))
        cases.append(Case(name: "zero ticks per quarter", bytes: smfBytes(division: 0, tracks: [endOfTrack]),
                          track: nil, offset: 12, problem: .zeroTicksPerQuarter))
        var shortHeader = [UInt8](smfBytes(tracks: [endOfTrack]))
        shortHeader[7] = 5
        cases.append(Case(name: "short MThd", bytes: Data(shortHeader), track: nil, offset: 4,
                          problem: .shortHeader(length: 5)))
        cases.append(Case(name: "missing End of Track", bytes: smfBytes(tracks: [noteOn]),
                          track: 0, offset: 26, problem: .missingEndOfTrack))
        cases.append(Case(name: "bytes after End of Track", bytes: smfBytes(tracks: [endOfTrack + noteOn]),
                          track: 0, offset: 26, problem: .dataAfterEndOfTrack))
        cases.append(Case(name: "error in the second track names it",
                          bytes: smfBytes(format: 1, tracks: [endOfTrack, [0x00, 0xF1, 0x00] + endOfTrack]),
                          track: 1, offset: 35, problem: .unsupportedStatus(0xF1)))
        cases.append(Case(name: "tempo of 2 bytes",
                          bytes: smfBytes(tracks: [[0x00, 0xFF, 0x51, 0x02, 0x07, 0xA1] + endOfTrack]),
                          track: 0, offset: 22, problem: .badMetaLength(type: 0x51, length: 2, expected: 3)))
        cases.append(Case(name: "data byte with the top bit set",
                          bytes: smfBytes(tracks: [[0x00, 0x90, 0x3C, 0xE4] + endOfTrack]),
                          track: 0, offset: 25, problem: .dataByteOutOfRange(0xE4)))
        cases.append(Case(name: "sysex length past the chunk end",
                          bytes: smfBytes(tracks: [[0x00, 0xF0, 0x8F, 0xFF, 0xFF, 0x7F, 0xF7] + endOfTrack]),
                          track: 0, offset: 22, problem: .truncatedEvent))
        return cases
    }()

    func testEachMalformedInputNamesTrackAndOffset() {
        for item in Self.cases {
            XCTAssertThrowsError(try MIDIFile(bytes: item.bytes, name: "bad.mid"), item.name) { error in
                XCTAssertEqual(error as? MIDIError,
                               .malformed(file: "bad.mid", track: item.track, offset: item.offset, problem: item.problem),
                               item.name)
            }
        }
    }

    func testErrorDescriptionIsOneLineNamingFileTrackAndOffset() {
        let error = MIDIError.malformed(file: "tune.mid", track: 2, offset: 1234, problem: .badVariableLengthNumber)
        XCTAssertEqual(error.description, "tune.mid: track 2, byte 1234: bad variable-length number (no end within 4 bytes)")
        for item in Self.cases {
            let message = MIDIError.malformed(file: "f", track: item.track, offset: item.offset,
                                              problem: item.problem).description
            XCTAssertFalse(message.contains("\n"), item.name)
        }
    }

    /// Every truncation and 20,000 random byte mutations of a valid file either read or
    /// throw `MIDIError.malformed`; none may crash or hang.
    func testTruncatedAndMutatedInputsNeverCrash() throws {
        let valid = [UInt8](try MIDIFile(format: .multipleTracks, ticksPerQuarter: 480, tracks: [
            MIDIFileTests.everyEventTrack(channel: 1), MIDIFileTests.goldenFile.tracks[0]]).bytes())
        func check(_ bytes: [UInt8]) {
            do {
                _ = try MIDIFile(bytes: Data(bytes), name: "fuzz")
            } catch let error as MIDIError {
                guard case .malformed = error else { return XCTFail("\(error)") }
            } catch {
                XCTFail("unexpected error \(error)")
            }
        }
        for length in 0..<valid.count { check(Array(valid[..<length])) }
        var generator = SplitMix64(seed: 7)
        for _ in 0..<20_000 {
            var bytes = valid
            for _ in 0..<(1 + Int(generator.next() % 4)) {
                bytes[Int(generator.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: generator.next())
            }
            check(bytes)
        }
    }
}

/// A small deterministic generator for tests.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
