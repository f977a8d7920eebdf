import Foundation

/// What went wrong reading, checking or writing a MIDI file. Each description is one line; a
/// malformed file reads `FILE: track N, byte OFFSET: what is wrong` (`header` in place of a track
/// for the `MThd` chunk and for chunks of other types).
public enum MIDIError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The bytes of `file` are not a valid Standard MIDI File. `track` is the index of the
    /// `MTrk` chunk (0 is the first), nil for the header and other chunks; `offset` is the
    /// byte offset in the file where the problem starts.
    case malformed(file: String, track: Int?, offset: Int, problem: MIDIProblem)
    /// The file at `path` could not be read.
    case cannotRead(path: String, reason: String)
    /// The file at `path` could not be written.
    case cannotWrite(path: String, reason: String)
    /// The in-memory file cannot be written: `track` and `event` index the offending event
    /// (nil when the problem is the header).
    case unwritable(track: Int?, event: Int?, reason: String)

    /// The problem in one line, for the user.
    public var description: String {
        switch self {
        case let .malformed(file, track, offset, problem):
            let place = track.map { "track \($0)" } ?? "header"
            return "\(file): \(place), byte \(offset): \(problem)"
        case let .cannotRead(path, reason):
            return "\(path): cannot read: \(reason)"
        case let .cannotWrite(path, reason):
            return "\(path): cannot write: \(reason)"
        case let .unwritable(track, event, reason):
            var place = track.map { "track \($0)" } ?? "header"
            if let event { place += ", event \(event)" }
            return "cannot write MIDI: \(place): \(reason)"
        }
    }
}

/// What is wrong with a malformed file, worded for the end of an error line.
public enum MIDIProblem: Equatable, CustomStringConvertible, Sendable {
    /// The file does not start with an `MThd` chunk.
    case missingHeader
    /// The `MThd` chunk is shorter than its 6 bytes of format, track count and division.
    case shortHeader(length: Int)
    /// Format 2 or an undefined format number.
    case unsupportedFormat(Int)
    /// The division is SMPTE time code rather than ticks per quarter note.
    case timecodeDivision
    /// The division is 0 ticks per quarter note.
    case zeroTicksPerQuarter
    /// A format-0 file must declare exactly one track.
    case format0TrackCount(Int)
    /// The header declares a different number of tracks than the file holds.
    case trackCountMismatch(declared: Int, found: Int)
    /// Fewer than 8 bytes remain where a chunk's type and length should be.
    case truncatedChunkHeader(available: Int)
    /// A chunk's length runs past the end of the file.
    case chunkLengthPastEnd(length: Int, available: Int)
    /// An event runs past the end of its track chunk.
    case truncatedEvent
    /// A variable-length number does not end within 4 bytes.
    case badVariableLengthNumber
    /// A data byte where a status byte is needed, with no running status in effect.
    case runningStatusWithoutStatus(byte: UInt8)
    /// A status byte a file may not hold (system common or real-time messages).
    case unsupportedStatus(UInt8)
    /// A channel message data byte with its top bit set.
    case dataByteOutOfRange(UInt8)
    /// A meta event whose length does not fit its type.
    case badMetaLength(type: UInt8, length: Int, expected: Int)
    /// A tempo of 0 microseconds per quarter note.
    case zeroTempo
    /// Bytes follow the End of Track event inside the chunk.
    case dataAfterEndOfTrack
    /// The chunk ends without an End of Track event.
    case missingEndOfTrack
    /// The track's absolute time no longer fits in an integer.
    case tickOverflow

    /// The problem in one line, for the user.
    public var description: String {
        switch self {
        case .missingHeader: return "no MThd header chunk at the start; not a Standard MIDI File"
        case let .shortHeader(length): return "MThd length \(length) is shorter than 6"
        case let .unsupportedFormat(format): return "format \(format) is not supported (only 0 and 1)"
        case .timecodeDivision: return "SMPTE time-code division is not supported (only ticks per quarter)"
        case .zeroTicksPerQuarter: return "division of 0 ticks per quarter note"
        case let .format0TrackCount(count): return "format 0 declares \(count) tracks instead of 1"
        case let .trackCountMismatch(declared, found):
            return "header declares \(declared) tracks but the file holds \(found)"
        case let .truncatedChunkHeader(available):
            return "truncated chunk: \(available) bytes left where an 8-byte chunk header should be"
        case let .chunkLengthPastEnd(length, available):
            return "chunk length \(length) runs past the end of the file (\(available) bytes left)"
        case .truncatedEvent: return "truncated chunk: event runs past the end of the track chunk"
        case .badVariableLengthNumber: return "bad variable-length number (no end within 4 bytes)"
        case let .runningStatusWithoutStatus(byte):
            return "data byte 0x\(hex(byte)) with no running status in effect"
        case let .unsupportedStatus(byte): return "status byte 0x\(hex(byte)) is not allowed in a MIDI file"
        case let .dataByteOutOfRange(byte): return "data byte 0x\(hex(byte)) has its top bit set"
        case let .badMetaLength(type, length, expected):
            return "meta event 0x\(hex(type)) has length \(length), expected \(expected)"
        case .zeroTempo: return "tempo of 0 microseconds per quarter note"
        case .dataAfterEndOfTrack: return "bytes after the End of Track event"
        case .missingEndOfTrack: return "track chunk ends without an End of Track event"
        case .tickOverflow: return "absolute time overflows"
        }
    }
}

private func hex(_ byte: UInt8) -> String {
    let digits = String(byte, radix: 16, uppercase: true)
    return digits.count == 1 ? "0" + digits : digits
}
