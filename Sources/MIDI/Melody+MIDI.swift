import Foundation

// Melodies back to MIDI as note_seq's `Melody.to_sequence` and MusicVAE's `from_tensors` do it:
// a note lasts from its note-on to the next note-on or note-off, a note still sounding at the
// end of a melody ends there, every note has velocity 80, and the tempo is 120 quarters per
// minute unless the caller keeps the source's. Chunks decoded one by one are each converted
// this way and laid end to end (`concatenate_sequences`), so a note never carries over a chunk
// boundary.

extension Melody {
    /// The velocity MusicVAE gives decoded notes.
    public static let outputVelocity: UInt8 = 80

    /// The notes of the melody in steps: (pitch, first step, step after the last).
    public var notes: [(pitch: Int, start: Int, end: Int)] {
        var notes: [(pitch: Int, start: Int, end: Int)] = []
        var sounding: (pitch: Int, start: Int)? = nil
        for (step, event) in events.enumerated() where event != Melody.noEvent {
            if let note = sounding { notes.append((note.pitch, note.start, step)) }
            sounding = Melody.pitch(of: event).map { ($0, step) }
        }
        if let note = sounding { notes.append((note.pitch, note.start, events.count)) }
        return notes
    }

    /// The melody as a format-0 MIDI file on channel 0 with program 0.
    ///
    /// - Parameters:
    ///   - quartersPerMinute: the tempo; 120 is the reference's, pass the source's to keep it.
    ///   - ticksPerQuarter: the file's resolution, a multiple of 4 so steps fall on ticks.
    ///   - velocity: every note's velocity (the reference's 80).
    public func midi(quartersPerMinute: Double = 120, ticksPerQuarter: Int = 480,
                     velocity: UInt8 = Melody.outputVelocity) -> MIDIFile {
        Melody.midi(chunks: [self], quartersPerMinute: quartersPerMinute, ticksPerQuarter: ticksPerQuarter,
                    velocity: velocity)
    }

    /// Melodies (decoded chunks) laid end to end as one format-0 MIDI file; each chunk's last
    /// note ends at that chunk's end.
    public static func midi(chunks: [Melody], quartersPerMinute: Double = 120, ticksPerQuarter: Int = 480,
                            velocity: UInt8 = Melody.outputVelocity) -> MIDIFile {
        precondition(ticksPerQuarter > 0 && ticksPerQuarter % stepsPerQuarter == 0,
                     "ticks per quarter must be a positive multiple of 4")
        precondition(quartersPerMinute > 0, "tempo must be positive")
        let ticksPerStep = ticksPerQuarter / stepsPerQuarter
        let microseconds = min(max(Int((60_000_000 / quartersPerMinute).rounded()), 1), 0xFF_FFFF)
        var noteEvents: [MIDITimedEvent] = []
        var offset = 0
        for chunk in chunks {
            for note in chunk.notes {
                let key = UInt8(note.pitch)
                noteEvents.append(MIDITimedEvent(tick: (offset + note.start) * ticksPerStep,
                                                 .noteOn(channel: 0, key: key, velocity: velocity)))
                noteEvents.append(MIDITimedEvent(tick: (offset + note.end) * ticksPerStep,
                                                 .noteOff(channel: 0, key: key, velocity: 0)))
            }
            offset += chunk.events.count
        }
        // At a shared tick the ending note goes first, so a repeated key is released and struck.
        noteEvents.sort { lhs, rhs in
            lhs.tick != rhs.tick ? lhs.tick < rhs.tick : lhs.event.isNoteOff && !rhs.event.isNoteOff
        }
        var events = [
            MIDITimedEvent(tick: 0, .tempo(microsecondsPerQuarter: microseconds)),
            MIDITimedEvent(tick: 0, .timeSignature(numerator: 4, denominatorPower: 2, clocksPerClick: 24,
                                                   thirtySecondsPerQuarter: 8)),
            MIDITimedEvent(tick: 0, .programChange(channel: 0, program: 0)),
        ]
        events += noteEvents
        events.append(MIDITimedEvent(tick: offset * ticksPerStep, .endOfTrack))
        return MIDIFile(format: .singleTrack, ticksPerQuarter: ticksPerQuarter, tracks: [MIDITrack(events: events)])
    }
}

extension MIDIEvent {
    fileprivate var isNoteOff: Bool {
        if case .noteOff = self { return true }
        return false
    }
}
