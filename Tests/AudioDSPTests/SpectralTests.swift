// STFT against a naive DFT, gradients of the STFT magnitude, the multispectral loss and lmix
// against finite differences of Double references, spectral convergence and bandwidth.

import Foundation
import XCTest
import AudioDSP
import TensorCore

final class SpectralTests: XCTestCase {
    func testSTFTMatchesNaiveDFT() {
        // Sizes where the window is shorter than nFFT (zero-padded at the centre) and frames
        // reach past both ends (reflect padding).
        for (nFFT, hop, window, T) in [(64, 16, 48, 300), (2048, 256, 1536, 5000), (512, 50, 240, 1013)] {
            let stft = STFT(nFFT: nFFT, hop: hop, window: window)
            let x = zip(noise(T, std: 0.2, seed: UInt64(T)), sine(1000, sampleRate: 16000, count: T)).map { $0 + $1 }
            let signal = Tensor(x + x.map { -0.5 * $0 }, shape: [2, T])
            let magnitude = stft.magnitude(signal)
            let F = stft.frameCount(samples: T), K = stft.binCount
            XCTAssertEqual(magnitude.shape, [2, F, K])
            let reference = stft.referenceMagnitude(x.map(Double.init))
            let scale = reference.max()!
            for item in 0..<2 {
                let factor = item == 0 ? 1.0 : 0.5
                for i in 0..<(F * K) {
                    let got = Double(magnitude.data[item * F * K + i])
                    // 1e-4 relative to the spectrum's peak: Float32 FFT rounding is ~1e-6 of it.
                    XCTAssertEqual(got, factor * reference[i], accuracy: 1e-4 * scale, "nFFT \(nFFT) item \(item) index \(i)")
                }
            }
        }
    }

    func testPureToneLandsInItsBin() {
        // 1 kHz at 16 kHz with nFFT 512: bin 1000 / (16000 / 512) = 32.
        let stft = STFT(nFFT: 512, hop: 128, window: 512)
        let magnitude = stft.magnitude(Tensor(sine(1000, sampleRate: 16000, count: 4096), shape: [1, 4096]))
        let K = stft.binCount
        for f in 2..<(stft.frameCount(samples: 4096) - 2) {
            let row = (0..<K).map { magnitude.data[f * K + $0] }
            XCTAssertEqual(row.firstIndex(of: row.max()!), 32)
            // A Hann-windowed sine of amplitude A peaks at A · W / 4.
            XCTAssertEqual(row[32], 0.5 * 512 / 4, accuracy: 0.05)
        }
    }

    func testSTFTMagnitudeGradientMatchesFiniteDifferences() {
        let stft = STFT(nFFT: 16, hop: 4, window: 12)
        let B = 2, T = 40
        let x = noise(B * T, std: 1, seed: 11)
        let F = stft.frameCount(samples: T), K = stft.binCount
        let weights = noise(B * F * K, std: 1, seed: 12)
        let signal = Tensor(x, shape: [B, T], requiresGrad: true)
        stft.magnitude(signal).backward(gradient: Tensor(weights, shape: [B, F, K]))
        let analytic = signal.grad!.array

        func loss(_ item: [Double], _ b: Int) -> Double {
            let m = stft.referenceMagnitude(item)
            return (0..<(F * K)).reduce(0.0) { $0 + m[$1] * Double(weights[b * F * K + $1]) }
        }
        let h = 1e-6
        var worst = 0.0, largest = 0.0
        for b in 0..<B {
            let item = (0..<T).map { Double(x[b * T + $0]) }
            for t in 0..<T {
                var plus = item, minus = item
                plus[t] += h
                minus[t] -= h
                let numeric = (loss(plus, b) - loss(minus, b)) / (2 * h)
                worst = max(worst, abs(numeric - Double(analytic[b * T + t])))
                largest = max(largest, abs(numeric))
            }
        }
        // Every sample, including both reflect-padded ends; Float32 analytic vs Double numeric.
        XCTAssertLessThan(worst, 1e-4 * largest, "worst \(worst) of \(largest)")
    }

    func testMultiResolutionLossAndGradientMatchDoubleReference() {
        let B = 2, T = 1100
        let bandwidth = Bandwidth(l2: 0.01, l1: 0.08, spec: 7.5)
        let target = noise(B * T, std: 0.2, seed: 21)
        let reconstruction = zip(target, noise(B * T, std: 0.1, seed: 22)).map { $0 + $1 }
        let input = Tensor(reconstruction, shape: [B, T], requiresGrad: true)
        let loss = SpectralLoss.multiResolution(input, Tensor(target, shape: [B, T]), bandwidth: bandwidth)
        loss.backward()
        let analytic = input.grad!.array

        let stfts = SpectralLoss.multiResolutionSTFTs
        let targetMagnitudes = (0..<B).map { b in stfts.map { $0.referenceMagnitude((0..<T).map { Double(target[b * T + $0]) }) } }
        // Item b's share of the loss: (1/3) Σ_r ‖M_r(x_b) − M_r(t_b)‖ / (spec · B).
        func itemLoss(_ item: [Double], _ b: Int) -> Double {
            var total = 0.0
            for (r, stft) in stfts.enumerated() {
                let m = stft.referenceMagnitude(item)
                let t = targetMagnitudes[b][r]
                total += zip(m, t).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
            }
            return total / (3 * bandwidth.spec * Double(B))
        }
        let items = (0..<B).map { b in (0..<T).map { Double(reconstruction[b * T + $0]) } }
        let referenceLoss = (0..<B).reduce(0.0) { $0 + itemLoss(items[$1], $1) }
        XCTAssertEqual(Double(loss.item), referenceLoss, accuracy: 1e-5 * referenceLoss)

        let h = 1e-5
        var worst = 0.0, largest = 0.0
        for (b, t) in [(0, 0), (0, 1), (0, 7), (0, 555), (0, 1099), (1, 3), (1, 600), (1, 1024), (1, 1098)] {
            var plus = items[b], minus = items[b]
            plus[t] += h
            minus[t] -= h
            let numeric = (itemLoss(plus, b) - itemLoss(minus, b)) / (2 * h)
            worst = max(worst, abs(numeric - Double(analytic[b * T + t])))
            largest = max(largest, abs(numeric))
        }
        XCTAssertLessThan(worst, 2e-4 * largest, "worst \(worst) of \(largest)")
    }

    func testMultiResolutionLossOfIdenticalSignalsIsZeroWithZeroGradient() {
        let x = noise(2 * 2000, seed: 5)
        let input = Tensor(x, shape: [2, 2000], requiresGrad: true)
        let loss = SpectralLoss.multiResolution(input, Tensor(x, shape: [2, 2000]), bandwidth: Bandwidth(l2: 1, l1: 1, spec: 1))
        XCTAssertEqual(loss.item, 0)
        loss.backward()
        XCTAssertTrue(input.grad!.array.allSatisfy { $0 == 0 })
    }

    func testLmixMatchesDoubleReference() {
        let B = 3, L = 50, k = 8
        let bandwidth = Bandwidth(l2: 0.04, l1: 0.1, spec: 1)
        let target = noise(B * L, std: 0.3, seed: 31), reconstruction = noise(B * L, std: 0.3, seed: 32)
        let input = Tensor(reconstruction, shape: [B, L], requiresGrad: true)
        let targetTensor = Tensor(target, shape: [B, L], requiresGrad: true)
        let loss = SpectralLoss.lmix(input, targetTensor, bandwidth: bandwidth, topK: k)
        loss.backward()

        func reference(_ r: [Double]) -> Double {
            var l2 = 0.0, linf = 0.0
            for b in 0..<B {
                let squares = (0..<L).map { (r[b * L + $0] - Double(target[b * L + $0])) * (r[b * L + $0] - Double(target[b * L + $0])) }
                l2 += squares.reduce(0, +)
                linf += squares.sorted(by: >).prefix(k).reduce(0, +)
            }
            return l2 / (Double(B * L) * bandwidth.l2) + 0.02 * linf / (Double(B * k) * bandwidth.l2)
        }
        let r = reconstruction.map(Double.init)
        XCTAssertEqual(Double(loss.item), reference(r), accuracy: 1e-6 * reference(r))
        let h = 1e-6
        for i in 0..<(B * L) {
            var plus = r, minus = r
            plus[i] += h
            minus[i] -= h
            let numeric = (reference(plus) - reference(minus)) / (2 * h)
            XCTAssertEqual(Double(input.grad!.data[i]), numeric, accuracy: 1e-5 + 1e-4 * abs(numeric), "index \(i)")
            XCTAssertEqual(Double(targetTensor.grad!.data[i]), -numeric, accuracy: 1e-5 + 1e-4 * abs(numeric))
        }
    }

    func testLmixTopKIsClampedToTheItemLength() {
        // With k ≥ L the top-k term is the item mean: lmix = 1.02 · MSE / l2.
        let x = noise(2 * 100, seed: 1), y = noise(2 * 100, seed: 2)
        let loss = SpectralLoss.lmix(Tensor(x, shape: [2, 100]), Tensor(y, shape: [2, 100]),
                                     bandwidth: Bandwidth(l2: 0.5, l1: 1, spec: 1))
        let mse = zip(x, y).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / 200
        XCTAssertEqual(Double(loss.item), 1.02 * mse / 0.5, accuracy: 1e-6)
    }

    func testSpectralConvergence() {
        let x = Tensor(noise(2 * 4000, seed: 41), shape: [2, 4000])
        // A signal against itself: exactly 0, reported at the dB floor.
        let same = SpectralLoss.spectralConvergence(x, x)
        XCTAssertEqual(same.perItem, [0, 0])
        XCTAssertEqual(same.meanDecibels, SpectralLoss.decibelFloor)
        // a·x against x: ‖(a − 1)|S|‖ / ‖|S|‖ = |1 − a|.
        for a: Float in [0.5, 1.3] {
            let sc = SpectralLoss.spectralConvergence(x * a, x)
            for value in sc.perItem { XCTAssertEqual(value, Double(abs(1 - a)), accuracy: 1e-5) }
            XCTAssertEqual(sc.meanDecibels, 20 * log10(Double(abs(1 - a))), accuracy: 1e-3)
        }
        // A silent target scores 0 whatever the reconstruction.
        let silent = SpectralLoss.spectralConvergence(x, Tensor.zeros([2, 4000]))
        XCTAssertEqual(silent.perItem, [0, 0])
    }

    func testBandwidthStatistics() {
        let tone = sine(441, amplitude: 0.4, sampleRate: 44100, count: 8800)   // 88 whole periods
        let bandwidth = Bandwidth.estimate(crops: [tone, tone.map { -$0 }])
        XCTAssertEqual(bandwidth.l2, 0.08, accuracy: 1e-4)                  // A² / 2
        XCTAssertEqual(bandwidth.l1, 0.8 / Double.pi, accuracy: 1e-4)       // 2A / π
        let reference = SpectralLoss.defaultSTFT.referenceMagnitude(tone.map(Double.init))
        let norm = reference.reduce(0.0) { $0 + $1 * $1 }.squareRoot()
        XCTAssertEqual(bandwidth.spec, norm, accuracy: 1e-4 * norm)
        let decoded = try! JSONDecoder().decode(Bandwidth.self, from: JSONEncoder().encode(bandwidth))
        XCTAssertEqual(decoded, bandwidth)
    }
}
