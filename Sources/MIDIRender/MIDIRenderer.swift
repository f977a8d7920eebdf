// Rendering a Standard MIDI File to audio with FluidSynth and a General MIDI soundfont, so a
// melody can be heard.
//
// We play the parsed `MIDIFile` ourselves instead of handing its bytes to FluidSynth's MIDI
// player: event times come from the same tempo map every other command uses (a tick's time is
// the sum of the tempo segments before it), the file's end is known exactly, and the render is
// one loop with no timer. The synthesiser renders up to each event's time, then takes the event.
//
// The output is mono, the mean of FluidSynth's left and right channels (AudioDSP writes mono
// files), `tailSeconds` longer than the file so that the last notes' release and the reverb
// fade instead of being cut; notes still held at the file's end are released there.

import AudioDSP
import CFluidSynth
import Foundation
import MIDI

/// Renders MIDI to audio samples with FluidSynth: the soundfont, sample rate, gain and release
/// tail, checked when made. Rendering the same file twice gives the same samples.
public struct MIDIRenderer: Sendable {
    /// The sample rates FluidSynth synthesises at (its `synth.sample-rate` range), in Hz.
    public static let sampleRates = 8000...96000
    /// FluidSynth's output gains (`synth.gain`): a linear factor on the mix of all voices.
    public static let gains: ClosedRange<Double> = 0...10
    /// The longest render, with its tail, in seconds: an hour (635 MB of samples at 44.1 kHz);
    /// a damaged file's far-off event must not fill memory.
    public static let maximumSeconds: Double = 3600
    /// Where Debian installs General MIDI soundfonts, in the order they are tried: TimGM6mb
    /// (package timgm6mb-soundfont, what `make deps` installs; GPL-2), FluidR3 (fluid-soundfont-gm),
    /// and the system's default General MIDI soundfont (the alternatives link).
    public static let debianSoundfonts = [
        "/usr/share/sounds/sf2/TimGM6mb.sf2", "/usr/share/sounds/sf2/FluidR3_GM.sf2", "/etc/alternatives/default-GM.sf2",
    ]

    /// The SoundFont 2 file played.
    public let soundfont: String
    /// Output samples per second.
    public let sampleRate: Int
    /// FluidSynth's output gain. Its own default, 0.2, leaves room for dozens of voices: a
    /// melody (one voice at velocity 80) then peaks between −32 and −27 dBFS with TimGM6mb, and
    /// at ``defaultGain`` between −12 and −7 dBFS (measured on eight General MIDI programs).
    public let gain: Double
    /// The gain a renderer gets unless told: loud enough to hear one melody line, with room for
    /// a few voices more before the 16-bit file clips.
    public static let defaultGain = 2.0
    /// Seconds rendered after the file's last event.
    public let tailSeconds: Double

    /// A renderer playing `soundfont` (nil: the first of ``debianSoundfonts`` that is there) at
    /// `sampleRate` Hz with output gain `gain`, rendering `tailSeconds` past the file's end.
    ///
    /// - Throws: `MIDIRenderError` for a setting out of range, no soundfont found, or a soundfont
    ///   that is missing, unreadable or not a SoundFont.
    public init(soundfont: String? = nil, sampleRate: Int = 44100, gain: Double = defaultGain, tailSeconds: Double = 1) throws {
        guard Self.sampleRates.contains(sampleRate) else { throw MIDIRenderError.sampleRate(sampleRate) }
        guard Self.gains.contains(gain) else { throw MIDIRenderError.gain(gain) }
        guard tailSeconds.isFinite, tailSeconds >= 0 else { throw MIDIRenderError.tail(tailSeconds) }
        let path = try soundfont ?? Self.findSoundfont()
        try Self.checkSoundfont(path)
        self.soundfont = path
        self.sampleRate = sampleRate
        self.gain = gain
        self.tailSeconds = tailSeconds
    }

    /// The first of `candidates` that is a readable file.
    ///
    /// - Throws: `MIDIRenderError.noSoundfont` listing every candidate when none is.
    public static func findSoundfont(among candidates: [String] = debianSoundfonts) throws -> String {
        guard let found = candidates.first(where: { isReadableFile($0) }) else {
            throw MIDIRenderError.noSoundfont(tried: candidates)
        }
        return found
    }

    /// Throws `MIDIRenderError.unusableSoundfont` unless `path` is a readable SoundFont file
    /// (FluidSynth's check of its header; a file damaged further in fails when loaded).
    static func checkSoundfont(_ path: String) throws {
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw MIDIRenderError.unusableSoundfont(path: path, reason: String(cString: strerror(errno)))
        }
        guard (status.st_mode & S_IFMT) != S_IFDIR else {
            throw MIDIRenderError.unusableSoundfont(path: path, reason: "it is a folder")
        }
        guard access(path, R_OK) == 0 else {
            throw MIDIRenderError.unusableSoundfont(path: path, reason: String(cString: strerror(errno)))
        }
        FluidSynthLog.route()
        guard fluid_is_soundfont(path) != 0 else {
            throw MIDIRenderError.unusableSoundfont(path: path, reason: "not a SoundFont 2 file")
        }
    }

    private static func isReadableFile(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFREG && access(path, R_OK) == 0
    }

    /// The events of `midi` in the order a player sends them (``MIDIFile/allEventsInTickOrder()``),
    /// each at its time in seconds from the start following the tempo map, and the time of the
    /// file's last event (its end).
    ///
    /// - Throws: the reader's `MIDIError` for a division of 0 ticks per quarter (possible only in
    ///   a file made in memory), naming the file as `name`.
    static func timedEvents(_ midi: MIDIFile, name: String) throws -> (events: [(seconds: Double, event: MIDIEvent)], end: Double) {
        guard midi.ticksPerQuarter > 0 else {
            throw MIDIError.malformed(file: name, track: nil, offset: 12, problem: .zeroTicksPerQuarter)
        }
        // The running tempo segment: it starts at `segmentTick`, `segmentSeconds` into the file.
        var segmentTick = 0, segmentSeconds = 0.0
        var secondsPerTick = Double(MIDIFile.defaultMicrosecondsPerQuarter) / (1_000_000 * Double(midi.ticksPerQuarter))
        var events: [(seconds: Double, event: MIDIEvent)] = []
        for (tick, event) in midi.allEventsInTickOrder() {
            let seconds = segmentSeconds + Double(tick - segmentTick) * secondsPerTick
            events.append((seconds, event))
            if case let .tempo(microseconds) = event {
                (segmentTick, segmentSeconds) = (tick, seconds)
                secondsPerTick = Double(microseconds) / (1_000_000 * Double(midi.ticksPerQuarter))
            }
        }
        return (events, events.last?.seconds ?? 0)
    }

    /// The audio of `midi`: mono samples at ``sampleRate``, from time 0 to the file's last event
    /// plus ``tailSeconds``. `name` names the file in errors.
    ///
    /// - Throws: `MIDIRenderError.noNotes` for a file that turns no note on, `.tooLong` for one
    ///   longer than ``maximumSeconds``, `.unusableSoundfont` when FluidSynth cannot load the
    ///   soundfont.
    public func render(_ midi: MIDIFile, name: String = "MIDI file") throws -> [Float] {
        let (events, end) = try Self.timedEvents(midi, name: name)
        let soundsANote = events.contains {
            if case let .noteOn(_, _, velocity) = $0.event { velocity > 0 } else { false }
        }
        guard soundsANote else { throw MIDIRenderError.noNotes(name: name) }
        let seconds = end + tailSeconds
        guard seconds <= Self.maximumSeconds else {
            throw MIDIRenderError.tooLong(name: name, seconds: seconds, limit: Self.maximumSeconds)
        }
        let synthesiser = try Synthesiser(soundfont: soundfont, sampleRate: sampleRate, gain: gain)
        let frames = max(0, Int((seconds * Double(sampleRate)).rounded()))
        var left = [Float](repeating: 0, count: frames), right = [Float](repeating: 0, count: frames)   // (frames)
        left.withUnsafeMutableBufferPointer { l in
            right.withUnsafeMutableBufferPointer { r in
                var done = 0
                func render(until frame: Int) {
                    guard frame > done else { return }
                    synthesiser.write(left: l.baseAddress! + done, right: r.baseAddress! + done, count: frame - done)
                    done = frame
                }
                for (time, event) in events {
                    render(until: min(Int((time * Double(sampleRate)).rounded()), frames))
                    synthesiser.send(event)
                }
                synthesiser.releaseAllNotes()
                render(until: frames)
            }
        }
        return zip(left, right).map { 0.5 * ($0 + $1) }
    }

    /// The audio of the MIDI file at `path` (see ``render(_:name:)``).
    ///
    /// - Throws: the reader's `MIDIError` for a file that is missing or malformed, and the
    ///   errors of ``render(_:name:)``.
    public func render(contentsOf path: String) throws -> [Float] {
        try render(MIDIFile.read(path: path), name: path)
    }

    /// Renders the MIDI file at `input` and writes it to `output` as a 16-bit mono WAV file
    /// (AudioDSP's writer: a temporary file renamed into place, so a failed render or write
    /// leaves no partial file). Returns the samples written (before 16-bit rounding and
    /// clipping to [−1, 1]).
    public func renderFile(_ input: String, toWAV output: String) throws -> [Float] {
        let samples = try render(contentsOf: input)
        try AudioFile.write(output, samples: samples, sampleRate: sampleRate, format: .pcm16)
        return samples
    }
}
