// Rendering MIDI with FluidSynth and the installed General MIDI soundfont (the real library, no
// stand-ins): an A4 sounds at 440 Hz, starts at its onset and fades after its note-off as the
// file's tempo map says, two renders are identical, and bad inputs give errors naming them.

import XCTest
import Foundation
import MIDI
@testable import MIDIRender

func temporaryDirectory(_ name: String) -> String {
    let path = NSTemporaryDirectory() + "jukebox-render-\(name)-\(getpid())-\(Int.random(in: 0..<1_000_000))"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

final class MIDIRendererTests: XCTestCase {
    static let ticksPerQuarter = 480

    /// A format-0 file holding one note of `key` from quarter `start` for `quarters` quarters, with
    /// the tempo changes `tempos` (quarter, quarters per minute). The file ends at the note-off.
    static func oneNote(key: UInt8 = 69, start: Int, quarters: Int, tempos: [(quarter: Int, qpm: Int)]) -> MIDIFile {
        let q = ticksPerQuarter
        var events = tempos.map { MIDITimedEvent(tick: $0.quarter * q, .tempo(microsecondsPerQuarter: 60_000_000 / $0.qpm)) }
        events += [MIDITimedEvent(tick: start * q, .noteOn(channel: 0, key: key, velocity: 100)),
                   MIDITimedEvent(tick: (start + quarters) * q, .noteOff(channel: 0, key: key, velocity: 0))]
        events.sort { $0.tick < $1.tick }
        return MIDIFile(format: .singleTrack, ticksPerQuarter: q, tracks: [MIDITrack(events: events)])
    }

    /// Root-mean-square of `x` over the seconds `from ..< to` at `rate` Hz.
    func rms(_ x: [Float], from: Double, to: Double, rate: Int) -> Double {
        let a = max(0, Int(from * Double(rate))), b = min(x.count, Int(to * Double(rate)))
        guard b > a else { return 0 }
        return (x[a..<b].reduce(0.0) { $0 + Double($1) * Double($1) } / Double(b - a)).squareRoot()
    }

    /// Magnitude of the DFT of `x` at `frequency` Hz (Hann window), by direct summation.
    func dftMagnitude(_ x: ArraySlice<Float>, frequency: Double, rate: Int) -> Double {
        var re = 0.0, im = 0.0
        let n = Double(x.count)
        for (i, v) in x.enumerated() {
            let w = 0.5 - 0.5 * cos(2 * Double.pi * Double(i) / n)
            let phase = 2 * Double.pi * frequency * Double(i) / Double(rate)
            re += w * Double(v) * cos(phase)
            im -= w * Double(v) * sin(phase)
        }
        return (re * re + im * im).squareRoot()
    }

    func testTheSpectrumOfAnA4PeaksAt440Hz() throws {
        let rate = 22050
        let renderer = try MIDIRenderer(sampleRate: rate)
        let samples = try renderer.render(Self.oneNote(start: 0, quarters: 2, tempos: [(0, 120)]))   // 0 ..< 1 s
        // Half a second of the sustained note; a 2 Hz grid over three octaves around A4 (the
        // window's main lobe is ±4 Hz wide, so the peak falls on the grid point nearest 440).
        let segment = samples[Int(0.2 * Double(rate)) ..< Int(0.7 * Double(rate))]
        let spectrum = stride(from: 200.0, through: 1800.0, by: 2.0).map { ($0, dftMagnitude(segment, frequency: $0, rate: rate)) }
        let peak = spectrum.max { $0.1 < $1.1 }!.0
        XCTAssertEqual(peak, 440, accuracy: 4, "spectrum peak at \(peak) Hz")
    }

    /// The tick-to-seconds conversion follows tempo changes: 2 quarters at 120 qpm take 1 s,
    /// then each quarter at 60 qpm takes 1 s.
    func testEventTimesFollowTheTempoMap() throws {
        let midi = Self.oneNote(start: 3, quarters: 2, tempos: [(0, 120), (2, 60)])
        let (events, end) = try MIDIRenderer.timedEvents(midi, name: "changes.mid")
        let noteTimes = events.compactMap { e -> Double? in
            switch e.event {
            case .noteOn, .noteOff: e.seconds
            default: nil
            }
        }
        XCTAssertEqual(noteTimes.count, 2)
        XCTAssertEqual(noteTimes[0], 2, accuracy: 1e-12)   // 1 s + 1 quarter at 60
        XCTAssertEqual(noteTimes[1], 4, accuracy: 1e-12)
        XCTAssertEqual(end, 4, accuracy: 1e-12)
    }

    /// The same note, one quarter long from the second quarter, at 60 qpm, at 120 qpm, and at
    /// 120 then 60 qpm: silence (exact zeros) until the onset the tempo map gives, sound within
    /// 20 ms after it (FluidSynth's 64-frame block and the sample's attack), and after the
    /// note-off a fade to under 5% of the note's level within half a second. The file lasts
    /// from 0 to the note-off plus the 1 s tail.
    func testTheNoteStartsAndEndsWhereTheTempoMapSays() throws {
        let rate = 22050
        let renderer = try MIDIRenderer(sampleRate: rate, tailSeconds: 1)
        let cases: [(tempos: [(quarter: Int, qpm: Int)], onset: Double, off: Double)] = [
            ([(0, 60)], 1, 2),
            ([(0, 120)], 0.5, 1),
            ([(0, 120), (1, 60)], 0.5, 1.5),
        ]
        for (tempos, onset, off) in cases {
            let x = try renderer.render(Self.oneNote(start: 1, quarters: 1, tempos: tempos))
            XCTAssertEqual(x.count, Int((off + 1) * Double(rate)), "\(tempos): length")
            let first = x.firstIndex { abs($0) > 1e-4 }.map { Double($0) / Double(rate) }
            XCTAssertNotNil(first, "\(tempos): silent")
            XCTAssertGreaterThanOrEqual(first ?? 0, onset, "\(tempos): sound before the onset")
            XCTAssertLessThan(first ?? .infinity, onset + 0.02, "\(tempos): late onset")
            let note = rms(x, from: onset, to: off, rate: rate)
            XCTAssertGreaterThan(note, 0.01, "\(tempos): note too quiet")
            XCTAssertLessThan(rms(x, from: off + 0.5, to: off + 1, rate: rate), 0.05 * note, "\(tempos): no fade after the note-off")
        }
    }

    func testRenderingTwiceGivesTheSameSamples() throws {
        var events: [MIDITimedEvent] = [MIDITimedEvent(tick: 0, .programChange(channel: 0, program: 40))]
        for (i, key) in [60, 64, 67, 72, 67, 64].enumerated() {
            events.append(MIDITimedEvent(tick: i * 240, .noteOn(channel: 0, key: UInt8(key), velocity: 90)))
            events.append(MIDITimedEvent(tick: i * 240 + 200, .noteOff(channel: 0, key: UInt8(key), velocity: 0)))
        }
        events.append(MIDITimedEvent(tick: 0, .noteOn(channel: 9, key: 36, velocity: 100)))   // a drum under it
        events.sort { $0.tick < $1.tick }
        let midi = MIDIFile(format: .singleTrack, ticksPerQuarter: 480, tracks: [MIDITrack(events: events)])
        let renderer = try MIDIRenderer(sampleRate: 22050)
        let first = try renderer.render(midi)
        XCTAssertGreaterThan(first.map { abs($0) }.max()!, 0.05)
        XCTAssertEqual(try renderer.render(midi), first, "the same renderer twice")
        XCTAssertEqual(try MIDIRenderer(sampleRate: 22050).render(midi), first, "a second renderer")
    }

    func testTheDefaultSoundfontIsADebianOne() throws {
        let renderer = try MIDIRenderer()
        XCTAssertTrue(MIDIRenderer.debianSoundfonts.contains(renderer.soundfont), renderer.soundfont)
        XCTAssertEqual(renderer.sampleRate, 44100)
    }

    /// Every bad input is an error whose description names the file or the setting.
    func testBadInputsGiveErrorsNamingThem() throws {
        let dir = temporaryDirectory("bad")
        let fm = FileManager.default
        let garbage = dir + "/garbage.sf2", truncated = dir + "/truncated.sf2", malformed = dir + "/malformed.mid"
        try Data("not a soundfont".utf8).write(to: URL(fileURLWithPath: garbage))
        let soundfont = try MIDIRenderer().soundfont
        try fm.contents(atPath: soundfont)!.prefix(2000).write(to: URL(fileURLWithPath: truncated))
        try Data("MThd\u{0}\u{0}\u{0}\u{6}\u{0}".utf8).write(to: URL(fileURLWithPath: malformed))
        let good = Self.oneNote(start: 0, quarters: 1, tempos: [(0, 120)])
        let silent = MIDIFile(format: .singleTrack, ticksPerQuarter: 480,
                              tracks: [MIDITrack(events: [MIDITimedEvent(tick: 0, .programChange(channel: 0, program: 3))])])
        var endless = good
        endless.tracks[0].events.append(MIDITimedEvent(tick: 480 * 100_000, .noteOff(channel: 0, key: 69, velocity: 0)))

        let cases: [(String, () throws -> Any, String)] = [
            ("missing soundfont", { try MIDIRenderer(soundfont: dir + "/missing.sf2") }, "missing.sf2: cannot use it as a soundfont: No such file"),
            ("folder soundfont", { try MIDIRenderer(soundfont: dir) }, "\(dir): cannot use it as a soundfont: it is a folder"),
            ("garbage soundfont", { try MIDIRenderer(soundfont: garbage) }, "garbage.sf2: cannot use it as a soundfont: not a SoundFont"),
            ("truncated soundfont", { try MIDIRenderer(soundfont: truncated).render(good) }, "truncated.sf2: cannot use it as a soundfont: SoundFont file size mismatch"),
            ("no soundfont", { try MIDIRenderer.findSoundfont(among: [dir + "/a.sf2", dir + "/b.sf2"]) }, "\(dir)/a.sf2, \(dir)/b.sf2"),
            ("sample rate", { try MIDIRenderer(sampleRate: 100) }, "sample rate 100 Hz"),
            ("gain", { try MIDIRenderer(gain: -1) }, "gain -1.0"),
            ("tail", { try MIDIRenderer(tailSeconds: .nan) }, "release tail"),
            ("missing MIDI", { try MIDIRenderer().render(contentsOf: dir + "/missing.mid") }, "missing.mid: cannot read"),
            ("malformed MIDI", { try MIDIRenderer().render(contentsOf: malformed) }, "malformed.mid: header"),
            ("no notes", { try MIDIRenderer().render(silent, name: "silent.mid") }, "silent.mid: no note to play"),
            ("too long", { try MIDIRenderer().render(endless, name: "endless.mid") }, "endless.mid: lasts 50001 s"),
        ]
        for (label, body, expected) in cases {
            XCTAssertThrowsError(try body(), label) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(label): '\(error)' should contain '\(expected)'")
                XCTAssertFalse("\(error)".contains("\n"), "\(label): one line")
            }
        }
    }
}
