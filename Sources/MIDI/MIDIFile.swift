import Foundation

// A Standard MIDI File in memory: a header (format, ticks per quarter) and tracks of events at
// absolute tick times. Reading lives in `MIDIFile+Reading.swift`, writing in
// `MIDIFile+Writing.swift`, the tempo and time-signature maps in `MIDIFile+TimeMaps.swift`.
//
// Ticks are absolute (from the start of the track), not the file's delta times: absolute times
// are what every user of a file wants, and the writer turns them back into deltas.

/// A Standard MIDI File (format 0 or 1) with a metrical time division.
public struct MIDIFile: Equatable, Sendable {
    /// Format 0 holds one track with every channel; format 1 holds tracks played together.
    public enum Format: UInt16, Sendable {
        case singleTrack = 0
        case multipleTracks = 1
    }

    /// The header's format.
    public var format: Format
    /// Ticks per quarter note (the header's division), 1...32767.
    public var ticksPerQuarter: Int
    /// The tracks, in file order; track 0 is the first `MTrk` chunk.
    public var tracks: [MIDITrack]

    /// A file from its parts; nothing is checked until it is written.
    public init(format: Format, ticksPerQuarter: Int, tracks: [MIDITrack]) {
        self.format = format
        self.ticksPerQuarter = ticksPerQuarter
        self.tracks = tracks
    }
}

/// One track: events in time order. A track read from a file ends with `.endOfTrack`; the writer
/// adds one at the last event's tick when it is missing.
public struct MIDITrack: Equatable, Sendable {
    /// The events, in non-decreasing tick order.
    public var events: [MIDITimedEvent]

    /// A track holding `events`, which must be in non-decreasing tick order.
    public init(events: [MIDITimedEvent] = []) {
        self.events = events
    }
}

/// An event at an absolute time in ticks from the start of its track.
public struct MIDITimedEvent: Equatable, Sendable {
    /// Ticks from the start of the track, ≥ 0.
    public var tick: Int
    /// What happens at `tick`.
    public var event: MIDIEvent

    /// `event` at `tick`.
    public init(tick: Int, _ event: MIDIEvent) {
        self.tick = tick
        self.event = event
    }
}

/// One event of a track. Channels are 0...15 (channel 9 is General MIDI's drum channel, "channel
/// 10" to musicians); keys, velocities and other data bytes are 0...127.
public enum MIDIEvent: Equatable, Sendable {
    /// Note off (status 0x8n). A note-on with velocity 0 stays a `.noteOn` here, as in the file.
    case noteOff(channel: UInt8, key: UInt8, velocity: UInt8)
    /// Note on (status 0x9n); velocity 0 means note off by convention.
    case noteOn(channel: UInt8, key: UInt8, velocity: UInt8)
    /// Polyphonic key pressure (status 0xAn).
    case keyPressure(channel: UInt8, key: UInt8, pressure: UInt8)
    /// Control change (status 0xBn).
    case controlChange(channel: UInt8, controller: UInt8, value: UInt8)
    /// Program change (status 0xCn).
    case programChange(channel: UInt8, program: UInt8)
    /// Channel pressure (status 0xDn).
    case channelPressure(channel: UInt8, pressure: UInt8)
    /// Pitch bend (status 0xEn), 0...16383 with 8192 the centre.
    case pitchBend(channel: UInt8, value: UInt16)
    /// Set Tempo meta event (0xFF 0x51): microseconds per quarter note, 1...0xFFFFFF.
    case tempo(microsecondsPerQuarter: Int)
    /// Time Signature meta event (0xFF 0x58): numerator, denominator as a power of two (2 means
    /// a quarter), MIDI clocks per metronome click, notated 32nd notes per quarter.
    case timeSignature(numerator: UInt8, denominatorPower: UInt8, clocksPerClick: UInt8,
                       thirtySecondsPerQuarter: UInt8)
    /// End of Track meta event (0xFF 0x2F), the last event of every track.
    case endOfTrack
    /// Any other meta event (0xFF type), its data as stored; 0x01...0x0F are the text events.
    case meta(type: UInt8, data: [UInt8])
    /// System exclusive (0xF0): the bytes after the length, normally ending with 0xF7.
    case sysex([UInt8])
    /// Escaped bytes (0xF7): sent as they are, such as a sysex continued from an earlier event.
    case escape([UInt8])
}

extension MIDIEvent {
    /// A text meta event (type 0x01 text, 0x03 track name, 0x05 lyric, ...), UTF-8 encoded.
    public static func text(_ text: String, type: UInt8 = 0x01) -> MIDIEvent {
        .meta(type: type, data: Array(text.utf8))
    }

    /// The text of a text meta event (types 0x01...0x0F), decoded as UTF-8 or, failing that,
    /// Latin-1 (as older files often are); nil for other events.
    public var text: String? {
        guard case let .meta(type, data) = self, (0x01...0x0F).contains(type) else { return nil }
        return String(bytes: data, encoding: .utf8) ?? String(bytes: data, encoding: .isoLatin1)
    }
}
