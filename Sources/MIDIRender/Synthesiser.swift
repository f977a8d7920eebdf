// FluidSynth, offline: a synthesiser with one soundfont loaded, driven by direct calls and read
// with `fluid_synth_write_float`. No audio or MIDI driver is made, so nothing opens a device or
// starts a thread; the settings below are the ones that decide the samples.

import CFluidSynth
import Foundation
import MIDI
import Synchronization

/// FluidSynth's log, which is global to the process and goes to stderr by default (it would
/// break our one-line errors). Errors are kept, the first one to explain a failed load (FluidSynth's
/// own loader tries first; later messages only say that the other loaders failed too); warnings,
/// information and debugging messages are dropped, and so is GLib's log, where libinstpatch (the
/// second loader) reports its assertions.
enum FluidSynthLog {
    private static let firstError = Mutex<String?>(nil)

    /// Installs the routing (idempotent; every synthesiser calls it before FluidSynth runs).
    static func route() {
        fluid_set_log_function(Int32(FLUID_PANIC.rawValue), keepError, nil)
        fluid_set_log_function(Int32(FLUID_ERR.rawValue), keepError, nil)
        for level in [FLUID_WARN, FLUID_INFO, FLUID_DBG] {
            fluid_set_log_function(Int32(level.rawValue), nil, nil)
        }
        _ = g_log_set_default_handler({ _, _, _, _ in }, nil)
    }

    /// The first error FluidSynth logged since the previous call, if any.
    static func takeFirstError() -> String? {
        firstError.withLock { message in
            defer { message = nil }
            return message
        }
    }

    fileprivate static func record(_ message: String) {
        firstError.withLock { $0 = $0 ?? message }
    }
}

private func keepError(level: Int32, message: UnsafePointer<CChar>?, data: UnsafeMutableRawPointer?) {
    FluidSynthLog.record(message.map { String(cString: $0) } ?? "no message")
}

/// One FluidSynth synthesiser with a soundfont loaded; made fresh for every render, so no state
/// carries from one render to the next.
final class Synthesiser {
    private let settings: OpaquePointer
    private let synth: OpaquePointer

    /// A synthesiser at `sampleRate` Hz with output gain `gain` (FluidSynth's `synth.gain`)
    /// playing `soundfont`, which must already have passed ``MIDIRenderer/checkSoundfont(_:)``.
    init(soundfont: String, sampleRate: Int, gain: Double) throws {
        FluidSynthLog.route()
        _ = FluidSynthLog.takeFirstError()
        guard let settings = new_fluid_settings() else { throw MIDIRenderError.synthesiser(reason: "no settings (out of memory?)") }
        // Deterministic output: one thread mixes every voice in a fixed order. Reverb and chorus
        // stay on, as FluidSynth sets them, named here so a changed default cannot change the sound
        // unnoticed; they are fixed delay lines and LFOs with no random numbers (the tests render
        // twice and compare every sample). No memory locking: without the privilege it only warns.
        let numbers = [("synth.sample-rate", Double(sampleRate)), ("synth.gain", gain)]
        let integers: [(String, Int32)] = [("synth.cpu-cores", 1), ("synth.reverb.active", 1), ("synth.chorus.active", 1),
                                           ("synth.lock-memory", 0)]
        let refused = numbers.first { fluid_settings_setnum(settings, $0.0, $0.1) != FLUID_OK }.map { "\($0.0) = \($0.1)" }
            ?? integers.first { fluid_settings_setint(settings, $0.0, $0.1) != FLUID_OK }.map { "\($0.0) = \($0.1)" }
        if let refused {
            delete_fluid_settings(settings)
            throw MIDIRenderError.synthesiser(reason: "FluidSynth refuses the setting \(refused)")
        }
        guard let synth = new_fluid_synth(settings) else {
            delete_fluid_settings(settings)
            throw MIDIRenderError.synthesiser(reason: FluidSynthLog.takeFirstError() ?? "new_fluid_synth failed")
        }
        self.settings = settings
        self.synth = synth
        if fluid_synth_sfload(synth, soundfont, 1) == FLUID_FAILED {
            throw MIDIRenderError.unusableSoundfont(path: soundfont, reason: FluidSynthLog.takeFirstError() ?? "FluidSynth cannot load it")
        }
    }

    deinit {
        delete_fluid_synth(synth)
        delete_fluid_settings(settings)
    }

    /// Renders `count` frames into `left` and `right`. FluidSynth works in blocks of 64 frames
    /// and keeps the rest of a block for the next call, so an event sent between two calls
    /// sounds from the start of the next block: at most 64 frames late.
    func write(left: UnsafeMutablePointer<Float>, right: UnsafeMutablePointer<Float>, count: Int) {
        var done = 0
        while done < count {
            let n = min(count - done, 1 << 16)
            _ = fluid_synth_write_float(synth, Int32(n), left + done, 0, 1, right + done, 0, 1)
            done += n
        }
    }

    /// Sends one event now. Meta events make no sound (the caller turns tempo into time), and
    /// escaped bytes are not a message the synthesiser takes. FluidSynth's refusals (a note-off
    /// for a key not sounding, a program the soundfont lacks) are ignored, as a player would.
    func send(_ event: MIDIEvent) {
        switch event {
        case let .noteOn(channel, key, velocity) where velocity == 0:
            fluid_synth_noteoff(synth, Int32(channel), Int32(key))
        case let .noteOn(channel, key, velocity):
            fluid_synth_noteon(synth, Int32(channel), Int32(key), Int32(velocity))
        case let .noteOff(channel, key, _):
            fluid_synth_noteoff(synth, Int32(channel), Int32(key))
        case let .keyPressure(channel, key, pressure):
            fluid_synth_key_pressure(synth, Int32(channel), Int32(key), Int32(pressure))
        case let .controlChange(channel, controller, value):
            fluid_synth_cc(synth, Int32(channel), Int32(controller), Int32(value))
        case let .programChange(channel, program):
            fluid_synth_program_change(synth, Int32(channel), Int32(program))
        case let .channelPressure(channel, pressure):
            fluid_synth_channel_pressure(synth, Int32(channel), Int32(pressure))
        case let .pitchBend(channel, value):
            fluid_synth_pitch_bend(synth, Int32(channel), Int32(value))
        case let .sysex(bytes):
            // FluidSynth takes the message without its 0xF0 (already gone) and closing 0xF7.
            let body = bytes.last == 0xF7 ? Array(bytes.dropLast()) : bytes
            body.withUnsafeBufferPointer { b in
                b.withMemoryRebound(to: CChar.self) {
                    _ = fluid_synth_sysex(synth, $0.baseAddress, Int32($0.count), nil, nil, nil, 0)
                }
            }
        case .tempo, .timeSignature, .endOfTrack, .meta, .escape:
            break
        }
    }

    /// Puts every sounding note of every channel into its release, as a note-off would.
    func releaseAllNotes() {
        fluid_synth_all_notes_off(synth, -1)
    }
}
