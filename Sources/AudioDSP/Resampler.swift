// Sample-rate conversion with libsamplerate.
//
// The converter is SRC_SINC_MEDIUM_QUALITY: a band-limited sinc interpolator (libsamplerate
// quotes 121 dB SNR and a 90 % passband, i.e. flat to 19.8 kHz at 44.1 kHz) at about a third of
// the cost of SRC_SINC_BEST_QUALITY; linear and zero-order-hold converters alias and are not
// used. `StreamingResampler` converts block by block so a file of any length is read with a
// bounded buffer, and so a window of a long file can be converted on its own.

import Foundation
import CSampleRate

/// One-shot sample-rate conversion of mono signals.
public enum Resampler {
    /// The libsamplerate converter used everywhere in jukebox.
    static let converter = Int32(SRC_SINC_MEDIUM_QUALITY)

    /// Whether libsamplerate can convert between the two rates (ratio within 1/256 … 256).
    public static func canConvert(from source: Int, to target: Int) -> Bool {
        source > 0 && target > 0 && src_is_valid_ratio(Double(target) / Double(source)) != 0
    }

    /// Number of samples a signal of `count` samples at `source` Hz has at `target` Hz:
    /// `count · target / source`, rounded down. Every conversion returns exactly this many.
    public static func convertedLength(_ count: Int, from source: Int, to target: Int) -> Int {
        count * target / source
    }

    /// `signal` (mono, at `source` Hz) converted to `target` Hz; the result has
    /// ``convertedLength(_:from:to:)`` samples and is time-aligned with the input (output sample
    /// `j` is the signal at time `j / target`).
    public static func resample(_ signal: [Float], from source: Int, to target: Int) throws -> [Float] {
        if source == target { return signal }
        let resampler = try StreamingResampler(from: source, to: target)
        var output: [Float] = []
        output.reserveCapacity(convertedLength(signal.count, from: source, to: target) + 16)
        try signal.withUnsafeBufferPointer { try resampler.process($0, endOfInput: true, into: &output) }
        fitLength(&output, convertedLength(signal.count, from: source, to: target))
        return output
    }

    /// Trims or zero-pads `x` to `count` samples. The converter's flushed tail differs from the
    /// nominal length by a sample or two.
    static func fitLength(_ x: inout [Float], _ count: Int) {
        if x.count > count {
            x.removeLast(x.count - count)
        } else if x.count < count {
            x.append(contentsOf: repeatElement(0, count: count - x.count))
        }
    }
}

/// A libsamplerate converter state for one mono stream, fed block by block.
final class StreamingResampler {
    private let state: OpaquePointer
    /// target / source.
    let ratio: Double
    private var scratch = [Float](repeating: 0, count: 16384)

    /// A converter from `source` Hz to `target` Hz; throws when libsamplerate cannot do it.
    init(from source: Int, to target: Int) throws {
        guard Resampler.canConvert(from: source, to: target) else {
            throw AudioError.invalidSignal("cannot resample from \(source) Hz to \(target) Hz")
        }
        ratio = Double(target) / Double(source)
        var error: Int32 = 0
        guard let s = src_new(Resampler.converter, 1, &error) else {
            throw AudioError.invalidSignal("libsamplerate: \(String(cString: src_strerror(error)))")
        }
        state = s
    }

    deinit { src_delete(state) }

    /// Converts `input`, appending what the converter can output so far to `output`. With
    /// `endOfInput` the signal is taken to continue with silence and the converter is flushed;
    /// it must not be fed again after that.
    func process(_ input: UnsafeBufferPointer<Float>, endOfInput: Bool, into output: inout [Float]) throws {
        try feed(input, endOfInput: false, into: &output)
        guard endOfInput else { return }
        // Where libsamplerate stops emitting after end-of-input depends on rounding in its
        // position counter, so a file's last samples could differ between a full read and a
        // window. Feeding silence past the filter's reach first makes every sample up to the
        // nominal length a plain convolution, the same in every path; callers trim the rest.
        let silence = [Float](repeating: 0, count: 256 * max(1, Int((1 / ratio).rounded(.up))))
        try silence.withUnsafeBufferPointer { try feed($0, endOfInput: true, into: &output) }
    }

    private func feed(_ input: UnsafeBufferPointer<Float>, endOfInput: Bool, into output: inout [Float]) throws {
        var consumed = 0
        // libsamplerate rejects a null input pointer even with zero frames.
        var dummy: Float = 0
        try scratch.withUnsafeMutableBufferPointer { out in
            try withUnsafePointer(to: &dummy) { dummyPointer in
                while true {
                    var data = SRC_DATA()
                    data.data_in = input.baseAddress.map { UnsafePointer($0 + consumed) } ?? dummyPointer
                    data.input_frames = input.count - consumed
                    data.data_out = out.baseAddress!
                    data.output_frames = out.count
                    data.end_of_input = endOfInput ? 1 : 0
                    data.src_ratio = ratio
                    let error = src_process(state, &data)
                    if error != 0 {
                        throw AudioError.invalidSignal("libsamplerate: \(String(cString: src_strerror(error)))")
                    }
                    output.append(contentsOf: UnsafeBufferPointer(start: out.baseAddress!, count: data.output_frames_gen))
                    consumed += data.input_frames_used
                    // libsamplerate takes input into its own buffer faster than it can emit
                    // into ours: a full output buffer means more may be waiting. While flushing,
                    // keep going until the converter has nothing more to give.
                    let outputFull = data.output_frames_gen == out.count
                    let inputDone = consumed >= input.count
                    if inputDone && !outputFull && (!endOfInput || data.output_frames_gen == 0) { break }
                }
            }
        }
    }
}
