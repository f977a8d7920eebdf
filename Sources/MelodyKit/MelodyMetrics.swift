// The paper's framewise self-similarity metrics (Mittal et al. 2021 §5, as re-implemented in
// SCHmUBERT's eval_utils.py; see shared/reference/symbolic-diffusion-data.md §1.5, §7.3):
// 4-bar frames at a 2-bar hop (the last frame left out, as `range((bars − 4) // 2)` does), a
// Gaussian fitted to the pitches and one to the note durations of each frame (σ + 1e-6), the
// overlapping area of adjacent frames' Gaussians computed exactly (CPython's
// `NormalDist.overlap`; the reference repo's own `overlapping_area` is inexact), pooled over
// every pair of a set. Consistency C = max(0, 1 − |μ − μ_GT| / μ_GT) and Variance
// V = max(0, 1 − |σ² − σ²_GT| / σ²_GT) of the pooled overlaps against a reference set's.

import Foundation
import TensorCore
import MIDI

/// Overlaps of adjacent frames, pooled over melodies.
public struct FrameOverlaps: Codable, Equatable {
    public var pitch: [Double] = []
    public var duration: [Double] = []
    /// Frames without a note (their pairs are left out).
    public var emptyFrames = 0

    public init() {}

    /// The overlaps of `melodies`.
    public init(_ melodies: [Melody]) {
        for melody in melodies { add(melody) }
    }

    mutating func add(_ melody: Melody) {
        let bar = Melody.stepsPerBar
        let bars = melody.events.count / bar
        let notes = melody.notes
        guard bars >= 4 else { return }
        let frames = (bars - 4) / 2
        var previous: (pitch: (Double, Double), duration: (Double, Double))?
        for f in 0..<frames {
            let range = (2 * f * bar)..<((2 * f + 4) * bar)
            let inFrame = notes.filter { range.contains($0.start) }
            guard !inFrame.isEmpty else {
                emptyFrames += 1
                previous = nil
                continue
            }
            let current = (pitch: gaussian(inFrame.map { Double($0.pitch) }), duration: gaussian(inFrame.map { Double($0.end - $0.start) }))
            if let previous {
                pitch.append(normalOverlap(previous.pitch, current.pitch))
                duration.append(normalOverlap(previous.duration, current.duration))
            }
            previous = current
        }
    }

    /// Mean and population variance.
    public static func moments(_ values: [Double]) -> (mean: Double, variance: Double) {
        guard !values.isEmpty else { return (.nan, .nan) }
        let mean = values.reduce(0, +) / Double(values.count)
        return (mean, values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count))
    }
}

/// (μ, σ) of `values` with the population σ plus 1e-6, as the reference fits a frame.
func gaussian(_ values: [Double]) -> (Double, Double) {
    let (mean, variance) = FrameOverlaps.moments(values)
    return (mean, variance.squareRoot() + 1e-6)
}

/// The overlapping area of N(μ₁, σ₁²) and N(μ₂, σ₂²), exactly (CPython's NormalDist.overlap).
public func normalOverlap(_ a: (mean: Double, sigma: Double), _ b: (mean: Double, sigma: Double)) -> Double {
    var (x, y) = (a, b)
    if (y.sigma, y.mean) < (x.sigma, x.mean) { swap(&x, &y) }
    let xv = x.sigma * x.sigma, yv = y.sigma * y.sigma
    let dv = yv - xv, dm = abs(y.mean - x.mean)
    func cdf(_ v: Double, _ n: (mean: Double, sigma: Double)) -> Double { 0.5 * (1 + erf((v - n.mean) / (n.sigma * 2.0.squareRoot()))) }
    if dv == 0 { return 1 - erf(dm / (2 * x.sigma * 2.0.squareRoot())) }
    let p = x.mean * yv - y.mean * xv
    let q = x.sigma * y.sigma * (dm * dm + dv * log(yv / xv)).squareRoot()
    let x1 = (p + q) / dv, x2 = (p - q) / dv
    return 1 - (abs(cdf(x1, y) - cdf(x1, x)) + abs(cdf(x2, y) - cdf(x2, x)))
}

/// Consistency and Variance of a set's overlaps against a reference set's.
public struct ConsistencyVariance: Codable, Equatable {
    public var pitchConsistency: Double, pitchVariance: Double
    public var durationConsistency: Double, durationVariance: Double
    /// The pooled moments behind them: generated, then reference.
    public var pitch: [Double], duration: [Double]

    public init(_ generated: FrameOverlaps, reference: FrameOverlaps) {
        func score(_ g: [Double], _ r: [Double]) -> (Double, Double, [Double]) {
            let (gm, gv) = FrameOverlaps.moments(g), (rm, rv) = FrameOverlaps.moments(r)
            return (Swift.max(0, 1 - abs(gm - rm) / rm), Swift.max(0, 1 - abs(gv - rv) / rv), [gm, gv, rm, rv])
        }
        (pitchConsistency, pitchVariance, pitch) = score(generated.pitch, reference.pitch)
        (durationConsistency, durationVariance, duration) = score(generated.duration, reference.duration)
    }
}

/// The two reference-made baselines: random 2-bar chunks of random reference melodies, and
/// random notes drawn from the reference's pitch and duration histograms; `count` melodies of
/// `bars` bars each.
public enum MelodyBaselines {
    public static func randomChunks(_ reference: [Melody], count: Int, bars: Int, generator: inout RandomGenerator) -> [Melody] {
        let chunks = reference.flatMap { $0.chunks(steps: 32) }.filter { !$0.isSilent }
        guard !chunks.isEmpty else { return [] }
        return (0..<count).map { _ in Melody(events: (0..<(bars / 2)).flatMap { _ in chunks[generator.int(below: chunks.count)].events }) }
    }

    public static func randomNotes(_ reference: [Melody], count: Int, bars: Int, generator: inout RandomGenerator) -> [Melody] {
        let notes = reference.flatMap(\.notes)
        guard !notes.isEmpty else { return [] }
        return (0..<count).map { _ in
            var events: [UInt8] = []
            while events.count < bars * Melody.stepsPerBar {
                let pitch = notes[generator.int(below: notes.count)].pitch
                let duration = notes[generator.int(below: notes.count)]
                events.append(Melody.noteOn(pitch: pitch))
                events += [UInt8](repeating: Melody.noEvent, count: Swift.max(0, duration.end - duration.start - 1))
            }
            return Melody(events: Array(events.prefix(bars * Melody.stepsPerBar)))
        }
    }
}
