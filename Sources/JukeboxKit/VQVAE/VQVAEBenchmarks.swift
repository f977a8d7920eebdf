// `jukebox bench vqvae`: the paper-sized VQ-VAE's training step, encode and decode speed on
// synthetic audio (a chord with noise), so the numbers need no data files.

import Foundation
import TensorCore
import ModelKit
import AudioDSP

/// A test signal: three sines and a little noise, `count` samples.
func benchmarkSignal(count: Int, sampleRate: Int, seed: UInt64) -> [Float] {
    var rng = RandomGenerator(seed: seed)
    return (0..<count).map { i in
        let t = Float(i) / Float(sampleRate)
        let chord = sinf(2 * .pi * 220 * t) + 0.5 * sinf(2 * .pi * 277 * t) + 0.3 * sinf(2 * .pi * 330 * t)
        return 0.2 * chord + 0.01 * rng.normal()
    }
}

/// The cases of `jukebox bench vqvae` with `config` (default: the reference model).
public func vqvaeBenchmarks(config: VQVAEConfig = VQVAEConfig(), repeats: Int = 3) -> [BenchmarkResult] {
    var results: [BenchmarkResult] = []
    let rate = config.sampleRate
    let length = 66048
    let clip = benchmarkSignal(count: length, sampleRate: rate, seed: 1)
    let bandwidth = Bandwidth.estimate(crops: [clip])
    let model = VQVAE(config: config, seed: 1, bandwidth: bandwidth)
    let adam = Adam(parameters: model.namedParameters())
    var generator = RandomGenerator(seed: 2)
    let batch = Tensor(clip, shape: [1, length])

    // One training step: forward with all losses, backward, clip, Adam.
    let step = Benchmark.median(repeats: repeats) {
        adam.zeroGrad()
        let result = model.step(batch, training: true, generator: &generator)
        result.loss.backward()
        clipGradientNorm(adam.parameters, maxNorm: 1)
        adam.update()
    }
    let audioSeconds = Double(length) / Double(rate)
    results.append(BenchmarkResult(name: "vqvae-train-step", milliseconds: step * 1e3,
                                   extra: [("audio_s_per_s", audioSeconds / step),
                                           ("peak_rss_mb", Benchmark.peakResidentMegabytes())]))

    // Ten seconds through all encoders and bottlenecks, and level-0 codes through its decoder.
    let ten = benchmarkSignal(count: 10 * rate, sampleRate: rate, seed: 3)
    let encode = Benchmark.median(repeats: repeats) {
        for level in 0..<config.levels { _ = model.encodeSignal(ten, level: level) }
    }
    results.append(BenchmarkResult(name: "vqvae-encode", milliseconds: encode * 1e3,
                                   extra: [("realtime_factor", 10 / encode)]))
    let codes = model.encodeSignal(ten, level: 0)
    let decode = Benchmark.median(repeats: repeats) { _ = model.decodeSignal(codes, level: 0) }
    results.append(BenchmarkResult(name: "vqvae-decode", milliseconds: decode * 1e3,
                                   extra: [("realtime_factor", 10 / decode)]))
    return results
}
