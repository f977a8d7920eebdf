// Training data of a prior: the codes of every song at the prior's level (and the level above
// for an upsampler), from code files made by `jukebox encode` or from audio encoded once with
// the VQ-VAE and cached in the run folder. Songs are split 90/10 by the audio dataset's hash
// of the song's file name. The audio dataset hashes the path relative to its training folder,
// which is the file name for songs directly in that folder: those held out from the VQ-VAE are
// held out here too. Songs in subfolders (singularity-music's win/ and lose/) may fall on
// different sides; the shipped priors hold out 5 songs, the VQ-VAE's 3 among them.

import Foundation
import TensorCore
import ModelKit
import AudioDSP

/// One song's codes and labels.
public struct CodedSong {
    public var source: String
    public var splitKey: String
    /// Codes at the prior's level.
    public var codes: [Int16]
    /// Codes at the level above (upsamplers).
    public var upper: [Int16]?
    /// Length of the song in samples.
    public var samples: Int
    public var labels: FileLabels
}

/// A batch of training windows.
public struct TokenBatch {
    /// `(N, n_ctx)` tokens.
    public var tokens: [Int32]
    public var conditioning: PriorConditioning
}

/// Songs as codes, split into train and held-out.
public final class CodeDataset {
    public let level: Int
    public let train: [CodedSong]
    public let test: [CodedSong]

    /// Collects songs from `sources` (code files, audio files, or folders of either). Audio is
    /// encoded with `vqvae` and cached as code files in `cacheDirectory`. Code files must come
    /// from `vqvae` (same digest). Songs shorter than `minimumCodes` are skipped with a note.
    public init(sources: [String], level: Int, upsampler: Bool, vqvae: VQVAE, cacheDirectory: String,
                labels: LabelTable?, minimumCodes: Int, log: (String) -> Void) throws {
        self.level = level
        let files = try CodeDataset.collect(sources)
        guard !files.isEmpty else { throw ConfigError("no code files or audio files found in \(sources.joined(separator: ", "))") }
        let folderLabels = LabelTable.fromFolders(files: files, roots: sources)
        try FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true)
        let levels = upsampler ? [level, level + 1] : [level]
        var songs: [CodedSong] = []
        var short = 0
        var unreadable: [String] = []
        for (i, file) in files.enumerated() {
            let codes: CodeFile
            // Any safetensors file is taken as a code file, so a damaged or foreign one is
            // reported by the code-file reader rather than as "not an audio file".
            if file.lowercased().hasSuffix(".safetensors") {
                codes = try CodeFile.read(file)
                try Codec.checkCompatible(codes, path: file, model: vqvae)
                for l in levels where codes.levels[l] == nil {
                    throw ConfigError("\(file): has no level \(l) codes (encode with --levels \(levels.map(String.init).joined(separator: ",")))")
                }
            } else {
                let cached = Codec.codePath(for: file, outDirectory: cacheDirectory)
                if Codec.isUpToDate(codePath: cached, input: file, model: vqvae, levels: levels) {
                    codes = try CodeFile.read(cached)
                } else {
                    log("encoding \(i + 1)/\(files.count): \(file)")
                    do {
                        codes = try Codec.encodeFile(file, model: vqvae, levels: Array(0..<vqvae.config.levels))
                    } catch {
                        log("skipping \(error)")
                        unreadable.append("\(error)")
                        continue
                    }
                    try codes.write(cached)
                }
            }
            let tokens = Array(codes.codes(level: level, item: 0)).map { Int16($0) }
            guard tokens.count >= minimumCodes else { short += 1; continue }
            let source = codes.source.isEmpty ? file : codes.source
            let upper = upsampler ? Array(codes.codes(level: level + 1, item: 0)).map { Int16($0) } : nil
            let fileLabels = labels?.labels(for: source) ?? labels?.labels(for: file) ?? folderLabels.labels(for: file)
            songs.append(CodedSong(source: source, splitKey: URL(fileURLWithPath: source).lastPathComponent, codes: tokens,
                                   upper: upper, samples: codes.samples ?? codes.coveredSamples, labels: fileLabels))
        }
        if short > 0 { log("skipping \(short) song\(short == 1 ? "" : "s") shorter than \(minimumCodes) codes (one context)") }
        guard !songs.isEmpty else {
            if short == 0, let first = unreadable.first {
                throw ConfigError("no readable song in \(sources.joined(separator: ", ")): \(first)"
                                  + (unreadable.count > 1 ? " (and \(unreadable.count - 1) more)" : ""))
            }
            throw ConfigError("no song in \(sources.joined(separator: ", ")) is as long as one context of \(minimumCodes) codes"
                              + (unreadable.isEmpty ? "" : "; \(unreadable.count) could not be read, e.g. \(unreadable[0])"))
        }
        var test = songs.filter { AudioDataset.isTestKey($0.splitKey) }
        if test.count == songs.count { test = [] }
        let testKeys = Set(test.map(\.source))
        train = songs.filter { !testKeys.contains($0.source) }
        self.test = test
    }

    /// Code files and audio files under `sources` (folders searched recursively), sorted.
    static func collect(_ sources: [String]) throws -> [String] {
        var out: [String] = []
        let fm = FileManager.default
        for source in sources {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: source, isDirectory: &isDirectory) else { throw ConfigError("\(source): no such file or folder") }
            if !isDirectory.boolValue { out.append(source); continue }
            guard let walker = fm.enumerator(atPath: source) else { continue }
            for case let relative as String in walker {
                let path = (source as NSString).appendingPathComponent(relative)
                let lower = path.lowercased()
                if lower.hasSuffix(".codes.safetensors") || AudioDataset.audioExtensions.contains((lower as NSString).pathExtension) {
                    out.append(path)
                }
            }
        }
        return out.sorted()
    }

    /// Whether a prior trained on the code file at `path` holds it out (the same rule as the
    /// training split: a hash of its source's file name).
    public static func isHeldOut(codeFile path: String) throws -> Bool {
        let header = try Safetensors.readHeader(path: path)
        let source = header.metadata["source"].flatMap { $0.isEmpty ? nil : $0 } ?? path
        return AudioDataset.isTestKey(URL(fileURLWithPath: source).lastPathComponent)
    }

    /// Every label used by the training songs.
    public var vocabulary: LabelVocabulary {
        let songs = train + test
        return LabelVocabulary(artists: Array(Set(songs.map(\.labels.artist))).sorted(),
                               genres: Array(Set(songs.flatMap(\.labels.genres))).sorted())
    }

    /// `batch` random windows of `config.nCtx` tokens from `songs`, longer songs drawn more
    /// often. Upsampler windows start on a multiple of 2^down_t so the upper codes align.
    public static func sampleBatch(_ songs: [CodedSong], batch: Int, config: PriorConfig, hop: Int,
                                   vocabulary: LabelVocabulary, upsampler: Bool,
                                   generator: inout RandomGenerator) -> TokenBatch {
        let n = config.nCtx, ratio = 1 << config.conditioner.downT
        let weights = songs.map { Double($0.codes.count - n + 1) }
        let totalWeight = weights.reduce(0, +)
        var tokens: [Int32] = [], upper: [Int32] = [], timing: [TimingInfo] = []
        var artists: [Int32] = [], genres: [[Int32]] = []
        tokens.reserveCapacity(batch * n)
        for _ in 0..<batch {
            var pick = generator.uniformDouble() * totalWeight
            var index = 0
            while index < songs.count - 1 && pick >= weights[index] { pick -= weights[index]; index += 1 }
            let song = songs[index]
            var start = generator.int(below: song.codes.count - n + 1)
            if upsampler { start = start / ratio * ratio }
            tokens += song.codes[start..<(start + n)].map { Int32($0) }
            if upsampler, let u = song.upper { upper += u[(start / ratio)..<((start + n) / ratio)].map { Int32($0) } }
            timing.append(TimingInfo(total: song.samples, offset: start * hop, length: n * hop))
            artists.append((try? vocabulary.artistID(song.labels.artist)) ?? 0)
            genres.append(song.labels.genres.prefix(config.maxBowGenreSize).map { (try? vocabulary.genreID($0)) ?? 0 })
        }
        let conditioning = PriorConditioning(artists: artists, genres: genres, timing: upsampler ? nil : timing,
                                             upperCodes: upsampler ? upper : nil)
        return TokenBatch(tokens: tokens, conditioning: conditioning)
    }
}
