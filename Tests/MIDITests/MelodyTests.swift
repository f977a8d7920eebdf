import Foundation
import XCTest
import MIDI

/// Builds one-track files of notes given in steps or ticks.
struct NoteList {
    var ticksPerQuarter = 480
    var events: [MIDITimedEvent] = []

    /// A note from `start` to `end` ticks.
    mutating func add(_ pitch: UInt8, ticks start: Int, _ end: Int, velocity: UInt8 = 100, channel: UInt8 = 0) {
        events.append(MIDITimedEvent(tick: start, .noteOn(channel: channel, key: pitch, velocity: velocity)))
        events.append(MIDITimedEvent(tick: end, .noteOff(channel: channel, key: pitch, velocity: 0)))
    }

    /// A note from step `start` to step `end` (4 steps a quarter).
    mutating func add(_ pitch: UInt8, steps start: Int, _ end: Int, velocity: UInt8 = 100, channel: UInt8 = 0) {
        let ticksPerStep = ticksPerQuarter / 4
        add(pitch, ticks: start * ticksPerStep, end * ticksPerStep, velocity: velocity, channel: channel)
    }

    func file(prefix: [MIDITimedEvent] = []) -> MIDIFile {
        // A stable sort keeps a note's on before its off when both fall on one tick.
        let sorted = events.enumerated().sorted { ($0.element.tick, $0.offset) < ($1.element.tick, $1.offset) }
        return MIDIFile(format: .singleTrack, ticksPerQuarter: ticksPerQuarter,
                        tracks: [MIDITrack(events: prefix + sorted.map(\.element))])
    }
}

/// Writes events compactly: `on(60)` a note-on, `off` a note-off, `__` no event.
private func on(_ pitch: Int) -> UInt8 { Melody.noteOn(pitch: pitch) }
private let off = Melody.noteOff
private let __ = Melody.noEvent
private func rests(_ count: Int) -> [UInt8] { [UInt8](repeating: __, count: count) }

final class MelodyTests: XCTestCase {
    func testEncodingHasNinetyClasses() {
        XCTAssertEqual(Melody.noteOn(pitch: 21), 2)
        XCTAssertEqual(Melody.noteOn(pitch: 108), 89)
        XCTAssertEqual(Melody.pitch(of: 89), 108)
        XCTAssertNil(Melody.pitch(of: Melody.noteOff))
        XCTAssertNil(Melody.pitch(of: Melody.noEvent))
        XCTAssertEqual(Melody.classCount, 90)
    }

    func testMonophonicLineStartsAtBarOfFirstNoteAndPadsToWholeBars() {
        var notes = NoteList()
        notes.add(60, steps: 20, 22)   // first note in the second bar
        notes.add(62, steps: 24, 26)
        let melodies = Melody.extract(from: notes.file())
        // Starts at step 16; the final note-off is dropped, then padding to 16 steps restores it.
        XCTAssertEqual(melodies, [Melody(events: rests(4) + [on(60), __, off, __, on(62), __, off] + rests(5))])
    }

    func testHighestNoteWinsAtASharedOnset() {
        var notes = NoteList()
        notes.add(60, steps: 0, 4)
        notes.add(67, steps: 0, 4)
        notes.add(64, steps: 0, 4)
        notes.add(48, steps: 4, 8)
        notes.add(50, steps: 4, 8, velocity: 30)
        let events = Melody.extract(from: notes.file())[0].events
        XCTAssertEqual(Array(events[0..<9]), [on(67), __, __, __, on(50), __, __, __, off])
    }

    func testLaterOnsetEndsAHeldNote() {
        var notes = NoteList()
        notes.add(72, steps: 0, 12)    // held for three quarters...
        notes.add(74, steps: 4, 6)     // ...but cut at step 4
        notes.add(76, steps: 8, 16)
        let events = Melody.extract(from: notes.file())[0].events
        XCTAssertEqual(events, [on(72), __, __, __, on(74), __, off, __, on(76)] + rests(7))
    }

    func testDrumChannelIgnoredAndOneMelodyPerInstrument() {
        var notes = NoteList()
        notes.add(36, steps: 0, 1, channel: 9)     // kick drum on "channel 10"
        notes.add(60, steps: 0, 4, channel: 0)
        notes.add(45, steps: 2, 4, channel: 1)     // a bass line on another channel
        let melodies = Melody.extract(from: notes.file())
        XCTAssertEqual(melodies.count, 2)
        XCTAssertEqual(Array(melodies[0].events[0..<5]), [on(60), __, __, __, off])
        XCTAssertEqual(Array(melodies[1].events[0..<5]), [__, __, on(45), __, off])
        XCTAssertFalse(melodies.flatMap(\.events).contains(on(36)))

        var drumsOnly = NoteList()
        drumsOnly.add(38, steps: 0, 2, channel: 9)
        XCTAssertEqual(Melody.extract(from: drumsOnly.file()), [])
    }

    func testTripletOnsetsQuantizeToNearestStep() {
        var notes = NoteList()
        // Triplet eighths at 480 PPQ: ticks 0, 160, 320 are steps 0, 1.33, 2.67.
        notes.add(60, ticks: 0, 160)
        notes.add(62, ticks: 160, 320)
        notes.add(64, ticks: 320, 480)
        // abc2midi's onsets are one tick late: 961 is still step 8; 1020 is 8.5, which rounds up.
        notes.add(65, ticks: 961, 1020)
        notes.add(67, ticks: 1020, 1200)
        let events = Melody.extract(from: notes.file())[0].events
        XCTAssertEqual(Array(events[0..<11]), [on(60), on(62), __, on(64), off, __, __, __, on(65), on(67), off])
    }

    func testPitchesOutsidePianoRangeAndOtherMetersAreDropped() {
        var notes = NoteList()
        notes.add(10, steps: 0, 4)
        notes.add(120, steps: 4, 8)
        notes.add(60, steps: 20, 24)
        XCTAssertEqual(Melody.extract(from: notes.file()),
                       [Melody(events: rests(4) + [on(60), __, __, __, off] + rests(7))])

        let waltz = notes.file(prefix: [MIDITimedEvent(tick: 0, .timeSignature(
            numerator: 3, denominatorPower: 2, clocksPerClick: 24, thirtySecondsPerQuarter: 8))])
        XCTAssertEqual(Melody.extract(from: waltz), [])
    }

    func testTempoChangeSplitsTheMelody() {
        var notes = NoteList()
        notes.add(60, steps: 0, 4)
        notes.add(62, steps: 36, 40)
        notes.events.append(MIDITimedEvent(tick: 32 * 120, .tempo(microsecondsPerQuarter: 400_000)))
        let file = notes.file()
        // The second part starts at step 32, so its note is at step 4 of its first bar.
        XCTAssertEqual(Melody.extract(from: file), [
            Melody(events: [on(60), __, __, __, off] + rests(11)),
            Melody(events: rests(4) + [on(62), __, __, __, off] + rests(7)),
        ])
    }

    func testMelodiesAreCutToMaximumBars() {
        var notes = NoteList()
        for bar in 0..<120 { notes.add(60, steps: 16 * bar, 16 * bar + 4) }
        XCTAssertEqual(Melody.extract(from: notes.file())[0].events.count, 1600)
        XCTAssertEqual(Melody.extract(from: notes.file(), maximumBars: nil)[0].events.count, 1920)
    }

    /// Clipping notes at the bar limit while extracting gives what laying the melody out in full
    /// and cutting it afterwards (the reference) gives.
    func testCuttingAtTheLimitMatchesCuttingAfterwards() {
        var generator = SplitMix64(seed: 3)
        for trial in 0..<500 {
            var notes = NoteList()
            for _ in 0..<(1 + Int(generator.next() % 8)) {
                let start = Int(generator.next() % 48)
                let length = 1 + Int(generator.next() % 24)
                notes.add(UInt8(60 + generator.next() % 5), steps: start, start + length)
            }
            let full = Melody.extract(from: notes.file(), maximumBars: nil)
            let cut = full.map { Melody(events: Array($0.events.prefix(32))) }
            XCTAssertEqual(Melody.extract(from: notes.file(), maximumBars: 2), cut, "trial \(trial)")
        }
    }

    func testAHugeNoteStaysWithinTheBarLimit() {
        var notes = NoteList(ticksPerQuarter: 1)
        notes.add(60, ticks: 0, 0x0FFF_FFFF)
        XCTAssertEqual(Melody.extract(from: notes.file())[0].events, [on(60)] + rests(1599))
    }

    /// An abc2midi-style tune with a one-quarter pickup: the first note of each bar has velocity
    /// 105, the others 95 or 80, and onsets come one tick late.
    func pickupTune() -> MIDIFile {
        var notes = NoteList()
        notes.add(67, ticks: 1, 480, velocity: 105)          // pickup: abc2midi accents it too
        for bar in 0..<4 {
            let downbeat = 480 + bar * 1920
            notes.add(72, ticks: downbeat + 1, downbeat + 480, velocity: 105)
            notes.add(71, ticks: downbeat + 481, downbeat + 960, velocity: 80)
            notes.add(69, ticks: downbeat + 961, downbeat + 1440, velocity: 95)
            notes.add(67, ticks: downbeat + 1441, downbeat + 1920, velocity: 80)
        }
        return notes.file()
    }

    func testDownbeatFromAccentsPadsThePickup() throws {
        let tune = pickupTune()
        let phase = try Melody.downbeatPhase(of: tune)
        XCTAssertEqual(phase, 4)     // 4 of the 5 accents (80 %) fall on step 4 of 16

        // The reference starts at the bar of the first note, so its bar lines fall mid-bar.
        let unaligned = Melody.extract(from: tune)[0]
        XCTAssertEqual(unaligned.events[0], on(67))

        // Aligned: 12 steps of rest, the pickup, and every downbeat on a multiple of 16.
        let aligned = Melody.extract(from: tune, downbeatPhase: phase)[0]
        XCTAssertEqual(Array(aligned.events[0..<17]), rests(12) + [on(67), __, __, __, on(72)])
        for bar in 1...4 { XCTAssertEqual(aligned.events[16 * bar], on(72), "bar \(bar)") }
        XCTAssertEqual(aligned.events.count % 16, 0)
    }

    func testDownbeatRefusesInconsistentOrMissingAccents() {
        var notes = NoteList()
        for quarter in 0..<8 { notes.add(60, ticks: quarter * 480, quarter * 480 + 400, velocity: 105) }
        // Accents on every quarter: 2 of 8 share any one phase, 25 % < 80 %.
        XCTAssertThrowsError(try Melody.downbeatPhase(of: notes.file())) {
            XCTAssertEqual($0 as? DownbeatError, .inconsistent(phase: 0, agreement: 0.25, required: 0.8))
        }
        var flat = NoteList()
        flat.add(60, steps: 0, 4, velocity: 90)
        XCTAssertThrowsError(try Melody.downbeatPhase(of: flat.file())) {
            XCTAssertEqual($0 as? DownbeatError, .noAccents(velocity: 105))
        }
    }

    func testEventsToMIDIToEventsRoundTrip() throws {
        let melody = Melody(events: [on(60), __, __, off, on(62), on(64), __, __, __, __, off, __, on(65), __, __, __]
                            + [on(67), __, off, __, __, __, __, __, on(72), __, __, __, __, __, __, __])
        let file = melody.midi()
        XCTAssertEqual(file.tempoMap.last?.quartersPerMinute, 120)
        let reread = try MIDIFile(bytes: try file.bytes(), name: "melody.mid")
        XCTAssertEqual(Melody.extract(from: reread), [melody])

        let slow = melody.midi(quartersPerMinute: 90, ticksPerQuarter: 96)
        XCTAssertEqual(slow.tempoMap.last?.microsecondsPerQuarter, 666_667)
        XCTAssertEqual(Melody.extract(from: slow), [melody])
    }

    func testChunksToMIDIEndEachChunksLastNote() throws {
        let first = Melody(events: [on(60)] + rests(31))                   // sounds to its end
        let second = Melody(events: rests(4) + [on(62), __, off] + rests(25))
        let file = Melody.midi(chunks: [first, second])
        let notes = file.tracks[0].events.filter {
            if case .noteOn = $0.event { return true }
            if case .noteOff = $0.event { return true }
            return false
        }
        XCTAssertEqual(notes, [
            MIDITimedEvent(tick: 0, .noteOn(channel: 0, key: 60, velocity: 80)),
            MIDITimedEvent(tick: 32 * 120, .noteOff(channel: 0, key: 60, velocity: 0)),
            MIDITimedEvent(tick: 36 * 120, .noteOn(channel: 0, key: 62, velocity: 80)),
            MIDITimedEvent(tick: 38 * 120, .noteOff(channel: 0, key: 62, velocity: 0)),
        ])
        XCTAssertEqual(file.tracks[0].events.last, MIDITimedEvent(tick: 64 * 120, .endOfTrack))
        let joined = Melody.extract(from: file)[0]
        XCTAssertEqual(joined.events, [on(60)] + rests(31) + [off] + rests(3) + [on(62), __, off] + rests(9))
    }

    func testChunksAndTrainingSlices() {
        let melody = Melody(events: (0..<80).map { $0 % 8 == 0 ? on(60 + $0 / 8) : __ })
        let chunks = melody.chunks(steps: 32)
        XCTAssertEqual(chunks.count, 2)
        XCTAssertEqual(chunks[1].events, Array(melody.events[32..<64]))
        let slices = melody.slices(steps: 32, hop: 16)
        XCTAssertEqual(slices.count, 4)     // windows ending at 32, 48, 64, 80
        XCTAssertEqual(slices[3].events, Array(melody.events[48..<80]))
        XCTAssertEqual(slices.enumerated().filter { $0.offset % 2 == 0 }.map(\.element), chunks)

        XCTAssertTrue(Melody(events: rests(31) + [off]).isSilent)
        XCTAssertFalse(chunks[0].isSilent)
    }

    func testTranspositionBounds() {
        let melody = Melody(events: [on(21), __, off, on(103), __, on(60)])
        XCTAssertEqual(melody.transposed(by: 5)?.events, [on(26), __, off, on(108), __, on(65)])
        XCTAssertNil(melody.transposed(by: 6))        // 103 + 6 = 109
        XCTAssertNil(melody.transposed(by: -1))       // 21 − 1 = 20
        XCTAssertEqual(melody.transposed(by: 0), melody)

        var generator = SplitMix64(seed: 1)
        var seen = Set<Int>()
        for _ in 0..<200 {
            let moved = melody.randomlyTransposed(using: &generator)
            let shift = Melody.pitch(of: moved.events[0])! - 21
            XCTAssertTrue((0...5).contains(shift))
            XCTAssertEqual(moved, melody.transposed(by: shift))
            seen.insert(shift)
        }
        XCTAssertEqual(seen, Set(0...5))
    }
}
