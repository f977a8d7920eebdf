import Foundation

// Writing a Standard MIDI File. Channel messages use running status (the status byte is left
// out when it repeats), the way most writers save space; meta and sysex events always carry
// their status and cancel running status, as the standard asks.

extension MIDIFile {
    /// The file as Standard MIDI File bytes.
    ///
    /// Each track gets an End of Track event at its last event's tick when it lacks one.
    /// - Throws: `MIDIError.unwritable` naming the track and event when a value does not fit
    ///   the file (ticks out of order, a channel above 15, a data byte above 127, ...).
    public func bytes() throws -> Data {
        guard (1...0x7FFF).contains(ticksPerQuarter) else {
            throw MIDIError.unwritable(track: nil, event: nil,
                                       reason: "ticks per quarter \(ticksPerQuarter) is outside 1...32767")
        }
        guard tracks.count <= 0xFFFF else {
            throw MIDIError.unwritable(track: nil, event: nil, reason: "\(tracks.count) tracks; at most 65535 fit")
        }
        if format == .singleTrack && tracks.count != 1 {
            throw MIDIError.unwritable(track: nil, event: nil,
                                       reason: "format 0 holds exactly 1 track, not \(tracks.count)")
        }
        var out: [UInt8] = Array("MThd".utf8)
        appendBigEndian(6, count: 4, to: &out)
        appendBigEndian(Int(format.rawValue), count: 2, to: &out)
        appendBigEndian(tracks.count, count: 2, to: &out)
        appendBigEndian(ticksPerQuarter, count: 2, to: &out)
        for (index, track) in tracks.enumerated() {
            let body = try trackBytes(track, index: index)
            guard body.count <= 0xFFFF_FFFF else {
                throw MIDIError.unwritable(track: index, event: nil, reason: "track is longer than 4 GiB")
            }
            out += Array("MTrk".utf8)
            appendBigEndian(body.count, count: 4, to: &out)
            out += body
        }
        return Data(out)
    }

    /// Writes the file to `path` atomically: the bytes go to a temporary file beside it, which
    /// is then renamed over `path`, so a reader never sees half a file.
    ///
    /// - Throws: `MIDIError.unwritable` for content that does not fit a MIDI file,
    ///   `MIDIError.cannotWrite` when the file system refuses.
    public func write(to path: String) throws {
        let data = try bytes()
        do {
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw MIDIError.cannotWrite(path: path, reason: error.localizedDescription)
        }
    }
}

private func appendBigEndian(_ value: Int, count: Int, to out: inout [UInt8]) {
    for shift in stride(from: 8 * (count - 1), through: 0, by: -8) {
        out.append(UInt8(truncatingIfNeeded: value >> shift))
    }
}

private func appendVariableLength(_ value: Int, to out: inout [UInt8]) {
    var groups: [UInt8] = [UInt8(value & 0x7F)]
    var rest = value >> 7
    while rest > 0 {
        groups.append(UInt8(rest & 0x7F) | 0x80)
        rest >>= 7
    }
    out += groups.reversed()
}

/// The largest number a 4-byte variable-length quantity holds.
private let maximumVariableLength = 0x0FFF_FFFF

private func trackBytes(_ track: MIDITrack, index: Int) throws -> [UInt8] {
    var out: [UInt8] = []
    var previousTick = 0
    var runningStatus: UInt8? = nil
    var events = track.events
    if events.last?.event != .endOfTrack {
        events.append(MIDITimedEvent(tick: events.last?.tick ?? 0, .endOfTrack))
    }
    for (eventIndex, timed) in events.enumerated() {
        func refuse(_ reason: String) -> MIDIError {
            .unwritable(track: index, event: eventIndex, reason: reason)
        }
        guard timed.tick >= previousTick else {
            throw refuse("tick \(timed.tick) comes before the previous event's \(previousTick)")
        }
        let delta = timed.tick - previousTick
        guard delta <= maximumVariableLength else {
            throw refuse("gap of \(delta) ticks exceeds the largest delta time, \(maximumVariableLength)")
        }
        if timed.event == .endOfTrack && eventIndex != events.count - 1 {
            throw refuse("End of Track before the last event")
        }
        previousTick = timed.tick
        appendVariableLength(delta, to: &out)
        let (status, data) = try encode(timed.event, refuse: refuse)
        if status < 0xF0 {
            if status != runningStatus { out.append(status) }
            runningStatus = status
            out += data
        } else {
            runningStatus = nil
            out += data
        }
    }
    return out
}

/// The status byte of `event` and the bytes that follow it (for meta and sysex events, the
/// whole event including its status).
private func encode(_ event: MIDIEvent, refuse: (String) -> MIDIError) throws -> (UInt8, [UInt8]) {
    func channelStatus(_ kind: UInt8, _ channel: UInt8, _ data: UInt8...) throws -> (UInt8, [UInt8]) {
        guard channel < 16 else { throw refuse("channel \(channel) is above 15") }
        for byte in data where byte >= 0x80 { throw refuse("data byte \(byte) is above 127") }
        return (kind | channel, data)
    }
    func lengthPrefixed(_ prefix: [UInt8], _ data: [UInt8]) throws -> [UInt8] {
        guard data.count <= maximumVariableLength else { throw refuse("\(data.count) bytes of data do not fit") }
        var out = prefix
        appendVariableLength(data.count, to: &out)
        return out + data
    }
    switch event {
    case let .noteOff(channel, key, velocity): return try channelStatus(0x80, channel, key, velocity)
    case let .noteOn(channel, key, velocity): return try channelStatus(0x90, channel, key, velocity)
    case let .keyPressure(channel, key, pressure): return try channelStatus(0xA0, channel, key, pressure)
    case let .controlChange(channel, controller, value): return try channelStatus(0xB0, channel, controller, value)
    case let .programChange(channel, program): return try channelStatus(0xC0, channel, program)
    case let .channelPressure(channel, pressure): return try channelStatus(0xD0, channel, pressure)
    case let .pitchBend(channel, value):
        guard value < 0x4000 else { throw refuse("pitch bend \(value) is above 16383") }
        return try channelStatus(0xE0, channel, UInt8(value & 0x7F), UInt8(value >> 7))
    case let .tempo(microseconds):
        guard (1...0xFF_FFFF).contains(microseconds) else {
            throw refuse("tempo of \(microseconds) microseconds per quarter is outside 1...16777215")
        }
        let data = [UInt8(microseconds >> 16), UInt8((microseconds >> 8) & 0xFF), UInt8(microseconds & 0xFF)]
        return (0xFF, try lengthPrefixed([0xFF, 0x51], data))
    case let .timeSignature(numerator, denominatorPower, clocksPerClick, thirtySeconds):
        return (0xFF, try lengthPrefixed([0xFF, 0x58], [numerator, denominatorPower, clocksPerClick, thirtySeconds]))
    case .endOfTrack:
        return (0xFF, [0xFF, 0x2F, 0x00])
    case let .meta(type, data):
        guard type != 0x2F && type != 0x51 && type != 0x58 else {
            throw refuse("meta type \(type) must be written as its own event case")
        }
        return (0xFF, try lengthPrefixed([0xFF, type], data))
    case let .sysex(data):
        return (0xF0, try lengthPrefixed([0xF0], data))
    case let .escape(data):
        return (0xF7, try lengthPrefixed([0xF7], data))
    }
}
