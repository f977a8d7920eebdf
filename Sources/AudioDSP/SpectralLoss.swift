// Jukebox's spectral training loss and its logged metric, on magnitude STFTs.
//
// Shape legend: B batch, T samples, F frames, K one-sided bins.
//
// multispectral loss (jukebox/utils/audio_utils.py, vqvae.py):
//   per item b: (1/3) Σ_r ‖ |STFT_r(target_b)| − |STFT_r(reconstruction_b)| ‖_F
//   loss = mean_b(per item) / bandwidth.spec
// over (nFFT, hop, window) = (2048, 240, 1200), (1024, 120, 600), (512, 50, 240).
//
// spectral convergence (logged only): with the (2048, 256, 1536) STFT,
//   sc_b = ‖S_target − S_recon‖_F · [‖S_target‖_F > 2e-3] / max(‖S_target‖_F, 2e-3).

import Foundation
import TensorCore

/// Spectral and pointwise reconstruction losses of Jukebox's VQ-VAE, and its spectral
/// convergence metric.
public enum SpectralLoss {
    /// The multispectral loss's three resolutions (2048/240/1200, 1024/120/600, 512/50/240).
    public static let multiResolutionSTFTs = [
        STFT(nFFT: 2048, hop: 240, window: 1200),
        STFT(nFFT: 1024, hop: 120, window: 600),
        STFT(nFFT: 512, hop: 50, window: 240),
    ]

    /// The STFT of the spectral-convergence metric and of `Bandwidth.spec`: 2048/256/1536.
    public static let defaultSTFT = STFT(nFFT: 2048, hop: 256, window: 1536)

    /// Jukebox's multispectral loss, a scalar: the mean over resolutions of each item's
    /// Frobenius distance between magnitude spectrograms, divided by `bandwidth.spec`, averaged
    /// over the batch. `reconstruction` and `target` are (B, T) with T > 1024; the gradient
    /// flows to `reconstruction` only (the target is treated as a constant).
    public static func multiResolution(_ reconstruction: Tensor, _ target: Tensor, bandwidth: Bandwidth) -> Tensor {
        precondition(reconstruction.shape == target.shape,
                     "multiResolution: reconstruction \(reconstruction.shape) vs target \(target.shape)")
        let constantTarget = target.detached()
        var total: Tensor?                                   // (B)
        for stft in multiResolutionSTFTs {
            let reconstructed = stft.magnitude(reconstruction)                        // (B, F, K)
            let reference = Tensor.withoutGrad { stft.magnitude(constantTarget) }     // (B, F, K)
            let distance = frobeniusDistance(reconstructed, reference)                // (B)
            total = total.map { $0 + distance } ?? distance
        }
        let scale = 1 / (Float(multiResolutionSTFTs.count) * Float(bandwidth.spec))
        return total!.mean() * scale
    }

    /// Per-item Frobenius norm of `a − b`: (B, …) × (B, …) → (B). Differentiable in `a` (and
    /// in `b` when it requires a gradient).
    ///
    /// Fused rather than built from sub/square/sum/sqrt: the square root's derivative is
    /// infinite where the distance is 0 (a perfect reconstruction), which would give 0 · ∞;
    /// here the gradient there is 0, as torch.norm's is.
    public static func frobeniusDistance(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.shape == b.shape && a.rank >= 1, "frobeniusDistance: shapes \(a.shape) and \(b.shape)")
        let B = a.shape[0], n = a.count / max(B, 1)
        let out = Tensor(uninitializedShape: [B])
        for i in 0..<B {
            var sum: Double = 0
            let x = a.data + i * n, y = b.data + i * n
            var j = 0
            while j < n {
                // Float partial sums over short blocks vectorise; Double keeps the total exact.
                let end = min(n, j + 4096)
                var partial: Float = 0
                for t in j..<end { partial += (x[t] - y[t]) * (x[t] - y[t]) }
                sum += Double(partial)
                j = end
            }
            out.data[i] = Float(sum.squareRoot())
        }
        return Tensor.record("frobeniusDistance", output: out, inputs: [a, b]) { output, dOut in
            for (input, sign) in [(a, Float(1)), (b, Float(-1))] where input.requiresGrad {
                let g = input.gradAccumulator()
                for i in 0..<B where output.data[i] > 0 {
                    let scale = sign * dOut.data[i] / output.data[i]
                    let x = a.data + i * n, y = b.data + i * n, gi = g + i * n
                    for t in 0..<n { gi[t] += scale * (x[t] - y[t]) }
                }
            }
        }
    }

    /// Spectral convergence of a batch, per item and averaged, with the values in dB.
    public struct Convergence: Sendable {
        /// Linear value per item, (B); 0 for a perfect reconstruction or a silent target.
        public var perItem: [Double]
        /// Mean of `perItem`, what Jukebox logs as `sc`.
        public var mean: Double
        /// 20·log10 of each item's value, floored at ``decibelFloor``.
        public var perItemDecibels: [Double] { perItem.map(SpectralLoss.decibels) }
        /// 20·log10 of `mean`, floored at ``decibelFloor`` (the figure the Jukebox paper quotes).
        public var meanDecibels: Double { SpectralLoss.decibels(mean) }
    }

    /// Denominator floor of spectral convergence (Jukebox's eps): targets with a smaller
    /// spectral norm count as silent and score 0.
    public static let convergenceFloor = 2e-3

    /// The dB value reported for a convergence of 0 (or anything below 1e-5): −100 dB, so logs
    /// and JSON never hold −∞.
    public static let decibelFloor = -100.0

    /// 20·log10(`value`), floored at ``decibelFloor``.
    public static func decibels(_ value: Double) -> Double {
        max(decibelFloor, 20 * log10(max(value, 1e-300)))
    }

    /// Spectral convergence as Jukebox logs it, with the 2048/256/1536 STFT. (B, T) × (B, T),
    /// T > 1024; no gradient.
    public static func spectralConvergence(_ reconstruction: Tensor, _ target: Tensor) -> Convergence {
        precondition(reconstruction.shape == target.shape,
                     "spectralConvergence: reconstruction \(reconstruction.shape) vs target \(target.shape)")
        return Tensor.withoutGrad {
            let reconstructed = defaultSTFT.magnitude(reconstruction)   // (B, F, K)
            let reference = defaultSTFT.magnitude(target)               // (B, F, K)
            let B = reference.shape[0], n = reference.count / max(B, 1)
            var values: [Double] = []
            for i in 0..<B {
                var difference: Double = 0, norm: Double = 0
                let x = reconstructed.data + i * n, y = reference.data + i * n
                for t in 0..<n {
                    let d = Double(x[t]) - Double(y[t])
                    difference += d * d
                    norm += Double(y[t]) * Double(y[t])
                }
                let targetNorm = norm.squareRoot()
                values.append(targetNorm > convergenceFloor ? difference.squareRoot() / targetNorm : 0)
            }
            return Convergence(perItem: values, mean: values.reduce(0, +) / Double(max(B, 1)))
        }
    }
}
