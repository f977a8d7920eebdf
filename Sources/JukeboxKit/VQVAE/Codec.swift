// File-level encoding, decoding and evaluation with a trained VQ-VAE: what `jukebox encode`,
// `decode` and `eval vqvae` do, callable from Swift.

import Foundation
import TensorCore
import ModelKit
import AudioDSP

/// Audio files to code files and back.
public enum Codec {
    /// `DIR/NAME.codes.safetensors` for input `…/NAME.ext`.
    public static func codePath(for input: String, outDirectory: String) -> String {
        let name = URL(fileURLWithPath: input).deletingPathExtension().lastPathComponent
        return URL(fileURLWithPath: outDirectory).appendingPathComponent(name + ".codes.safetensors").path
    }

    /// Whether `codePath` already holds codes of `levels` for `input` from this VQ-VAE and is
    /// newer than the input (so `make` can rerun an encode cheaply).
    public static func isUpToDate(codePath: String, input: String, model: VQVAE, levels: [Int]) -> Bool {
        let fm = FileManager.default
        guard let codeDate = (try? fm.attributesOfItem(atPath: codePath))?[.modificationDate] as? Date,
              let inputDate = (try? fm.attributesOfItem(atPath: input))?[.modificationDate] as? Date,
              codeDate >= inputDate,
              let header = try? Safetensors.readHeader(path: codePath),
              header.metadata["format"] == CodeFile.format,
              model.accepts(digest: header.metadata["vqvae"] ?? "", levels: levels) else { return false }
        let present = Set(header.entries.map(\.name))
        return levels.allSatisfy { present.contains("level\($0)") }
    }

    /// Reads `input` at the model's rate and encodes it at `levels`.
    public static func encodeFile(_ input: String, model: VQVAE, levels: [Int]) throws -> CodeFile {
        let signal = try AudioFile.read(input, sampleRate: model.config.sampleRate)
        var file = CodeFile(batch: 1, sampleRate: model.config.sampleRate, hops: model.hops,
                            codebookSize: model.config.lBins, vqvaeDigest: model.identity, source: input)
        file.samples = signal.count
        for level in levels {
            let codes = model.encodeSignal(signal, level: level)
            file.set(level: level, codes: codes, length: codes.count)
        }
        return file
    }

    /// Checks that `codes` can be decoded by `model`: same sample rate, hops and codebook size
    /// always; a different VQ-VAE digest is an error unless `allowOtherModel`.
    public static func checkCompatible(_ codes: CodeFile, path: String, model: VQVAE, allowOtherModel: Bool = false) throws {
        // Codes of a VQ-VAE this one extends have the hops of its lower levels.
        guard !codes.hops.isEmpty, codes.hops == Array(model.hops.prefix(codes.hops.count)),
              codes.sampleRate == model.config.sampleRate, codes.codebookSize == model.config.lBins else {
            throw ConfigError("\(path): codes are for hops \(codes.hops) at \(codes.sampleRate) Hz with \(codes.codebookSize) codes; "
                + "the VQ-VAE has hops \(model.hops) at \(model.config.sampleRate) Hz with \(model.config.lBins)")
        }
        if !model.accepts(digest: codes.vqvaeDigest, levels: codes.levels.keys.sorted()) && !allowOtherModel {
            throw ConfigError("\(path): codes were made by another VQ-VAE (digest \(codes.vqvaeDigest), this one is \(model.identity)); "
                + "decode with the VQ-VAE that made them, or pass --allow-other-vqvae")
        }
    }

    /// Audio of item `item` of `level` in `codes`, trimmed to the source length when known.
    public static func decode(_ codes: CodeFile, level: Int, item: Int = 0, model: VQVAE) -> [Float] {
        var audio = model.decodeSignal(Array(codes.codes(level: level, item: item)), level: level)
        if let samples = codes.samples, samples < audio.count { audio.removeLast(audio.count - samples) }
        return audio
    }
}

/// ‖|S(a)| − |S(b)|‖² and ‖|S(b)|‖² with the spectral-convergence STFT (2048/256/1536), in
/// Double: the parts of spectral convergence, summable over files.
func spectralDistance(_ a: [Float], _ b: [Float]) -> (Double, Double) {
    Tensor.withoutGrad {
        let sa = SpectralLoss.defaultSTFT.magnitude(Tensor(a, shape: [1, a.count]))
        let sb = SpectralLoss.defaultSTFT.magnitude(Tensor(b, shape: [1, b.count]))
        var d = 0.0, r = 0.0
        for i in 0..<sa.count {
            let x = Double(sa.data[i]), y = Double(sb.data[i])
            d += (x - y) * (x - y)
            r += y * y
        }
        return (d, r)
    }
}

/// What `jukebox eval vqvae` reports.
public struct VQVAEEvaluation: Codable {
    public struct FileResult: Codable {
        public var path: String
        public var seconds: Double
        /// Spectral convergence of each level's reconstruction, in dB.
        public var spectralConvergenceDB: [Double]
    }
    public struct LevelResult: Codable {
        public var level: Int
        public var hop: Int
        /// Spectral convergence over all files (convergence of the concatenated spectra), dB.
        public var spectralConvergenceDB: Double
        /// Distinct codes used over all files, and their share of the codebook.
        public var usedCodes: Int
        public var usage: Double
        public var perplexity: Double
        /// Seconds of audio per second of wall time.
        public var encodeRealtimeFactor: Double
        public var decodeRealtimeFactor: Double
    }
    public var files: [FileResult] = []
    public var levels: [LevelResult] = []

    /// Encodes and decodes each input at every level and compares.
    public static func run(model: VQVAE, inputs: [String], progress: ((String) -> Void)? = nil) throws -> VQVAEEvaluation {
        let L = model.config.levels
        var result = VQVAEEvaluation()
        var counts = [[Int]](repeating: [Int](repeating: 0, count: model.config.lBins), count: L)
        var diffSq = [Double](repeating: 0, count: L), refSq = [Double](repeating: 0, count: L)
        var encodeTime = [Double](repeating: 0, count: L), decodeTime = [Double](repeating: 0, count: L)
        var totalSeconds = 0.0
        for (i, input) in inputs.enumerated() {
            progress?("eval \(i + 1)/\(inputs.count): \(input)")
            let signal = try AudioFile.read(input, sampleRate: model.config.sampleRate)
            guard signal.count > 2048 else {
                throw AudioError.invalidSignal("\(input): too short to evaluate (\(signal.count) samples)")
            }
            let seconds = Double(signal.count) / Double(model.config.sampleRate)
            totalSeconds += seconds
            var dbs: [Double] = []
            for level in 0..<L {
                let t0 = Benchmark.now()
                let codes = model.encodeSignal(signal, level: level)
                let t1 = Benchmark.now()
                var audio = model.decodeSignal(codes, level: level)
                let t2 = Benchmark.now()
                encodeTime[level] += t1 - t0
                decodeTime[level] += t2 - t1
                audio.removeLast(audio.count - signal.count)
                for c in codes { counts[level][Int(c)] += 1 }
                let (d, r) = spectralDistance(audio, signal)
                diffSq[level] += d
                refSq[level] += r
                dbs.append(SpectralLoss.decibels(r > 0 ? (d / r).squareRoot() : 0))
            }
            result.files.append(FileResult(path: input, seconds: seconds, spectralConvergenceDB: dbs))
        }
        for level in 0..<L {
            let total = counts[level].reduce(0, +)
            result.levels.append(LevelResult(
                level: level, hop: model.hops[level],
                spectralConvergenceDB: SpectralLoss.decibels(refSq[level] > 0 ? (diffSq[level] / refSq[level]).squareRoot() : 0),
                usedCodes: counts[level].filter { $0 > 0 }.count,
                usage: Double(counts[level].filter { $0 > 0 }.count) / Double(model.config.lBins),
                perplexity: Double(Bottleneck.perplexity(counts[level], total: total)),
                encodeRealtimeFactor: totalSeconds / Swift.max(encodeTime[level], 1e-9),
                decodeRealtimeFactor: totalSeconds / Swift.max(decodeTime[level], 1e-9)))
        }
        return result
    }
}
