// Ancestral sampling from a model bundle (reference §2.5): the top level first, then each lower
// level conditioned on the one above, each in windows of n_ctx tokens that prime on the tokens
// already there. After every window the codes so far, the window count of each level and the
// random generator's state go to a job file (atomically), so an interrupted job resumes where
// it stopped and ends with exactly the codes an uninterrupted one would have.

import Foundation
import TensorCore
import ModelKit
import AudioDSP

/// A sampling request that does not fit the models or itself, naming the request's field (the
/// command line maps each field to its flag).
public struct SamplingRequestError: Error, CustomStringConvertible {
    public enum Field: String {
        case length = "length", songLength = "song length", batch = "batch", topK = "top-k", topP = "top-p"
        case temperature = "temperature", precision = "precision", primeLength = "prime length", resume = "resume"
    }
    public let field: Field
    /// What is wrong, without the field's name.
    public let problem: String
    public init(_ field: Field, _ problem: String) {
        self.field = field
        self.problem = problem
    }
    public var description: String { "\(field.rawValue): \(problem)" }
}

/// Everything that determines a sampling job's output. A job file records it; resuming
/// requires the same request.
public struct SamplingRequest: Codable, Equatable {
    /// Length of the music in samples (a multiple of the top hop).
    public var samples: Int
    public var seed: UInt64
    public var artist: String
    public var genres: [String]
    /// Temperature for every level; nil uses each prior's configured temperature.
    public var temperature: Float?
    public var topK: Int
    public var topP: Float
    /// Sequences sampled together.
    public var batch: Int
    /// Levels to sample, top first; a level's codes come from the job's input when not listed.
    public var levels: [Int]
    /// Audio whose start primes every level (with its length in samples), if any.
    public var prime: String?
    public var primeSamples: Int
    /// Code file whose levels are upsampled, if any (`jukebox upsample`).
    public var upsampleFrom: String?
    /// Arithmetic of the matrix products (`float16` or `float32`).
    public var precision: String
    /// Length in samples of the song the music is part of, for the top prior's timing signal;
    /// nil: the model's default (see ``MusicSampler/songSamples(for:bundle:)``).
    public var songSamples: Int?

    public init(samples: Int, seed: UInt64, artist: String, genres: [String] = [], temperature: Float? = nil,
                topK: Int = 0, topP: Float = 0, batch: Int = 1, levels: [Int], prime: String? = nil, primeSamples: Int = 0,
                upsampleFrom: String? = nil, precision: SamplingPrecision = .fastest, songSamples: Int? = nil) {
        self.samples = samples
        self.seed = seed
        self.artist = artist
        self.genres = genres
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.batch = batch
        self.levels = levels
        self.prime = prime
        self.primeSamples = primeSamples
        self.upsampleFrom = upsampleFrom
        self.precision = precision.rawValue
        self.songSamples = songSamples
    }

    var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try! encoder.encode(self), as: UTF8.self)
    }
}

/// Where a job is, reported after every window and every few tokens.
public struct SamplingProgress {
    public var level: Int
    public var window: Int
    public var windows: Int
    /// Tokens of the job sampled so far (including windows finished before a resume), and in
    /// the whole job.
    public var tokensDone: Int
    public var tokensTotal: Int
    public var tokensPerSecond: Double
    /// True right after a window was completed and saved.
    public var windowFinished: Bool
    /// Tokens that were already done when this run started (0 unless resumed).
    public var tokensBeforeRun: Int = 0
}

/// How a sampling job ended.
public enum SamplingOutcome {
    case finished(CodeFile)
    /// Stopped by Ctrl-C; the job file holds every finished window.
    case interrupted
}

/// Samples music codes from a ``ModelBundle``.
public final class MusicSampler {
    public let bundle: ModelBundle
    public let request: SamplingRequest
    /// The job file: the codes so far plus the job's state.
    public let jobPath: String
    var codes: CodeFile
    /// Windows finished per level.
    var windowsDone: [Int: Int] = [:]
    var generator: RandomGenerator
    /// Artist and genre ids in each level's own label vocabulary (the top prior's must know
    /// them; a prior trained on other data takes what it does not know as "unknown").
    let artistIDs: [Int: Int32]
    let genreIDs: [Int: [Int32]]

    /// Prepares a job. With `resume`, continues the job file at `jobPath` (which must hold the
    /// same request); otherwise a job file there is an error, so no work is lost.
    public init(bundle: ModelBundle, request: SamplingRequest, jobPath: String, resume: Bool) throws {
        self.bundle = bundle
        self.request = request
        self.jobPath = jobPath
        let vocabulary = bundle.priors[bundle.topLevel]!.vocabulary
        _ = try vocabulary.artistID(request.artist)
        _ = try request.genres.map { try vocabulary.genreID($0) }
        artistIDs = bundle.priors.mapValues { (try? $0.vocabulary.artistID(request.artist)) ?? 0 }
        genreIDs = bundle.priors.mapValues { p in request.genres.compactMap { try? p.vocabulary.genreID($0) } }
        try MusicSampler.validate(request, bundle: bundle)
        let fm = FileManager.default
        let folder = URL(fileURLWithPath: jobPath).deletingLastPathComponent().path
        try OutputFolder.prepare(folder)
        if resume {
            guard fm.fileExists(atPath: jobPath) else {
                throw SamplingRequestError(.resume, "there is no job file \(jobPath) to continue")
            }
            let saved = try CodeFile.read(jobPath)
            guard saved.extra["job"] == request.json else {
                throw ConfigError("\(jobPath): the job was started with other options (\(saved.extra["job"] ?? "none")); "
                    + "resume with the same flags, or delete the file to start over")
            }
            try Codec.checkCompatible(saved, path: jobPath, model: bundle.vqvae)
            codes = saved
            for level in request.levels {
                windowsDone[level] = Int(saved.extra["windows_done_level\(level)"] ?? "") ?? 0
            }
            let words = (saved.extra["generator"] ?? "").split(separator: ",").compactMap { UInt64($0) }
            guard words.count == 4 else { throw ConfigError("\(jobPath): the generator state is damaged") }
            generator = RandomGenerator(stateWords: words)
        } else {
            if fm.fileExists(atPath: jobPath) {
                let what = !jobPath.hasSuffix(".job.codes.safetensors") ? "the output is already there (a finished or an unfinished job)"
                                                             : "an unfinished job is there"
                throw SamplingRequestError(.resume, "\(jobPath): \(what); continue the job, or delete the file to start over")
            }
            generator = RandomGenerator(seed: request.seed)
            codes = try MusicSampler.initialCodes(request, bundle: bundle)
            for level in request.levels { windowsDone[level] = 0 }
        }
    }

    /// Checks lengths against the models: at least one window of every sampled upsampler (the
    /// top prior may fill part of one), at most the top prior's longest duration. Throws a
    /// ``SamplingRequestError`` naming the request's field.
    static func validate(_ r: SamplingRequest, bundle: ModelBundle) throws {
        typealias E = SamplingRequestError
        let rate = Double(bundle.vqvae.config.sampleRate)
        let seconds = Double(r.samples) / rate
        for level in r.levels {
            guard let prior = bundle.priors[level] else { throw ConfigError("the bundle has no prior for level \(level)") }
            let window = prior.config.nCtx * bundle.vqvae.hops[level]
            if r.samples < window && level != bundle.topLevel {
                if let source = r.upsampleFrom {
                    throw ConfigError(String(format: "%@: its %.2f s of music are shorter than one level-%d window (%.2f s)",
                                             source, seconds, level, Double(window) / rate))
                }
                throw E(.length, String(format: "%.2f s is shorter than one level-%d window (%.2f s); ask for at least %.2f s",
                                        seconds, level, Double(window) / rate, Double(window) / rate))
            }
        }
        let top = bundle.priors[bundle.topLevel]!.config
        if seconds > Double(top.maxDuration) {
            throw E(.length, String(format: "%.0f s is longer than the top prior's longest song (%.0f s)", seconds, top.maxDuration))
        }
        if let song = r.songSamples {
            let songSeconds = Double(song) / rate
            if song < r.samples { throw E(.songLength, "must be at least the length of the music (the music is part of the song)") }
            if songSeconds > Double(top.maxDuration) {
                throw E(.songLength, String(format: "%.0f s is longer than the top prior's longest song (%.0f s)", songSeconds, top.maxDuration))
            }
        }
        if r.batch < 1 || r.batch > 64 { throw E(.batch, "must be in 1...64, got \(r.batch)") }
        if r.topK < 0 || r.topK > bundle.vqvae.config.lBins { throw E(.topK, "must be in 0...\(bundle.vqvae.config.lBins) (the codebook size), got \(r.topK)") }
        if !(r.topP >= 0 && r.topP <= 1) { throw E(.topP, "must be in [0, 1], got \(r.topP)") }
        if r.topK > 0 && r.topP > 0 { throw E(.topK, "cannot be combined with top-p; give one of them") }
        if let t = r.temperature, !(t > 0 && t.isFinite) { throw E(.temperature, "must be positive and finite, got \(t)") }
        guard let precision = SamplingPrecision(rawValue: r.precision) else {
            throw E(.precision, "'\(r.precision)' is not one of float16, float32")
        }
        if precision == .float16 && !SamplingPrecision.halfKernelsAvailable {
            throw E(.precision, "float16 cannot run: \(SamplingPrecision.halfKernelsUnavailableReason ?? "unknown"); use float32")
        }
        if r.primeSamples >= r.samples { throw E(.primeLength, "must be shorter than the length of the music") }
    }

    /// Empty codes for every level, with the prime's codes or the upsampled input's levels.
    static func initialCodes(_ r: SamplingRequest, bundle: ModelBundle) throws -> CodeFile {
        let vq = bundle.vqvae
        var file = CodeFile(batch: r.batch, sampleRate: vq.config.sampleRate, hops: vq.hops, codebookSize: vq.config.lBins,
                            vqvaeDigest: vq.identity, source: r.upsampleFrom ?? "jukebox sample seed=\(r.seed)")
        file.samples = r.samples
        for level in 0..<vq.config.levels {
            file.set(level: level, codes: [Int32](repeating: 0, count: r.batch * r.samples / vq.hops[level]),
                     length: r.samples / vq.hops[level])
        }
        if let input = r.upsampleFrom {
            let given = try CodeFile.read(input)
            try Codec.checkCompatible(given, path: input, model: vq)
            for level in 0..<vq.config.levels where !r.levels.contains(level) {
                guard let present = given.levels[level], given.lengths[level] == r.samples / vq.hops[level] else {
                    throw ConfigError("\(input): level \(level) is missing or incomplete; it is needed to sample the levels below")
                }
                file.set(level: level, codes: present, length: given.lengths[level]!)
            }
        }
        if let prime = r.prime {
            // The prime's codes are those of the recording as a whole: the audio after the cut,
            // as far as the encoder reaches, is encoded too, so the last primed codes do not see
            // an artificial silence (which would start the continuation off the beat).
            let recording = try AudioFile.read(prime, sampleRate: vq.config.sampleRate)
            guard recording.count >= r.primeSamples else {
                throw SamplingRequestError(.primeLength, "\(prime) holds \(recording.count) samples, fewer than the \(r.primeSamples) asked for")
            }
            for level in 0..<vq.config.levels {
                let reach = vq.encoderReach(level: level)
                let audio = Array(recording.prefix(r.primeSamples + reach))
                let primed = vq.encodeSignal(audio, level: level).prefix(r.primeSamples / vq.hops[level])
                let length = r.samples / vq.hops[level]
                var all = file.levels[level]!
                for n in 0..<r.batch { for (t, code) in primed.enumerated() { all[n * length + t] = code } }
                file.set(level: level, codes: all, length: length)
            }
        }
        return file
    }

    /// Tokens already fixed at the start of `level` (the prime), before any window.
    func primedTokens(_ level: Int) -> Int { request.primeSamples / bundle.vqvae.hops[level] }

    /// The windows of `level`: (start, tokens already there, new tokens), skipping windows that
    /// the prime fills completely. Music shorter than the top prior's context is the start of
    /// one window.
    func windows(_ level: Int) -> [(start: Int, existing: Int, new: Int)] {
        let prior = bundle.priors[level]!
        let total = request.samples / bundle.vqvae.hops[level]
        if total < prior.config.nCtx {
            let filled = primedTokens(level)
            return filled < total ? [(0, filled, total - filled)] : []
        }
        let alignment = prior.isUpsampler ? 1 << prior.config.conditioner.downT : 1
        let hop = windowHop(nCtx: prior.config.nCtx, fraction: prior.config.sample.hopFraction, alignment: alignment)
        var filled = primedTokens(level)
        var out: [(Int, Int, Int)] = []
        for start in windowStarts(total: total, nCtx: prior.config.nCtx, hop: hop) {
            let end = start + prior.config.nCtx
            guard end > filled else { continue }
            out.append((start, filled - start, end - filled))
            filled = end
        }
        return out
    }

    /// Runs (or continues) the job. `progress` is called every few hundred tokens and after each
    /// window. Returns the codes, or `.interrupted` on Ctrl-C.
    public func run(progress: (SamplingProgress) -> Void) throws -> SamplingOutcome {
        let tokensTotal = request.levels.reduce(0) { $0 + windows($1).reduce(0) { $0 + $1.new } * request.batch }
        var tokensDone = 0
        for level in request.levels {
            let all = windows(level)
            for (i, w) in all.enumerated() where i < windowsDone[level]! { tokensDone += w.new * request.batch }
        }
        let startDone = tokensDone
        let clock = Date()
        let order = UnsafeMutablePointer<Int32>.allocate(capacity: bundle.vqvae.config.lBins)
        defer { order.deallocate() }
        for level in request.levels {
            let prior = bundle.priors[level]!
            let sampler = PriorSampler(prior: prior, batch: request.batch,
                                       precision: SamplingPrecision(rawValue: request.precision) ?? .float32)
            let filter = TokenFilter(temperature: request.temperature ?? prior.config.sample.temperature,
                                     topK: request.topK, topP: request.topP)
            let all = windows(level)
            for (index, w) in all.enumerated() where index >= windowsDone[level]! {
                let conditioning = windowConditioning(level: level, start: w.start, prior: prior)
                var done = 0
                let interrupted = sampler.withThreading { () -> Bool in
                    sampleWindow(level: level, window: w, sampler: sampler, conditioning: conditioning, filter: filter,
                                 order: order) { count in
                        done = count
                        let rate = Double(tokensDone + count * request.batch - startDone) / Swift.max(Date().timeIntervalSince(clock), 1e-9)
                        progress(SamplingProgress(level: level, window: index + 1, windows: all.count,
                                                  tokensDone: tokensDone + count * request.batch, tokensTotal: tokensTotal,
                                                  tokensPerSecond: rate, windowFinished: false, tokensBeforeRun: startDone))
                        return !Interrupt.requested
                    }
                }
                if interrupted { return .interrupted }
                tokensDone += done * request.batch
                windowsDone[level] = index + 1
                try saveJob()
                let rate = Double(tokensDone - startDone) / Swift.max(Date().timeIntervalSince(clock), 1e-9)
                progress(SamplingProgress(level: level, window: index + 1, windows: all.count, tokensDone: tokensDone,
                                          tokensTotal: tokensTotal, tokensPerSecond: rate, windowFinished: true,
                                          tokensBeforeRun: startDone))
                if Interrupt.requested { return .interrupted }
            }
        }
        var result = codes
        // Levels that were neither sampled nor given hold placeholders: leave them out, so a
        // `--levels 2` file is a top-level file that `upsample` completes.
        if request.upsampleFrom == nil {
            for level in 0..<bundle.vqvae.config.levels where !request.levels.contains(level) {
                result.levels[level] = nil
                result.lengths[level] = nil
            }
        }
        result.extra = ["artist": request.artist, "genres": request.genres.joined(separator: ","),
                        "seed": String(request.seed)]
        return .finished(result)
    }

    /// The song length the top prior's timing signal is given: the request's, else the median
    /// length of the songs the prior was trained on (240 s, Jukebox's default, for a prior that
    /// does not record it), and never less than the music asked for. Like Jukebox's
    /// `total_sample_length_in_seconds`, it is an intended song length, separate from how
    /// much is generated: a 20 s sample is the start of a song of ordinary length, which is
    /// what the prior saw in training.
    public static func songSamples(for request: SamplingRequest, bundle: ModelBundle) -> Int {
        if let song = request.songSamples { return song }
        let top = bundle.priors[bundle.topLevel]!
        let rate = Double(bundle.vqvae.config.sampleRate)
        let seconds = Swift.min(Double(top.config.maxDuration), top.songSeconds ?? 240)
        return Swift.max(request.samples, Int(seconds * rate))
    }

    /// What a window of `level` starting at `start` is conditioned on.
    func windowConditioning(level: Int, start: Int, prior: Prior) -> PriorConditioning {
        let N = request.batch
        var c = PriorConditioning(artists: [Int32](repeating: artistIDs[level]!, count: N),
                                  genres: [[Int32]](repeating: genreIDs[level]!, count: N))
        let hop = bundle.vqvae.hops[level]
        if prior.isUpsampler {
            let ratio = 1 << prior.config.conditioner.downT
            let upperLength = codes.lengths[level + 1]!
            let upper = codes.levels[level + 1]!
            var window: [Int32] = []
            for n in 0..<N {
                let from = n * upperLength + start / ratio
                window += upper[from..<(from + prior.config.nCtx / ratio)]
            }
            c.upperCodes = window
        } else {
            let song = MusicSampler.songSamples(for: request, bundle: bundle)
            c.timing = [TimingInfo](repeating: TimingInfo(total: song, offset: start * hop, length: prior.config.nCtx * hop),
                                    count: N)
        }
        return c
    }

    /// Samples the new tokens of one window into `codes`. `tick(count)` is called every 64
    /// tokens with the tokens done so far and returns false to stop. Returns true if stopped.
    func sampleWindow(level: Int, window w: (start: Int, existing: Int, new: Int), sampler: PriorSampler,
                      conditioning: PriorConditioning, filter: TokenFilter, order: UnsafeMutablePointer<Int32>,
                      tick: (Int) -> Bool) -> Bool {
        let N = request.batch, length = codes.lengths[level]!, bins = bundle.vqvae.config.lBins
        var levelCodes = codes.levels[level]!
        defer { codes.set(level: level, codes: levelCodes, length: length) }
        if w.existing > 0 {
            var prime: [Int32] = []
            for n in 0..<N { prime += levelCodes[(n * length + w.start)..<(n * length + w.start + w.existing)] }
            sampler.prime(prime, conditioning: conditioning)
        } else {
            sampler.reset(conditioning: conditioning)
        }
        var previous = (0..<N).map { n in w.existing > 0 ? levelCodes[n * length + w.start + w.existing - 1] : 0 }
        for i in 0..<w.new {
            let logits = sampler.step(previous: previous)
            for n in 0..<N {
                let token = filter.draw(logits + n * bins, count: bins, order: order, generator: &generator)
                levelCodes[n * length + w.start + w.existing + i] = token
                previous[n] = token
            }
            if (i + 1) % 64 == 0 && !tick(i + 1) { return true }
        }
        _ = tick(w.new)
        return false
    }

    /// Writes the job file: codes so far, the request, windows done, generator state.
    func saveJob() throws {
        var file = codes
        file.extra["job"] = request.json
        file.extra["generator"] = generator.stateWords.map(String.init).joined(separator: ",")
        for (level, done) in windowsDone { file.extra["windows_done_level\(level)"] = String(done) }
        try file.write(jobPath)
    }
}

/// The outputs of a sampling job: a code file, or one WAV per sequence decoded from level 0.
public enum SamplingOutput {
    /// Whether `path` names a code file (else audio).
    public static func isCodeFile(_ path: String) -> Bool { path.hasSuffix(".codes.safetensors") }

    /// The job file of an output: the code file itself, or `OUT.job.codes.safetensors` beside a WAV.
    public static func jobPath(for output: String) -> String {
        isCodeFile(output) ? output : output + ".job.codes.safetensors"
    }

    /// Writes the finished job: the codes, or WAVs (`OUT.wav`, or `OUT-1.wav`… for a batch)
    /// decoded from level 0 and trimmed to the requested length; then removes the job file.
    /// Returns the paths written.
    @discardableResult
    public static func write(_ codes: CodeFile, to output: String, bundle: ModelBundle) throws -> [String] {
        let job = jobPath(for: output)
        if isCodeFile(output) {
            try codes.write(output)
            return [output]
        }
        var written: [String] = []
        for n in 0..<codes.batch {
            let audio = Codec.decode(codes, level: 0, item: n, model: bundle.vqvae)
            let path = codes.batch == 1 ? output : numberedPath(output, n)
            try Interrupt.protecting { try AudioFile.write(path, samples: audio, sampleRate: bundle.vqvae.config.sampleRate) }
            written.append(path)
        }
        try? FileManager.default.removeItem(atPath: job)
        return written
    }

    /// `out.wav` → `out-2.wav` for item 1 of a batch (items count from 1).
    public static func numberedPath(_ path: String, _ item: Int) -> String {
        let url = URL(fileURLWithPath: path)
        let ext = url.pathExtension
        let base = url.deletingPathExtension().path
        return "\(base)-\(item + 1)" + (ext.isEmpty ? "" : ".\(ext)")
    }
}
