import Foundation

// Melody extraction as MusicVAE's `OneHotMelodyConverter` does it for the diffusion paper
// (note_seq `melodies_lib.py`, magenta `music_vae/data.py`):
//   1. notes outside MIDI 21...108 are dropped; drum notes (channel 9, "channel 10") are ignored;
//   2. the file is split where the tempo or time signature changes; a split cuts sounding notes;
//      a part whose bar is not 16 steps (4/4, 2/2) yields nothing;
//   3. onsets and ends are quantised to the nearest step (4 per quarter, halves round up); a
//      note shorter than a step lasts one step;
//   4. one melody per instrument (track, channel, program), starting at the bar of its first
//      note; of notes sharing an onset the highest wins; a later onset ends a held note;
//   5. a final note-off is dropped and the melody padded with no-events to whole bars (the
//      padding re-inserts that note-off when it adds steps), then cut to 100 bars.
//
// Ticks become steps exactly: step = round(4 · tick / ticksPerQuarter), in integers.

/// A note read from a file, in ticks.
struct TimedNote {
    var start: Int
    var end: Int
    var pitch: Int
    var instrument: Instrument
}

/// What note_seq (through pretty_midi) calls an instrument: a program on a channel of a track.
struct Instrument: Hashable {
    var track: Int
    var channel: UInt8
    var program: UInt8
}

/// Why a file's accents do not give a downbeat.
public enum DownbeatError: Error, Equatable, CustomStringConvertible, Sendable {
    /// No non-drum note has the accent velocity.
    case noAccents(velocity: UInt8)
    /// The most common phase of the accented onsets holds for too few of them: the tune is
    /// unusable.
    case inconsistent(phase: Int, agreement: Double, required: Double)

    /// The problem in one line, for the user.
    public var description: String {
        switch self {
        case let .noAccents(velocity):
            return "no note has the accent velocity \(velocity), so the downbeat is unknown"
        case let .inconsistent(phase, agreement, required):
            return "accented onsets agree on downbeat phase \(phase) in only "
                + "\(Int((agreement * 100).rounded())) % of bars (need \(Int((required * 100).rounded())) %)"
        }
    }
}

extension Melody {
    /// The melodies of `file`, one per instrument (a program on a channel of a track) and part
    /// between tempo or time-signature changes, in the reference's 90-class encoding.
    ///
    /// - Parameters:
    ///   - downbeatPhase: the step (0..<16, counted from the start of the file) on which bars
    ///     start. 0 is the reference: bars start at the file's start. A melody starts at the
    ///     latest downbeat at or before its first note, so a pickup gets rests in front of it.
    ///   - maximumBars: melodies are cut to this many bars (the reference's `max_bars` = 100);
    ///     nil keeps them whole.
    public static func extract(from file: MIDIFile, downbeatPhase: Int = 0, maximumBars: Int? = 100) -> [Melody] {
        precondition((0..<stepsPerBar).contains(downbeatPhase), "downbeat phase outside 0..<16")
        let notes = timedNotes(of: file).filter { pitchRange.contains($0.pitch) }
        var melodies: [Melody] = []
        for part in timeChangeParts(of: file) {
            // Only bars of 16 steps: MusicVAE rejects any other bar length.
            guard part.signature.numerator == part.signature.denominator else { continue }
            let partStart = step(ofTick: part.ticks.lowerBound, ticksPerQuarter: file.ticksPerQuarter)
            let phase = ((downbeatPhase - partStart) % stepsPerBar + stepsPerBar) % stepsPerBar
            var byInstrument: [Instrument: [(start: Int, end: Int, pitch: Int)]] = [:]
            var order: [Instrument] = []
            for note in notes where part.ticks.contains(note.start) {
                let start = step(ofTick: note.start - part.ticks.lowerBound, ticksPerQuarter: file.ticksPerQuarter)
                var end = step(ofTick: min(note.end, part.ticks.upperBound) - part.ticks.lowerBound,
                               ticksPerQuarter: file.ticksPerQuarter)
                if end <= start { end = start + 1 }
                if byInstrument[note.instrument] == nil { order.append(note.instrument) }
                byInstrument[note.instrument, default: []].append((start, end, note.pitch))
            }
            for instrument in order {
                let events = monophonicEvents(byInstrument[instrument]!, phase: phase,
                                              maximumSteps: maximumBars.map { $0 * stepsPerBar })
                melodies.append(Melody(events: events))
            }
        }
        return melodies
    }

    /// The phase (0..<barSteps) of the downbeat, from the notes abc2midi accents: its default
    /// `%%MIDI beat 105 95 80 1` plays the first note of every bar at velocity 105, so the most
    /// common step of those onsets modulo the bar is where bars start. Pass the result to
    /// `extract(from:downbeatPhase:)` for 16-step bars.
    ///
    /// - Throws: `DownbeatError.noAccents` when no non-drum note has `accentVelocity`;
    ///   `DownbeatError.inconsistent` when fewer than `minimumAgreement` of those onsets share
    ///   the most common phase (the tune is unusable).
    public static func downbeatPhase(of file: MIDIFile, barSteps: Int = stepsPerBar, accentVelocity: UInt8 = 105,
                                     minimumAgreement: Double = 0.8) throws -> Int {
        precondition(barSteps > 0, "bar length must be positive")
        var counts = [Int](repeating: 0, count: barSteps)
        for track in file.tracks {
            for timed in track.events {
                guard case let .noteOn(channel, _, velocity) = timed.event,
                      channel != drumChannel, velocity == accentVelocity else { continue }
                let onset = step(ofTick: timed.tick, ticksPerQuarter: file.ticksPerQuarter)
                counts[(onset % barSteps + barSteps) % barSteps] += 1
            }
        }
        let total = counts.reduce(0, +)
        guard total > 0 else { throw DownbeatError.noAccents(velocity: accentVelocity) }
        let phase = counts.indices.max { counts[$0] < counts[$1] }!
        let agreement = Double(counts[phase]) / Double(total)
        guard agreement >= minimumAgreement else {
            throw DownbeatError.inconsistent(phase: phase, agreement: agreement, required: minimumAgreement)
        }
        return phase
    }

    /// The nearest step to `tick`, halves rounding up, in exact integer arithmetic.
    static func step(ofTick tick: Int, ticksPerQuarter: Int) -> Int {
        let quarters = tick / ticksPerQuarter
        let remainder = tick % ticksPerQuarter
        return quarters * stepsPerQuarter + (2 * stepsPerQuarter * remainder + ticksPerQuarter) / (2 * ticksPerQuarter)
    }

    /// note_seq's `Melody.from_quantized_sequence(ignore_polyphonic_notes=True, gap_bars=inf,
    /// pad_end=True)` for one instrument's notes, in steps, with bars starting at `phase`, then
    /// cut to `maximumSteps` (a multiple of 16) as `extract_melodies(max_steps_truncate:)` does.
    static func monophonicEvents(_ notes: [(start: Int, end: Int, pitch: Int)], phase: Int,
                                 maximumSteps: Int?) -> [UInt8] {
        // By onset, and at a shared onset the highest pitch first, so it is the one kept.
        let sorted = notes.sorted { ($0.start, -$0.pitch) < ($1.start, -$1.pitch) }
        guard let first = sorted.first else { return [] }
        let melodyStart = first.start - ((first.start - phase) % stepsPerBar + stepsPerBar) % stepsPerBar
        // Nothing past the limit is kept, so notes are clipped there rather than laid out in
        // full and cut afterwards: the result is the same, and a hostile file cannot make the
        // melody ask for billions of steps. Steps before a note's onset never change after it.
        let limit = maximumSteps ?? Int.max
        var events: [UInt8] = []
        var lastOnset = -1
        var lastEnd = 0   // where the last note added ends, before clipping
        for note in sorted {
            let start = note.start - melodyStart
            if start == lastOnset { continue }
            lastOnset = start
            lastEnd = note.end - melodyStart
            guard start < limit else { break }
            let end = min(lastEnd, limit)
            // Resizing to the new note's end either extends with no-events or cuts a held note
            // (and anything after it) short.
            resize(&events, to: end + 1)
            events[start] = noteOn(pitch: note.pitch)
            for step in (start + 1)..<end { events[step] = noEvent }
            events[end] = noteOff
        }
        if lastEnd > limit {
            // The whole melody runs past the limit: cut it there (a plain cut, no note-off).
            return Array(events.prefix(limit)) + [UInt8](repeating: noEvent, count: max(limit - events.count, 0))
        }
        if events.last == noteOff { events.removeLast() }
        let padded = (events.count + stepsPerBar - 1) / stepsPerBar * stepsPerBar
        resize(&events, to: padded)
        return events
    }

    /// note_seq's `Melody.set_length`: cuts, or extends with no-events; when it extends a melody
    /// whose last note is still sounding, the note ends where the old melody ended.
    static func resize(_ events: inout [UInt8], to length: Int) {
        if length <= events.count {
            events.removeLast(events.count - length)
            return
        }
        let oldLength = events.count
        let sounding = events.last { $0 != noEvent }.map { $0 >= 2 } ?? false
        events += [UInt8](repeating: noEvent, count: length - oldLength)
        if sounding { events[oldLength] = noteOff }
    }
}

/// General MIDI's drum channel, "channel 10" counted from 1.
let drumChannel: UInt8 = 9

/// A stretch of the file with one tempo and one time signature.
struct TimeChangePart {
    var ticks: Range<Int>
    var signature: TimeSignatureChange
}

/// The file cut where the tempo or the time signature changes value (note_seq
/// `split_note_sequence_on_time_changes`); a change to the value already in force is no cut.
func timeChangeParts(of file: MIDIFile) -> [TimeChangePart] {
    let tempos = file.tempoMap
    let signatures = file.timeSignatureMap
    let changeTicks = Set(tempos.map(\.tick) + signatures.map(\.tick)).sorted()
    var parts: [TimeChangePart] = []
    var previous: (tempo: Int, numerator: Int, denominator: Int)? = nil
    for tick in changeTicks {
        let tempo = tempos.last { $0.tick <= tick }!.microsecondsPerQuarter
        let signature = signatures.last { $0.tick <= tick }!
        let state = (tempo, signature.numerator, signature.denominator)
        if let previous, previous == state { continue }
        if let last = parts.indices.last { parts[last].ticks = parts[last].ticks.lowerBound..<tick }
        parts.append(TimeChangePart(ticks: tick..<Int.max, signature: signature))
        previous = state
    }
    return parts
}

/// The notes of every non-drum channel, paired note-on to note-off as pretty_midi pairs them:
/// a note-off (or a note-on at velocity 0) ends every open note of its channel and key, except
/// that notes begun at the same tick stay open when older ones are there to end. Notes never
/// ended are dropped.
func timedNotes(of file: MIDIFile) -> [TimedNote] {
    var notes: [TimedNote] = []
    for (trackIndex, track) in file.tracks.enumerated() {
        var programs = [UInt8](repeating: 0, count: 16)
        var open: [Int: [(tick: Int, program: UInt8)]] = [:]   // key: channel · 128 + pitch
        for timed in track.events {
            switch timed.event {
            case let .programChange(channel, program) where channel < 16:
                programs[Int(channel)] = program
            case let .noteOn(channel, key, velocity) where velocity > 0:
                guard channel < 16, channel != drumChannel else { continue }
                open[Int(channel) * 128 + Int(key), default: []].append((timed.tick, programs[Int(channel)]))
            case let .noteOn(channel, key, _), let .noteOff(channel, key, _):
                let slot = Int(channel) * 128 + Int(key)
                guard let starts = open[slot] else { continue }
                let older = starts.filter { $0.tick != timed.tick }
                let ending = older.isEmpty ? starts : older
                for start in ending {
                    let instrument = Instrument(track: trackIndex, channel: channel, program: start.program)
                    notes.append(TimedNote(start: start.tick, end: timed.tick, pitch: Int(key), instrument: instrument))
                }
                open[slot] = older.isEmpty ? nil : starts.filter { $0.tick == timed.tick }
            default:
                continue
            }
        }
    }
    return notes
}
