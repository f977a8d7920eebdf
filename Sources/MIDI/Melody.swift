import Foundation

// A monophonic melody in MusicVAE's one-hot melody encoding (note_seq
// `MelodyOneHotEncoding(21, 109)`), the input of "Symbolic Music Generation with Diffusion
// Models" (Mittal et al. 2021):
//
//   steps: 4 per quarter note, 16 per 4/4 bar; a 2-bar chunk is 32 steps
//   event classes (90):  0        no event (the sounding note holds, or the rest goes on)
//                        1        note off
//                        2...89   note on, pitch = class + 19 (MIDI 21...108, the piano's keys)
//
// Extraction from MIDI is in `Melody+Extraction.swift`, the way back in `Melody+MIDI.swift`.

/// A monophonic melody: one event class a step, 4 steps per quarter note.
public struct Melody: Equatable, Sendable {
    /// Quantisation steps per quarter note.
    public static let stepsPerQuarter = 4
    /// Steps per 4/4 bar, the only bar length MusicVAE's melody models accept.
    public static let stepsPerBar = 16
    /// The number of event classes.
    public static let classCount = 90
    /// Event class: nothing new happens at this step.
    public static let noEvent: UInt8 = 0
    /// Event class: the sounding note stops at this step.
    public static let noteOff: UInt8 = 1
    /// The pitches a melody can hold, MIDI 21 (A0) to 108 (C8).
    public static let pitchRange = 21...108
    /// The transpositions MusicVAE draws from to augment its training data, in semitones.
    public static let trainingTranspositions = -5...5

    /// One event class a step, each in 0..<90. (T)
    public var events: [UInt8]

    /// A melody from its event classes, each in 0..<90.
    public init(events: [UInt8]) {
        precondition(events.allSatisfy { $0 < Melody.classCount }, "melody event class outside 0..<90")
        self.events = events
    }

    /// The event class that starts a note of `pitch`, which must lie in `pitchRange`.
    public static func noteOn(pitch: Int) -> UInt8 {
        precondition(pitchRange.contains(pitch), "pitch \(pitch) outside 21...108")
        return UInt8(2 + pitch - pitchRange.lowerBound)
    }

    /// The pitch an event class starts, nil for no-event and note-off.
    public static func pitch(of event: UInt8) -> Int? {
        event >= 2 ? Int(event) - 2 + pitchRange.lowerBound : nil
    }

    /// True when no note starts in the melody (all rest, or only holds and note-offs), the chunks
    /// the reference stores as zero vectors.
    public var isSilent: Bool { !events.contains { $0 >= 2 } }

    /// Non-overlapping chunks of `steps` steps from the first step (the first bar), dropping a
    /// last chunk that would be short: the reference's `to_tensors(...).inputs[::2]` for 2-bar
    /// chunks. (chunks, steps)
    public func chunks(steps: Int = 32) -> [Melody] {
        slices(steps: steps, hop: steps)
    }

    /// Overlapping windows of `steps` steps every `hop` steps, as MusicVAE slices melodies for
    /// training (32 steps, a 1-bar hop of 16). (windows, steps)
    public func slices(steps: Int = 32, hop: Int = Melody.stepsPerBar) -> [Melody] {
        precondition(steps > 0 && hop > 0, "slice length and hop must be positive")
        return stride(from: steps, through: events.count, by: hop).map {
            Melody(events: Array(events[($0 - steps)..<$0]))
        }
    }

    /// The melody moved by `semitones`, nil if a note would leave MIDI 21...108.
    public func transposed(by semitones: Int) -> Melody? {
        var moved = events
        for (step, event) in events.enumerated() {
            guard let pitch = Melody.pitch(of: event) else { continue }
            guard Melody.pitchRange.contains(pitch + semitones) else { return nil }
            moved[step] = Melody.noteOn(pitch: pitch + semitones)
        }
        return Melody(events: moved)
    }

    /// The melody transposed by an amount drawn uniformly from `trainingTranspositions` among
    /// those that keep every note within MIDI 21...108 (0 always does): training augmentation.
    public func randomlyTransposed<Generator: RandomNumberGenerator>(using generator: inout Generator) -> Melody {
        let candidates = Melody.trainingTranspositions.compactMap { transposed(by: $0) }
        return candidates.randomElement(using: &generator)!
    }
}
