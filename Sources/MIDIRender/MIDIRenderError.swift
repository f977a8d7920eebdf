import Foundation

/// What went wrong rendering MIDI to audio. Each description is one line that names the file or
/// the setting at fault; a malformed MIDI file is reported by the MIDI reader (`MIDIError`).
public enum MIDIRenderError: Error, Equatable, CustomStringConvertible, Sendable {
    /// No soundfont was named and none of the General MIDI soundfonts Debian installs is there.
    case noSoundfont(tried: [String])
    /// The soundfont at `path` cannot be used (missing, a folder, unreadable, not a SoundFont,
    /// or refused by FluidSynth, whose reason is kept).
    case unusableSoundfont(path: String, reason: String)
    /// A sample rate outside what FluidSynth synthesises (``MIDIRenderer/sampleRates``).
    case sampleRate(Int)
    /// A gain outside FluidSynth's range (``MIDIRenderer/gains``).
    case gain(Double)
    /// A release tail that is negative or not finite.
    case tail(Double)
    /// The MIDI file `name` turns no note on.
    case noNotes(name: String)
    /// The MIDI file `name` lasts, with the release tail, longer than ``MIDIRenderer/maximumSeconds``.
    case tooLong(name: String, seconds: Double, limit: Double)
    /// FluidSynth could not make its synthesiser.
    case synthesiser(reason: String)

    /// The problem in one line, for the user.
    public var description: String {
        switch self {
        case let .noSoundfont(tried):
            return "no General MIDI soundfont found (tried \(tried.joined(separator: ", "))); install the Debian package "
                + "timgm6mb-soundfont (`make deps` does) or name a .sf2 file"
        case let .unusableSoundfont(path, reason):
            return "\(path): cannot use it as a soundfont: \(reason)"
        case let .sampleRate(rate):
            return "sample rate \(rate) Hz is outside the \(MIDIRenderer.sampleRates.lowerBound)...\(MIDIRenderer.sampleRates.upperBound) Hz FluidSynth renders at"
        case let .gain(gain):
            return "gain \(gain) is outside FluidSynth's \(MIDIRenderer.gains.lowerBound)...\(MIDIRenderer.gains.upperBound)"
        case let .tail(seconds):
            return "release tail of \(seconds) s: must be finite and at least 0"
        case let .noNotes(name):
            return "\(name): no note to play"
        case let .tooLong(name, seconds, limit):
            return "\(name): lasts \(String(format: "%.0f", seconds)) s with the release tail, more than the \(String(format: "%.0f", limit)) s a render may take"
        case let .synthesiser(reason):
            return "FluidSynth cannot make a synthesiser: \(reason)"
        }
    }
}
