// Objective "is this music or noise" measures of a mono signal at 22050 Hz.
//
// Shape legend: T samples, F frames (1 + T / hop), K one-sided bins (N/2 + 1), N nFFT,
// C = 12 pitch classes, L lags. Frame f is centred on sample f·hop (reflect padding of N/2, as
// STFT does) under a periodic Hann window of N samples; P[f, k] = |X_f[k]|².
//
// harmonic_share (N 4096, hop 1024, bins 100 Hz–4 kHz). Per frame, m[k] = median of P over
//   bins k−20 ... k+20; bin k is in a peak when P[k] ≥ 10·m[k] (10 dB). The share is
//   Σ_f Σ_{peak k} P / Σ_f Σ_k P, over frames whose band power is at least 1e-10 of the loudest
//   frame's. For noise of any colour each bin's power is exponentially distributed about a
//   smooth mean, and the median of Exp(μ) is μ·ln 2, so a bin passes 10 dB with probability
//   e^(−10 ln 2) ≈ 0.001 and carries (1 + 10 ln 2)·e^(−10 ln 2) ≈ 0.8% of the energy. Steady
//   partials stand 30–60 dB above their neighbours: a chord of sines scores 0.99, the game
//   music tried 0.24–0.94 (mean 0.64).
//
// beat_strength (N 2048, hop 512: 43.07 frames/s). Onset envelope e[f] = Σ_k max(0,
//   log10 M[f,k] − log10 M[f−1,k]) with M = |X| floored 80 dB below a sine at the signal's peak
//   amplitude, smoothed by a 5-tap Hann kernel (1, 3, 4, 3, 1)/12 and mean-removed;
//   r[l] = Σ_t e[t]·e[t+l] / Σ_t e[t]², and beat_strength = max r[l] over lags of 50–200 BPM
//   (l = 13 ... 51). A pulse train correlates as well at two beats as at one, so beat_bpm comes
//   from the shortest local peak of r that reaches 90% of the maximum, refined by a parabola
//   through its neighbours. Noise's envelope is correlated only over the eight frames a window
//   and the kernel span, so it scores 0.04–0.07; a click track scores 0.94, music 0.3–0.8.
//
// chroma_repetition (N 4096, hop 2048: 10.77 frames/s, bins 60 Hz–4 kHz). c[f, pc] = Σ P over
//   bins whose nearest equal-tempered pitch has class pc, L2-normalised (zero for frames below
//   1e-10 of the loudest). For an order of the frames, S = mean over positions i of
//   max over l = 11 ... 86 (1–8 s) of (1/11) Σ_{m<11} cos(c[order(i−m)], c[order(i−l−m)]):
//   how well the last second matches a second 1–8 s earlier. chroma_repetition =
//   S(identity) − S(fixed-seed permutation). A static spectrum, noise included, scores ≈ 0
//   because shuffling does not change it; a repeated phrase scores 0.47, the game music tried
//   0.03–0.19. Segments, not single frames, are compared because a single frame nearly
//   always finds a close match among the 76 shuffled candidates too: frame by frame, a
//   repeated melody scored −0.005 and the game music −0.01 to −0.03.

import Foundation
import CFFTW
import TensorCore

/// Objective measures of how much a signal sounds like music rather than noise. See the legend
/// at the top of MusicMeasures.swift for each definition.
public struct MusicMeasures: Codable, Equatable, Sendable {
    /// The rate every measure is computed at; ``measure(file:)`` resamples to it.
    public static let sampleRate = 22050

    /// Length in seconds.
    public var durationSeconds: Double
    /// Share of the 100 Hz–4 kHz power in spectral peaks 10 dB above the local median: about
    /// 0.01 for noise, 0.5–0.9 for tonal music.
    public var harmonicShare: Double
    /// Largest normalised autocorrelation of the onset envelope at 50–200 BPM (0 for noise).
    public var beatStrength: Double
    /// The tempo of that autocorrelation peak, in beats per minute (0 when there is none).
    public var beatBPM: Double
    /// How much better each second of chroma matches a second 1–8 s earlier than it does in
    /// shuffled order (≈ 0 for noise and for static spectra).
    public var chromaRepetition: Double
    /// 20·log10 of the root mean square sample (floored at −200 dB for digital silence).
    public var rmsDB: Double
    /// Largest absolute sample.
    public var peak: Double

    enum CodingKeys: String, CodingKey {
        case durationSeconds = "duration_s", harmonicShare = "harmonic_share", beatStrength = "beat_strength",
             beatBPM = "beat_bpm", chromaRepetition = "chroma_repetition", rmsDB = "rms_db", peak
    }
}

extension MusicMeasures {
    /// The measures of mono `samples` (T) at ``sampleRate`` Hz; every sample must be finite.
    /// Signals shorter than 4096 samples are padded with silence to 4096 for the spectra.
    public init(samples: [Float]) {
        precondition(!samples.contains { !$0.isFinite }, "MusicMeasures: samples must be finite")
        var sumSquares = 0.0, peak: Float = 0
        for x in samples {
            sumSquares += Double(x) * Double(x)
            peak = max(peak, abs(x))
        }
        let rms = samples.isEmpty ? 0 : (sumSquares / Double(samples.count)).squareRoot()
        let beat = Self.beatStrength(samples)
        self.init(durationSeconds: Double(samples.count) / Double(Self.sampleRate),
                  harmonicShare: Self.harmonicShare(samples),
                  beatStrength: beat.strength, beatBPM: beat.bpm,
                  chromaRepetition: Self.chromaRepetition(samples),
                  rmsDB: 20 * log10(max(rms, 1e-10)), peak: Double(peak))
    }

    /// The measures of the audio file at `path`, mixed to mono and resampled to ``sampleRate``.
    /// Throws an ``AudioError`` naming the file when it cannot be read or holds NaN or infinite
    /// samples.
    public static func measure(file path: String) throws -> MusicMeasures {
        try measure(file: path, segmentSeconds: nil)[0]
    }

    /// The measures of each consecutive segment of `segmentSeconds` of the file at `path` (the
    /// last may be shorter, but at least half a segment), or of the whole file when nil: how a
    /// continuation holds up after its prime, say.
    public static func measure(file path: String, segmentSeconds: Double?) throws -> [MusicMeasures] {
        let samples = try AudioFile.read(path, sampleRate: sampleRate)
        if let bad = samples.firstIndex(where: { !$0.isFinite }) {
            throw AudioError.corrupt(path: path, reason: "sample \(bad) is NaN or infinite")
        }
        guard let segmentSeconds else { return [MusicMeasures(samples: samples)] }
        let length = Swift.max(1, Int(segmentSeconds * Double(sampleRate)))
        var out: [MusicMeasures] = []
        for start in stride(from: 0, to: samples.count, by: length) {
            let end = Swift.min(samples.count, start + length)
            if end - start < length / 2 && !out.isEmpty { break }
            out.append(MusicMeasures(samples: Array(samples[start..<end])))
        }
        return out.isEmpty ? [MusicMeasures(samples: samples)] : out
    }

    /// The field-by-field arithmetic mean of `all` (non-empty).
    public static func mean(_ all: [MusicMeasures]) -> MusicMeasures {
        precondition(!all.isEmpty, "MusicMeasures.mean: nothing to average")
        func average(_ field: KeyPath<MusicMeasures, Double>) -> Double {
            all.reduce(0.0) { $0 + $1[keyPath: field] } / Double(all.count)
        }
        return MusicMeasures(durationSeconds: average(\.durationSeconds), harmonicShare: average(\.harmonicShare),
                             beatStrength: average(\.beatStrength), beatBPM: average(\.beatBPM),
                             chromaRepetition: average(\.chromaRepetition), rmsDB: average(\.rmsDB),
                             peak: average(\.peak))
    }
}

// MARK: - Harmonic share

extension MusicMeasures {
    /// Share of the 100 Hz–4 kHz power of `samples` (T, at ``sampleRate``) that lies in bins
    /// 10 dB above the median of their ±20 neighbours (N 4096, hop 1024); 0 for silence.
    public static func harmonicShare(_ samples: [Float]) -> Double {
        let stft = STFT(nFFT: 4096, hop: 1024, window: 4096)
        let K = stft.binCount, binHz = Double(sampleRate) / Double(stft.nFFT)
        let lowest = Int((100 / binHz).rounded(.up)), highest = Int(4000 / binHz)
        let radius = 20
        var peakPower: [Double] = [], bandPower: [Double] = []   // (F), (F)
        var window: [Float] = []                                 // sorted P[lo ..< hi]
        window.reserveCapacity(2 * radius + 1)
        stft.forEachPowerFrame(padded(samples, to: stft.nFFT)) { _, P in   // P: (K)
            var lo = max(0, lowest - radius), hi = min(K, lowest + radius + 1)
            window.removeAll(keepingCapacity: true)
            window.append(contentsOf: UnsafeBufferPointer(start: P + lo, count: hi - lo))
            window.sort()
            var inPeaks = 0.0, total = 0.0
            for k in lowest...highest {
                // Slide [lo, hi) to [k − radius, k + radius] within 0..<K.
                while lo < k - radius { window.remove(at: lowerBound(window, P[lo])); lo += 1 }
                while hi < min(K, k + radius + 1) { window.insert(P[hi], at: lowerBound(window, P[hi])); hi += 1 }
                let n = window.count
                let median = n % 2 == 1 ? window[n / 2] : 0.5 * (window[n / 2 - 1] + window[n / 2])
                let p = Double(P[k])
                total += p
                if P[k] >= 10 * median { inPeaks += p }
            }
            peakPower.append(inPeaks)
            bandPower.append(total)
        }
        let threshold = 1e-10 * (bandPower.max() ?? 0)
        var inPeaks = 0.0, total = 0.0
        for f in bandPower.indices where bandPower[f] > 0 && bandPower[f] >= threshold {
            inPeaks += peakPower[f]
            total += bandPower[f]
        }
        return total > 0 ? inPeaks / total : 0
    }

    /// First index of sorted `a` whose element is not less than `value`.
    private static func lowerBound(_ a: [Float], _ value: Float) -> Int {
        var lo = 0, hi = a.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if a[mid] < value { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}

// MARK: - Beat strength

extension MusicMeasures {
    /// Tempo range searched, in beats per minute.
    static let tempoRange = 50.0...200.0

    /// The largest normalised autocorrelation of the onset envelope of `samples` (T, at
    /// ``sampleRate``) at lags of 50–200 BPM, and the tempo of its beat; (0, 0) when the signal
    /// is too short or has no onsets.
    public static func beatStrength(_ samples: [Float]) -> (strength: Double, bpm: Double) {
        let stft = STFT(nFFT: 2048, hop: 512, window: 2048)
        let K = stft.binCount
        let framesPerSecond = Double(sampleRate) / Double(stft.hop)
        // A Hann-windowed sine of amplitude A peaks at A·N/4; 80 dB below that is the floor.
        let peak = samples.reduce(Float(0)) { max($0, abs($1)) }
        let floorMagnitude = 1e-4 * peak * Float(stft.nFFT) / 4
        let floor = max(floorMagnitude * floorMagnitude, .leastNormalMagnitude)   // power
        var previous = [Float](repeating: 0, count: K), current = previous   // (K) log10 |X|
        var envelope: [Double] = []                                             // (F − 1)
        stft.forEachPowerFrame(padded(samples, to: stft.nFFT)) { f, P in
            for k in 0..<K { current[k] = 0.5 * log10(max(P[k], floor)) }
            if f > 0 {
                var flux = 0.0
                for k in 0..<K { flux += Double(max(0, current[k] - previous[k])) }
                envelope.append(flux)
            }
            swap(&previous, &current)
        }
        let shortest = Int((framesPerSecond * 60 / tempoRange.upperBound).rounded(.up))   // 13
        let longest = Int(framesPerSecond * 60 / tempoRange.lowerBound)                   // 51
        guard envelope.count > longest + 1 else { return (0, 0) }
        // A 5-tap Hann kernel widens each onset to about 100 ms, so a beat period that falls
        // between two integer lags (120 BPM is 21.5 frames) is not split between them.
        let kernel = [1.0, 3, 4, 3, 1].map { $0 / 12 }
        let smooth = envelope.indices.map { t in
            (-2...2).reduce(0.0) { $0 + kernel[$1 + 2] * envelope[min(max(t + $1, 0), envelope.count - 1)] }
        }
        let mean = smooth.reduce(0, +) / Double(smooth.count)
        let e = smooth.map { $0 - mean }   // (F − 1)
        func r(_ lag: Int) -> Double {
            var s = 0.0
            for t in 0..<(e.count - lag) { s += e[t] * e[t + lag] }
            return s
        }
        let energy = r(0)
        guard energy > 0 else { return (0, 0) }
        let rho = (shortest - 1 ... longest + 1).map { r($0) / energy }   // (L + 2), rho[i] at lag shortest − 1 + i
        let inRange = 1 ... (longest - shortest + 1)
        let strength = inRange.map { rho[$0] }.max()!
        // The shortest local peak within 90% of the maximum; a parabola through it and its
        // neighbours places the peak between integer lags.
        let best = inRange.first { rho[$0] >= 0.9 * strength && rho[$0] >= rho[$0 - 1] && rho[$0] >= rho[$0 + 1] }
            ?? inRange.first { rho[$0] == strength }!
        let curvature = rho[best - 1] - 2 * rho[best] + rho[best + 1]
        let offset = curvature < 0 ? 0.5 * (rho[best - 1] - rho[best + 1]) / curvature : 0
        let lag = Double(shortest - 1 + best) + offset
        return (strength, 60 * framesPerSecond / lag)
    }
}

// MARK: - Chroma repetition

extension MusicMeasures {
    /// Seed of the permutation that ``chromaRepetition(_:)`` compares against.
    static let shuffleSeed: UInt64 = 0x6368_726F_6D61   // "chroma"

    /// How much better the last second of chroma frames of `samples` (T, at ``sampleRate``)
    /// matches the same-length stretch 1–8 s earlier than it does with the frames in a fixed
    /// shuffled order, averaged over frames; 0 for signals under two seconds.
    /// Signals shorter than 4096 samples are padded with silence to 4096.
    public static func chromaRepetition(_ samples: [Float]) -> Double {
        let chroma = chromaFrames(samples)   // (F, C)
        let F = chroma.count / 12
        let framesPerSecond = Double(sampleRate) / 2048
        let nearest = Int(framesPerSecond.rounded(.up)), farthest = Int(8 * framesPerSecond)   // 11, 86
        let context = nearest                                                                 // 1 s
        var generator = RandomGenerator(seed: shuffleSeed)
        return repetition(chroma, order: Array(0..<F), lags: nearest...farthest, context: context)
            - repetition(chroma, order: generator.permutation(F), lags: nearest...farthest, context: context)
    }

    /// Unit (or zero, for frames below 1e-10 of the loudest) pitch-class power vectors of
    /// `samples` with N 4096, hop 2048 over 60 Hz–4 kHz: (F, C) row-major.
    static func chromaFrames(_ samples: [Float]) -> [Float] {
        let stft = STFT(nFFT: 4096, hop: 2048, window: 4096)
        let binHz = Double(sampleRate) / Double(stft.nFFT)
        let lowest = Int((60 / binHz).rounded(.up)), highest = Int(4000 / binHz)
        // MIDI pitch 69 + 12·log2(f / 440), rounded; class 0 is C.
        let pitchClass = (lowest...highest).map { k in
            (Int((69 + 12 * log2(Double(k) * binHz / 440)).rounded()) % 12 + 12) % 12
        }
        var chroma: [Float] = []    // (F, C)
        var energy: [Float] = []    // (F)
        stft.forEachPowerFrame(padded(samples, to: stft.nFFT)) { _, P in
            var c = [Float](repeating: 0, count: 12)
            for k in lowest...highest { c[pitchClass[k - lowest]] += P[k] }
            chroma += c
            energy.append(c.reduce(0, +))
        }
        let threshold = 1e-10 * (energy.max() ?? 0)
        for f in energy.indices {
            let row = f * 12 ..< f * 12 + 12
            let norm = chroma[row].reduce(0) { $0 + $1 * $1 }.squareRoot()
            let scale: Float = norm > 0 && energy[f] >= threshold ? 1 / norm : 0
            for i in row { chroma[i] *= scale }
        }
        return chroma
    }

    /// Mean over positions i of the best, over lags l, mean dot product of the unit rows of
    /// the `context` positions ending at i with those ending at i − l: (F, C) chroma, (F) order.
    /// Positions without a whole earlier segment at the shortest lag are skipped.
    static func repetition(_ chroma: [Float], order: [Int], lags: ClosedRange<Int>, context: Int) -> Double {
        let F = order.count, first = lags.lowerBound + context - 1
        guard F > first else { return 0 }
        var sum = 0.0
        for i in first..<F {
            var best: Float = 0
            for l in lags where i - l - (context - 1) >= 0 {
                var total: Float = 0
                for m in 0..<context {
                    let a = order[i - m] * 12, b = order[i - l - m] * 12
                    for c in 0..<12 { total += chroma[a + c] * chroma[b + c] }
                }
                best = max(best, total / Float(context))
            }
            sum += Double(best)
        }
        return sum / Double(F - first)
    }
}

// MARK: - Framing

extension MusicMeasures {
    /// `samples`, followed by silence up to `length` samples when shorter.
    static func padded(_ samples: [Float], to length: Int) -> [Float] {
        samples.count >= length ? samples : samples + [Float](repeating: 0, count: length - samples.count)
    }
}

extension STFT {
    /// Calls `body(f, P)` for each frame f = 0..<F of `signal` (T > nFFT/2) in order, with the
    /// power spectrum P = |X_f|² (K), valid during the call. Memory is O(N), whatever T is.
    func forEachPowerFrame(_ signal: [Float], _ body: (Int, UnsafePointer<Float>) -> Void) {
        let N = nFFT, W = windowLength, K = binCount, T = signal.count, F = frameCount(samples: T)
        precondition(T > N / 2, "STFT.forEachPowerFrame: \(T) samples are too few for reflect padding of \(N / 2)")
        let frame = FFTBuffer(floats: N)        // (N), zero outside the window
        let bins = FFTBuffer(floats: 2 * K)     // (K, 2)
        var power = [Float](repeating: 0, count: K)
        let y = frame.pointer + windowOffset, s = bins.pointer
        signal.withUnsafeBufferPointer { x in
            for f in 0..<F {
                let start = f * hop - N / 2 + windowOffset
                for n in 0..<W { y[n] = window[n] * x[reflect(start + n, T)] }
                fftwf_execute_dft_r2c(plans.forward, frame.pointer, bins.complexPointer)
                for k in 0..<K { power[k] = s[2 * k] * s[2 * k] + s[2 * k + 1] * s[2 * k + 1] }
                power.withUnsafeBufferPointer { body(f, $0.baseAddress!) }
            }
        }
    }
}
