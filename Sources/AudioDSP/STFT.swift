// Magnitude short-time Fourier transform, forward and backward, as `torch.stft` computes it for
// Jukebox: center=True with reflect padding of nFFT/2, a periodic Hann window of `window`
// samples zero-padded to nFFT at the centre, one-sided spectrum, no normalisation.
//
// Shape legend: B batch, T samples per item, F frames (1 + T / hop), K one-sided bins
// (nFFT/2 + 1), N nFFT, W window length.
//
// Frame f of item b holds xpad[f·hop ..< f·hop + N] where xpad is x reflect-padded by N/2 on
// each side; only the W samples under the window are non-zero after windowing.
//
// Backward. S_k = Σ_n y_n e^{-2πikn/N} over the windowed frame y. With G_k = ∂L/∂Re S_k +
// i ∂L/∂Im S_k, ∂L/∂y_n = Σ_{k=0}^{N/2} Re(G_k e^{+2πikn/N}). FFTW's complex-to-real transform
// computes X_0 + X_{N/2}(-1)^n + 2 Σ_{0<k<N/2} Re(X_k e^{+2πikn/N}) (the Hermitian extension,
// unnormalised), so feeding it X_k = G_k/2 for interior bins and X_k = G_k at DC and Nyquist
// gives the adjoint exactly. For the magnitude, G_k = dM_k · S_k / |S_k|, taken as 0 where
// |S_k| = 0 (any unit vector is a subgradient there; 0 is the minimum-norm one).

import Foundation
import CFFTW
import TensorCore

/// FFTW plans for one transform size, made once per size and shared by every STFT.
///
/// FFTW's planner is not thread-safe, so plans are made under a lock; executing a plan on new
/// arrays (`fftwf_execute_dft_r2c`) is thread-safe, and every buffer passed to it comes from
/// `fftwf_malloc`, so it has the alignment the plan was made with.
final class FFTPlans {
    /// Transform size N.
    let size: Int
    /// Real (N) → complex (N/2 + 1).
    let forward: OpaquePointer
    /// Complex (N/2 + 1) → real (N), unnormalised; destroys its input.
    let inverse: OpaquePointer

    private static let lock = NSLock()
    nonisolated(unsafe) private static var cache: [Int: FFTPlans] = [:]

    private init(size n: Int) {
        size = n
        let real = FFTBuffer(floats: n), complex = FFTBuffer(floats: 2 * (n / 2 + 1))
        // FFTW_ESTIMATE picks the algorithm by rule, not by timing, so results are the same bit
        // for bit on every run (FFTW_MEASURE may choose differently from run to run).
        forward = fftwf_plan_dft_r2c_1d(Int32(n), real.pointer, complex.complexPointer, UInt32(FFTW_ESTIMATE))
        inverse = fftwf_plan_dft_c2r_1d(Int32(n), complex.complexPointer, real.pointer, UInt32(FFTW_ESTIMATE))
    }

    /// The plans for size `n` (even), made on first use.
    static func plans(size n: Int) -> FFTPlans {
        lock.lock()
        defer { lock.unlock() }
        if let existing = cache[n] { return existing }
        let made = FFTPlans(size: n)
        cache[n] = made
        return made
    }
}

/// A zero-filled Float buffer from `fftwf_malloc` (SIMD-aligned as FFTW wants), freed on deinit.
final class FFTBuffer {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    init(floats count: Int) {
        self.count = count
        pointer = fftwf_malloc(max(count, 1) * MemoryLayout<Float>.stride)!
            .bindMemory(to: Float.self, capacity: max(count, 1))
        pointer.update(repeating: 0, count: count)
    }

    deinit { fftwf_free(pointer) }

    /// The buffer as interleaved (re, im) pairs.
    var complexPointer: UnsafeMutablePointer<fftwf_complex> {
        UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: fftwf_complex.self)
    }
}

/// Magnitude STFT of batches of mono signals, differentiable with respect to the signal.
public final class STFT {
    /// FFT size N.
    public let nFFT: Int
    /// Samples between frame starts.
    public let hop: Int
    /// Length W of the Hann window (at most N), centred in the N-sample frame.
    public let windowLength: Int
    /// One-sided bins K = N/2 + 1.
    public var binCount: Int { nFFT / 2 + 1 }

    /// Periodic Hann window, (W).
    let window: [Float]
    /// Index of the window's first sample within a frame: (N − W) / 2.
    let windowOffset: Int
    let plans: FFTPlans

    /// An STFT with `nFFT`-point frames every `hop` samples under a periodic Hann window of
    /// `window` samples (zero-padded to `nFFT` at the centre).
    public init(nFFT: Int, hop: Int, window: Int) {
        precondition(nFFT >= 2 && nFFT % 2 == 0, "STFT: nFFT \(nFFT) must be even and at least 2")
        precondition(hop >= 1, "STFT: hop \(hop) must be positive")
        precondition(window >= 1 && window <= nFFT, "STFT: window \(window) must be in 1...\(nFFT)")
        self.nFFT = nFFT
        self.hop = hop
        self.windowLength = window
        self.window = (0..<window).map { n in Float(0.5 - 0.5 * cos(2 * Double.pi * Double(n) / Double(window))) }
        windowOffset = (nFFT - window) / 2
        plans = FFTPlans.plans(size: nFFT)
    }

    /// Frames F for a signal of `samples` samples: 1 + samples / hop.
    public func frameCount(samples: Int) -> Int { 1 + samples / hop }

    /// |STFT(signal)|: (B, T) → (B, F, K). Needs T > nFFT/2 (reflect padding). Records its
    /// backward when `signal` requires a gradient.
    public func magnitude(_ signal: Tensor) -> Tensor {
        precondition(signal.rank == 2, "STFT.magnitude: expected (B, T), got \(signal.shape)")
        let B = signal.shape[0], T = signal.shape[1]
        precondition(T > nFFT / 2, "STFT.magnitude: \(T) samples are too few for reflect padding of \(nFFT / 2)")
        let F = frameCount(samples: T), K = binCount
        let output = Tensor(uninitializedShape: [B, F, K])
        let recording = GradMode.isEnabled && signal.requiresGrad
        let spectrum: Tensor? = recording ? Tensor(uninitializedShape: [B, F, K, 2]) : nil
        forward(signal.data, B: B, T: T, magnitude: output.data, spectrum: spectrum?.data)
        guard let spectrum else { return output }
        return Tensor.record("stftMagnitude", output: output, inputs: [signal]) { [self] output, dOut in
            backward(dOut.data, magnitude: output.data, spectrum: spectrum.data, B: B, T: T,
                     dSignal: signal.gradAccumulator())
        }
    }

    /// Index into x (0..<T) of position `p` of the reflect-padded signal, p − N/2 reflected
    /// at both ends.
    @inline(__always) func reflect(_ i: Int, _ T: Int) -> Int {
        if i < 0 { return -i }
        if i >= T { return 2 * (T - 1) - i }
        return i
    }

    /// Magnitudes (and, when `spectrum` is given, the complex spectrum) of every frame.
    func forward(_ x: UnsafePointer<Float>,               // (B, T)
                 B: Int, T: Int,
                 magnitude: UnsafeMutablePointer<Float>,  // (B, F, K)
                 spectrum: UnsafeMutablePointer<Float>?)  // (B, F, K, 2)
    {
        let N = nFFT, W = windowLength, K = binCount, F = frameCount(samples: T)
        let left = windowOffset, plan = plans.forward
        window.withUnsafeBufferPointer { wb in
            let w = wb.baseAddress!
            Parallel.forRanges(B * F, grain: 8) { frames in
                let frame = FFTBuffer(floats: N)             // (N), zero outside the window
                let bins = FFTBuffer(floats: 2 * K)          // (K, 2)
                let y = frame.pointer + left, s = bins.pointer
                for bf in frames {
                    let b = bf / F, f = bf % F
                    let xb = x + b * T
                    let start = f * hop - N / 2 + left       // x index under y[0]
                    if start >= 0 && start + W <= T {
                        for n in 0..<W { y[n] = w[n] * xb[start + n] }
                    } else {
                        for n in 0..<W { y[n] = w[n] * xb[reflect(start + n, T)] }
                    }
                    fftwf_execute_dft_r2c(plan, frame.pointer, bins.complexPointer)
                    let m = magnitude + bf * K
                    for k in 0..<K { m[k] = (s[2 * k] * s[2 * k] + s[2 * k + 1] * s[2 * k + 1]).squareRoot() }
                    spectrum?.advanced(by: bf * 2 * K).update(from: s, count: 2 * K)
                }
            }
        }
    }

    /// Adds ∂L/∂x to `dSignal` given ∂L/∂|S| (`dMagnitude`).
    func backward(_ dMagnitude: UnsafePointer<Float>,   // (B, F, K)
                  magnitude: UnsafePointer<Float>,      // (B, F, K)
                  spectrum: UnsafePointer<Float>,       // (B, F, K, 2)
                  B: Int, T: Int,
                  dSignal: UnsafeMutablePointer<Float>) // (B, T)
    {
        let N = nFFT, W = windowLength, K = binCount, F = frameCount(samples: T)
        let left = windowOffset, plan = plans.inverse
        let dFrames = FFTBuffer(floats: B * F * W)      // (B, F, W): ∂L/∂(frame sample) · window
        let dy = dFrames.pointer
        window.withUnsafeBufferPointer { wb in
            let w = wb.baseAddress!
            // 1. Per frame: complex gradient, adjoint DFT, window.
            Parallel.forRanges(B * F, grain: 8) { frames in
                let bins = FFTBuffer(floats: 2 * K)      // (K, 2)
                let frame = FFTBuffer(floats: N)         // (N)
                let g = bins.pointer
                for bf in frames {
                    let dm = dMagnitude + bf * K, m = magnitude + bf * K, s = spectrum + bf * 2 * K
                    for k in 0..<K {
                        let scale: Float = m[k] > 0 ? dm[k] / m[k] : 0
                        g[2 * k] = scale * s[2 * k]
                        g[2 * k + 1] = scale * s[2 * k + 1]
                    }
                    for k in 1..<(K - 1) {
                        g[2 * k] *= 0.5
                        g[2 * k + 1] *= 0.5
                    }
                    fftwf_execute_dft_c2r(plan, bins.complexPointer, frame.pointer)
                    let out = dy + bf * W, r = frame.pointer + left
                    for n in 0..<W { out[n] = w[n] * r[n] }
                }
            }
        }
        // 2. Per item: overlap-add the frames and fold the reflect padding back onto x.
        Parallel.forRanges(B, grain: 1) { items in
            for b in items {
                let dx = dSignal + b * T
                for f in 0..<F {
                    let src = dy + (b * F + f) * W
                    let start = f * hop - N / 2 + left
                    if start >= 0 && start + W <= T {
                        for n in 0..<W { dx[start + n] += src[n] }
                    } else {
                        for n in 0..<W { dx[reflect(start + n, T)] += src[n] }
                    }
                }
            }
        }
    }

    /// Naive reference: |STFT| of one signal by direct DFT in Double, (F, K) row-major. For
    /// tests; O(F · K · W).
    public func referenceMagnitude(_ signal: [Double]) -> [Double] {
        let N = nFFT, K = binCount, W = windowLength, T = signal.count, F = frameCount(samples: T)
        let w = (0..<W).map { 0.5 - 0.5 * cos(2 * Double.pi * Double($0) / Double(W)) }
        // e^{-2πi j/N} for j = 0..<N; the exponent k·n is reduced mod N, which keeps it exact.
        let cosine = (0..<N).map { cos(2 * Double.pi * Double($0) / Double(N)) }
        let sine = (0..<N).map { -sin(2 * Double.pi * Double($0) / Double(N)) }
        var result = [Double](repeating: 0, count: F * K)
        for f in 0..<F {
            let start = f * hop - N / 2 + windowOffset
            let y = (0..<W).map { w[$0] * signal[reflect(start + $0, T)] }
            for k in 0..<K {
                var re = 0.0, im = 0.0
                for n in 0..<W {
                    let j = (k * (n + windowOffset)) % N
                    re += y[n] * cosine[j]
                    im += y[n] * sine[j]
                }
                result[f * K + k] = (re * re + im * im).squareRoot()
            }
        }
        return result
    }
}
