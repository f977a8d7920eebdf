// Encoding and decoding audio of any length in chunks, so memory stays bounded. Each chunk is
// widened on both sides by the network's receptive reach (rounded up to the top hop, so the
// strided convolutions see the same grid), run, and cut back to its core. The result equals a
// whole-signal pass bit for bit: every kept output sees exactly the inputs it would have seen,
// and each window is run with its position in the signal (`origin`), so its convolution tiles
// and quantiser blocks lie where the whole signal's do and every value is computed by the same
// arithmetic (see `Tensor+Conv1d.swift`).
//
// Shapes: signal (T) mono; codes of level L (ceil(T / top hop) · top hop / hop_L).

import Foundation
import TensorCore
import ModelKit

extension VQVAE {
    /// Default core length of an encode chunk, in samples (about 12 s at 44.1 kHz). The margins
    /// of a chunk are recomputed work, about 2 × 46k samples at level 0: a third more work per
    /// chunk of 2^18 samples, a sixth at 2^19. Peak memory of a 40 s encode: 450 MB (370 MB
    /// at 2^18).
    public static let encodeChunkSamples = 1 << 19

    /// Default core length of a decode chunk, in samples (about 12 s at 44.1 kHz). The margins
    /// cost as in encoding. Peak memory of a 40 s level-0 decode: 730 MB (420 MB at 2^18).
    public static let decodeChunkSamples = 1 << 19

    /// Codes of `signal` at `level`. The signal is zero-padded at the end to a multiple of the
    /// top hop. `chunk` is the core length per pass in samples (rounded to the top hop).
    public func encodeSignal(_ signal: [Float], level: Int, chunk: Int = encodeChunkSamples) -> [Int32] {
        let top = hops.last!, hop = hops[level]
        let padded = (signal.count + top - 1) / top * top
        let margin = (encoderReach(level: level) + top - 1) / top * top
        let core = Swift.max(top, chunk / top * top)
        var codes: [Int32] = []
        codes.reserveCapacity(padded / hop)
        var start = 0
        while start < padded {
            let end = Swift.min(padded, start + core)
            let lo = Swift.max(0, start - margin), hi = Swift.min(padded, end + margin)
            var window = [Float](repeating: 0, count: hi - lo)
            let available = Swift.max(0, Swift.min(hi, signal.count) - lo)
            if available > 0 { window.replaceSubrange(0..<available, with: signal[lo..<(lo + available)]) }
            let windowCodes = encode(Tensor(window, shape: [1, hi - lo]), level: level, origin: lo)
            codes += windowCodes[((start - lo) / hop)..<((end - lo) / hop)]
            start = end
        }
        return codes
    }

    /// Audio from `codes` of `level`, `codes.count · hop` samples. `chunk` is the core length
    /// per pass in samples.
    public func decodeSignal(_ codes: [Int32], level: Int, chunk: Int = decodeChunkSamples) -> [Float] {
        let hop = hops[level]
        let n = codes.count
        let margin = decoderReach(level: level)
        let core = Swift.max(1, chunk / hop)
        var out: [Float] = []
        out.reserveCapacity(n * hop)
        var start = 0
        while start < n {
            let end = Swift.min(n, start + core)
            let lo = Swift.max(0, start - margin), hi = Swift.min(n, end + margin)
            let audio = decode(Array(codes[lo..<hi]), batch: 1, level: level, origin: lo)
            let from = (start - lo) * hop, to = (end - lo) * hop
            out += UnsafeBufferPointer(start: audio.data + from, count: to - from)
            start = end
        }
        return out
    }
}
