import Foundation

// Reading a Standard MIDI File. The reader is written for hostile input (it is fuzzed): every
// length read from the file is checked against the bytes that remain before it is used, every
// loop advances by at least one byte, absolute times are summed with overflow checks, and
// nothing is allocated from a count the file states. Anything malformed throws
// `MIDIError.malformed` with the file name, the track and the byte offset.

extension MIDIFile {
    /// Reads the Standard MIDI File at `path`.
    ///
    /// - Throws: `MIDIError.cannotRead` when the file cannot be opened,
    ///   `MIDIError.malformed` when its bytes are not a valid format-0 or format-1 file.
    public static func read(path: String) throws -> MIDIFile {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw MIDIError.cannotRead(path: path, reason: error.localizedDescription)
        }
        return try MIDIFile(bytes: data, name: path)
    }

    /// Parses the bytes of a Standard MIDI File; `name` is used in error messages only.
    ///
    /// - Throws: `MIDIError.malformed(file: name, ...)` for anything malformed.
    public init(bytes: Data, name: String) throws {
        var reader = SMFReader(bytes: [UInt8](bytes), name: name)
        self = try reader.readFile()
    }
}

/// A cursor over the bytes of one file. Offsets are absolute byte offsets in the file.
private struct SMFReader {
    let bytes: [UInt8]
    let name: String

    func fail(_ problem: MIDIProblem, track: Int?, at offset: Int) -> MIDIError {
        .malformed(file: name, track: track, offset: offset, problem: problem)
    }

    func bigEndian(_ offset: Int, count: Int) -> Int {
        var value = 0
        for index in offset..<(offset + count) { value = value << 8 | Int(bytes[index]) }
        return value
    }

    mutating func readFile() throws -> MIDIFile {
        guard bytes.count >= 8, bytes[0..<4].elementsEqual("MThd".utf8) else {
            throw fail(.missingHeader, track: nil, at: 0)
        }
        let headerLength = bigEndian(4, count: 4)
        guard headerLength >= 6 else { throw fail(.shortHeader(length: headerLength), track: nil, at: 4) }
        guard headerLength <= bytes.count - 8 else {
            throw fail(.chunkLengthPastEnd(length: headerLength, available: bytes.count - 8), track: nil, at: 4)
        }
        let formatNumber = bigEndian(8, count: 2)
        let declaredTracks = bigEndian(10, count: 2)
        let division = bigEndian(12, count: 2)
        guard let format = MIDIFile.Format(rawValue: UInt16(formatNumber)) else {
            throw fail(.unsupportedFormat(formatNumber), track: nil, at: 8)
        }
        guard division & 0x8000 == 0 else { throw fail(.timecodeDivision, track: nil, at: 12) }
        guard division > 0 else { throw fail(.zeroTicksPerQuarter, track: nil, at: 12) }
        if format == .singleTrack && declaredTracks != 1 {
            throw fail(.format0TrackCount(declaredTracks), track: nil, at: 10)
        }

        var tracks: [MIDITrack] = []
        var offset = 8 + headerLength
        while offset < bytes.count {
            let available = bytes.count - offset
            // A chunk's problems are the track's when the chunk is (or starts like) an MTrk.
            let isTrack = bytes[offset..<min(offset + 4, bytes.count)].elementsEqual("MTrk".utf8.prefix(available))
            let chunkTrack = isTrack ? tracks.count : nil
            guard available >= 8 else {
                throw fail(.truncatedChunkHeader(available: available), track: chunkTrack, at: offset)
            }
            let length = bigEndian(offset + 4, count: 4)
            guard length <= available - 8 else {
                throw fail(.chunkLengthPastEnd(length: length, available: available - 8),
                           track: chunkTrack, at: offset + 4)
            }
            let body = (offset + 8)..<(offset + 8 + length)
            // Chunks of other types are skipped, as the standard asks of readers.
            if isTrack {
                tracks.append(try readTrack(index: tracks.count, body: body))
            }
            offset = body.upperBound
        }
        guard tracks.count == declaredTracks else {
            throw fail(.trackCountMismatch(declared: declaredTracks, found: tracks.count), track: nil, at: 10)
        }
        return MIDIFile(format: format, ticksPerQuarter: division, tracks: tracks)
    }

    /// Reads the events of one `MTrk` chunk whose data occupies `body`.
    func readTrack(index track: Int, body: Range<Int>) throws -> MIDITrack {
        var events: [MIDITimedEvent] = []
        var offset = body.lowerBound
        var tick = 0
        var runningStatus: UInt8? = nil
        while offset < body.upperBound {
            let eventStart = offset
            let delta = try readVariableLength(&offset, end: body.upperBound, track: track, eventStart: eventStart)
            let (sum, overflow) = tick.addingReportingOverflow(delta)
            guard !overflow else { throw fail(.tickOverflow, track: track, at: eventStart) }
            tick = sum
            guard offset < body.upperBound else { throw fail(.truncatedEvent, track: track, at: eventStart) }

            let status: UInt8
            if bytes[offset] < 0x80 {
                guard let running = runningStatus else {
                    throw fail(.runningStatusWithoutStatus(byte: bytes[offset]), track: track, at: offset)
                }
                status = running
            } else {
                status = bytes[offset]
                offset += 1
            }

            switch status {
            case 0x80...0xEF:
                runningStatus = status
                let event = try readChannelMessage(status: status, at: &offset, end: body.upperBound,
                                                   track: track, eventStart: eventStart)
                events.append(MIDITimedEvent(tick: tick, event))
            case 0xF0, 0xF7:
                // System exclusive and meta events cancel running status.
                runningStatus = nil
                let data = try readLengthPrefixed(&offset, end: body.upperBound, track: track, eventStart: eventStart)
                events.append(MIDITimedEvent(tick: tick, status == 0xF0 ? .sysex(data) : .escape(data)))
            case 0xFF:
                runningStatus = nil
                guard offset < body.upperBound else { throw fail(.truncatedEvent, track: track, at: eventStart) }
                let type = bytes[offset]
                offset += 1
                let data = try readLengthPrefixed(&offset, end: body.upperBound, track: track, eventStart: eventStart)
                let event = try metaEvent(type: type, data: data, track: track, eventStart: eventStart)
                events.append(MIDITimedEvent(tick: tick, event))
                if event == .endOfTrack {
                    guard offset == body.upperBound else {
                        throw fail(.dataAfterEndOfTrack, track: track, at: offset)
                    }
                    return MIDITrack(events: events)
                }
            default:
                throw fail(.unsupportedStatus(status), track: track, at: offset - 1)
            }
        }
        throw fail(.missingEndOfTrack, track: track, at: body.upperBound)
    }

    /// Reads the one or two data bytes of a channel message; `offset` is just past the status.
    func readChannelMessage(status: UInt8, at offset: inout Int, end: Int, track: Int,
                            eventStart: Int) throws -> MIDIEvent {
        let kind = status & 0xF0
        let channel = status & 0x0F
        let count = (kind == 0xC0 || kind == 0xD0) ? 1 : 2
        guard count <= end - offset else { throw fail(.truncatedEvent, track: track, at: eventStart) }
        for index in offset..<(offset + count) where bytes[index] >= 0x80 {
            throw fail(.dataByteOutOfRange(bytes[index]), track: track, at: index)
        }
        let first = bytes[offset]
        let second: UInt8 = count == 2 ? bytes[offset + 1] : 0
        offset += count
        switch kind {
        case 0x80: return .noteOff(channel: channel, key: first, velocity: second)
        case 0x90: return .noteOn(channel: channel, key: first, velocity: second)
        case 0xA0: return .keyPressure(channel: channel, key: first, pressure: second)
        case 0xB0: return .controlChange(channel: channel, controller: first, value: second)
        case 0xC0: return .programChange(channel: channel, program: first)
        case 0xD0: return .channelPressure(channel: channel, pressure: first)
        default: return .pitchBend(channel: channel, value: UInt16(second) << 7 | UInt16(first))
        }
    }

    /// Turns a meta event's type and data into an event, checking the lengths of the types that
    /// have one.
    func metaEvent(type: UInt8, data: [UInt8], track: Int, eventStart: Int) throws -> MIDIEvent {
        func expect(_ length: Int) throws {
            guard data.count == length else {
                throw fail(.badMetaLength(type: type, length: data.count, expected: length), track: track, at: eventStart)
            }
        }
        switch type {
        case 0x2F:
            try expect(0)
            return .endOfTrack
        case 0x51:
            try expect(3)
            let microseconds = Int(data[0]) << 16 | Int(data[1]) << 8 | Int(data[2])
            guard microseconds > 0 else { throw fail(.zeroTempo, track: track, at: eventStart) }
            return .tempo(microsecondsPerQuarter: microseconds)
        case 0x58:
            try expect(4)
            return .timeSignature(numerator: data[0], denominatorPower: data[1], clocksPerClick: data[2],
                                  thirtySecondsPerQuarter: data[3])
        default:
            return .meta(type: type, data: data)
        }
    }

    /// Reads a variable-length number: 7 bits a byte, most significant first, at most 4 bytes.
    func readVariableLength(_ offset: inout Int, end: Int, track: Int, eventStart: Int) throws -> Int {
        let start = offset
        var value = 0
        for _ in 0..<4 {
            guard offset < end else { throw fail(.truncatedEvent, track: track, at: eventStart) }
            let byte = bytes[offset]
            offset += 1
            value = value << 7 | Int(byte & 0x7F)
            if byte < 0x80 { return value }
        }
        throw fail(.badVariableLengthNumber, track: track, at: start)
    }

    /// Reads a variable-length count and that many bytes after it.
    func readLengthPrefixed(_ offset: inout Int, end: Int, track: Int, eventStart: Int) throws -> [UInt8] {
        let length = try readVariableLength(&offset, end: end, track: track, eventStart: eventStart)
        guard length <= end - offset else { throw fail(.truncatedEvent, track: track, at: eventStart) }
        let data = Array(bytes[offset..<(offset + length)])
        offset += length
        return data
    }
}
