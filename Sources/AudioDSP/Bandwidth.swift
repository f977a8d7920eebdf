// The data statistics Jukebox divides its losses by (`calculate_bandwidth` in
// jukebox/utils/audio_utils.py), accumulated in Double as there.
//
//   l2   = E[x²] − E[x]²     (variance over all samples)
//   l1   = E|x|
//   spec = mean over crops of ‖ |STFT(crop)| ‖_F with nFFT 2048, hop 256, window 1536
//
// `spec` depends on the crop length (a Frobenius norm grows with √length), so it must be
// estimated on crops of the training sample length.

import Foundation
import TensorCore

/// Loss normalisers estimated from a sample of the data.
public struct Bandwidth: Codable, Equatable, Sendable {
    /// Sample variance; divides the pointwise losses.
    public var l2: Double
    /// Mean absolute sample value.
    public var l1: Double
    /// Mean Frobenius norm of a crop's magnitude spectrogram; divides the spectral loss.
    public var spec: Double

    /// Statistics as given (e.g. decoded from a run's config).
    public init(l2: Double, l1: Double, spec: Double) {
        self.l2 = l2
        self.l1 = l1
        self.spec = spec
    }

    /// The statistics of `crops` (mono, each longer than 1024 samples).
    public static func estimate(crops: [[Float]]) -> Bandwidth {
        precondition(!crops.isEmpty, "Bandwidth.estimate: no crops")
        var sum = 0.0, sumSquares = 0.0, sumAbsolute = 0.0, count = 0.0, specTotal = 0.0
        for crop in crops {
            for x in crop {
                let v = Double(x)
                sum += v
                sumSquares += v * v
                sumAbsolute += Swift.abs(v)
            }
            count += Double(crop.count)
            let magnitude = Tensor.withoutGrad {
                SpectralLoss.defaultSTFT.magnitude(Tensor(crop, shape: [1, crop.count]))   // (1, F, K)
            }
            specTotal += Kernels.sumOfSquares(magnitude.data, count: magnitude.count).squareRoot()
        }
        let mean = sum / count
        return Bandwidth(l2: sumSquares / count - mean * mean, l1: sumAbsolute / count,
                         spec: specTotal / Double(crops.count))
    }

    /// The statistics of about `seconds` of the training split, in consecutive crops of the
    /// dataset's sample length, as Jukebox takes them: the files are cut into back-to-back
    /// crops and every 16th crop is used (every n-th with n < 16 when 16 would not reach
    /// `seconds`). Deterministic; no random draws.
    public static func estimate(dataset: AudioDataset, seconds: Double = 300) throws -> Bandwidth {
        let length = dataset.sampleLength
        var positions: [(entry: AudioDataset.Entry, offset: Int)] = []
        for entry in dataset.train {
            for k in 0..<(entry.length / length) { positions.append((entry, k * length)) }
        }
        let wanted = max(1, Int((seconds * Double(dataset.sampleRate) / Double(length)).rounded(.up)))
        let stride = max(1, min(16, positions.count / wanted))
        var crops: [[Float]] = []
        for index in Swift.stride(from: 0, to: positions.count, by: stride) where crops.count < wanted {
            crops.append(try dataset.crop(positions[index].entry, offset: positions[index].offset))
        }
        return estimate(crops: crops)
    }
}
