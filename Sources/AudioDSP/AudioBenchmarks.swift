// Benchmarks of the audio pipeline, printed by `jukebox bench`. Shapes are those of VQ-VAE
// training: B = 4 crops of 66048 samples (1.5 s at 44.1 kHz).

import Foundation
import TensorCore

/// Runs the AudioDSP benchmarks: `stft-2048`, `multispectral-fwd-bwd`, `resample-48k-44k` and
/// `loader` (on `singularityMusicDir`, the Debian singularity-music folder, when it exists).
public func audioBenchmarks(singularityMusicDir: String?) -> [BenchmarkResult] {
    let B = 4, T = 66048
    var generator = RandomGenerator(seed: 1)
    let signal = Tensor.randomNormal([B, T], std: 0.1, generator: &generator)   // (B, T)
    let target = Tensor.randomNormal([B, T], std: 0.1, generator: &generator)   // (B, T)
    var results: [BenchmarkResult] = []

    let stft = SpectralLoss.defaultSTFT
    let stftSeconds = Benchmark.median(repeats: 9) { _ = Tensor.withoutGrad { stft.magnitude(signal) } }
    results.append(BenchmarkResult(name: "stft-2048", milliseconds: stftSeconds * 1e3,
                                   extra: [("frames_per_s", Double(B * stft.frameCount(samples: T)) / stftSeconds)]))

    let bandwidth = Bandwidth(l2: 0.01, l1: 0.08, spec: 100)
    let reconstruction = signal.copy()
    reconstruction.requiresGrad = true
    let lossSeconds = Benchmark.median(repeats: 7) {
        reconstruction.grad = nil
        SpectralLoss.multiResolution(reconstruction, target, bandwidth: bandwidth).backward()
    }
    results.append(BenchmarkResult(name: "multispectral-fwd-bwd", milliseconds: lossSeconds * 1e3,
                                   note: "B=4 x 66048, 3 resolutions"))

    let audioSeconds = 10.0
    let tone = (0..<Int(48000 * audioSeconds)).map { Float(0.5 * sin(2 * Double.pi * 1000 * Double($0) / 48000)) }
    let resampleSeconds = Benchmark.median(repeats: 5) { _ = try? Resampler.resample(tone, from: 48000, to: 44100) }
    results.append(BenchmarkResult(name: "resample-48k-44k", milliseconds: resampleSeconds * 1e3,
                                   extra: [("realtime_factor", audioSeconds / resampleSeconds)]))

    results.append(loaderBenchmark(folder: singularityMusicDir, batchSize: B, sampleLength: T))
    return results
}

/// Seconds of 44.1 kHz audio per second the training loader delivers from `folder`, counted
/// from the loader's creation (so prefetching gives no head start) over 16 batches.
private func loaderBenchmark(folder: String?, batchSize: Int, sampleLength: Int) -> BenchmarkResult {
    var isFolder: ObjCBool = false
    guard let folder, FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
        return BenchmarkResult(name: "loader", milliseconds: .nan,
                               note: "skipped: \(folder ?? "no folder given") is not a folder")
    }
    do {
        let dataset = try AudioDataset(sources: [folder], sampleRate: 44100, sampleLength: sampleLength)
        let batches = 16
        let start = Benchmark.now()
        let loader = AudioLoader(dataset: dataset, batchSize: batchSize, seed: 1)
        for _ in 0..<batches { _ = try loader.next() }
        let seconds = Benchmark.now() - start
        let audio = Double(batches * batchSize * sampleLength) / 44100
        return BenchmarkResult(name: "loader", milliseconds: seconds * 1e3 / Double(batches),
                               extra: [("audio_s_per_s", audio / seconds)],
                               note: "ms per batch of \(batchSize) x \(sampleLength), \(dataset.train.count) files")
    } catch {
        return BenchmarkResult(name: "loader", milliseconds: .nan, note: "failed: \(error)")
    }
}
