// A training set of audio files: found in folders and file lists, indexed once (durations
// cached as JSON in the run folder), split 90/10 into train and test by a stable hash of each
// file's path, and cropped at random offsets.
//
// Policies:
// - Folders are searched recursively for files with an audio extension (`audioExtensions`);
//   other files are ignored silently. A source ending in .txt/.lst/.list is a file list (one
//   path per line, relative to the list's folder; blank lines and lines starting with # are
//   skipped). Any other file is taken as one audio file.
// - A file that cannot be read is reported once on stderr by name and skipped.
// - Files shorter than `sampleLength` samples are skipped (as Jukebox's min_duration does), with
//   one summary line on stderr: zero padding would teach the model silence and bias the
//   bandwidth statistics.
// - The split key of a file is its path relative to the folder it was found in (for a list, the
//   line as written; for a file given directly, its name), so moving the data keeps the split.
//   A file is in the test split when FNV-1a-64(key) % 10 == 0, unless that would leave the
//   training split empty, in which case every file trains.

import Foundation
import TensorCore

/// Audio files for training and evaluation, indexed and split.
public final class AudioDataset {
    /// One usable file.
    public struct Entry: Codable, Equatable, Sendable {
        /// Absolute path.
        public var path: String
        /// The string hashed for the train/test split.
        public var splitKey: String
        /// The file's own rate, channel count and frame count.
        public var sampleRate: Int
        /// Channels in the file (mixed to mono when read).
        public var channels: Int
        /// Frames in the file at its own rate.
        public var frames: Int
        /// Mono samples at the dataset's rate.
        public var length: Int

        /// An entry with the given facts (the dataset makes these; tests and tools may too).
        public init(path: String, splitKey: String, sampleRate: Int, channels: Int, frames: Int, length: Int) {
            self.path = path
            self.splitKey = splitKey
            self.sampleRate = sampleRate
            self.channels = channels
            self.frames = frames
            self.length = length
        }
    }

    /// Which part of the data.
    public enum Split: Sendable {
        /// About 90 % of the files: what the model learns from.
        case train
        /// About 10 % of the files: held out for evaluation.
        case test
    }

    /// Extensions (lower case) taken from folders.
    public static let audioExtensions: Set<String> = ["wav", "wave", "flac", "ogg", "oga", "opus", "mp3",
                                                      "aif", "aiff", "aifc", "au", "snd", "caf", "w64"]

    /// Name of the index cache inside the run folder.
    public static let indexFileName = "audio-index.json"

    /// The folders, lists and files given.
    public let sources: [String]
    /// Rate all audio is read at.
    public let sampleRate: Int
    /// Samples per crop.
    public let sampleLength: Int
    /// Training files, sorted by path.
    public let train: [Entry]
    /// Held-out files, sorted by path.
    public let test: [Entry]
    /// `"PATH: reason"` for each file that could not be read (also printed to stderr).
    public let problems: [String]
    /// Readable files skipped for being shorter than `sampleLength`.
    public let shortFileCount: Int
    /// Files whose header was read in this run (the rest came from the index cache).
    public let scannedFileCount: Int
    /// Files whose facts came from the index cache.
    public let cachedFileCount: Int

    /// Indexes every audio file under `sources`. With a `runDirectory`, the index is cached
    /// there as ``indexFileName`` and reused for files whose size and modification time are
    /// unchanged. Throws when a source is missing or no file is usable.
    public init(sources: [String], sampleRate: Int, sampleLength: Int, runDirectory: String? = nil) throws {
        precondition(sampleRate > 0 && sampleLength > 0, "AudioDataset: sampleRate and sampleLength must be positive")
        self.sources = sources
        self.sampleRate = sampleRate
        self.sampleLength = sampleLength
        var problems: [String] = []
        let candidates = try AudioDataset.collect(sources, problems: &problems)
        let cachePath = runDirectory.map { URL(fileURLWithPath: $0).appendingPathComponent(AudioDataset.indexFileName).path }
        var index = AudioIndex(path: cachePath)
        var usable: [Entry] = []
        var short = 0
        for (path, key) in candidates {
            switch index.lookup(path) {
            case .success(let info):
                let length = info.length(atSampleRate: sampleRate)
                if !Resampler.canConvert(from: info.sampleRate, to: sampleRate) && info.sampleRate != sampleRate {
                    problems.append(AudioError.unsupportedSampleRate(path: path, rate: info.sampleRate,
                                                                     target: sampleRate).description)
                } else if length < sampleLength {
                    short += 1
                } else {
                    usable.append(Entry(path: path, splitKey: key, sampleRate: info.sampleRate,
                                        channels: info.channels, frames: info.frames, length: length))
                }
            case .failure(let message):
                problems.append(message.description)
            }
        }
        try? index.save()
        for problem in problems { AudioDataset.report("skipping \(problem)") }
        if short > 0 {
            AudioDataset.report("skipping \(short) file\(short == 1 ? "" : "s") shorter than \(sampleLength) samples at \(sampleRate) Hz")
        }
        guard !usable.isEmpty else {
            throw AudioError.noUsableAudio(sources: sources, reason: "\(candidates.count) files found, "
                + "\(problems.count) unreadable, \(short) shorter than \(sampleLength) samples")
        }
        var test = usable.filter { AudioDataset.isTestKey($0.splitKey) }
        if test.count == usable.count { test = [] }
        let testPaths = Set(test.map(\.path))
        self.train = usable.filter { !testPaths.contains($0.path) }
        self.test = test
        self.problems = problems
        self.shortFileCount = short
        self.scannedFileCount = index.scanned
        self.cachedFileCount = index.reused
    }

    /// The files of one split.
    public func entries(_ split: Split) -> [Entry] {
        split == .train ? train : test
    }

    /// Mono samples `offset ..< offset + sampleLength` of `entry` at the dataset's rate.
    public func crop(_ entry: Entry, offset: Int) throws -> [Float] {
        try AudioFile.readWindow(entry.path, sampleRate: sampleRate, offset: offset, length: sampleLength)
    }

    /// Whether a split key belongs to the test split: FNV-1a-64 of its UTF-8 bytes, mod 10, is 0.
    public static func isTestKey(_ key: String) -> Bool {
        fnv1a(key) % 10 == 0
    }

    /// 64-bit FNV-1a of the UTF-8 bytes (stable across runs and machines, unlike `Hasher`).
    public static func fnv1a(_ string: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in string.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hash
    }

    /// Prints one line to stderr.
    static func report(_ message: String) {
        FileHandle.standardError.write(Data("jukebox: \(message)\n".utf8))
    }

    /// (absolute path, split key) of every candidate file, sorted by path and without
    /// duplicates. Missing list entries become problems; a missing source is an error.
    static func collect(_ sources: [String], problems: inout [String]) throws -> [(String, String)] {
        var found: [String: String] = [:]
        let manager = FileManager.default
        for source in sources {
            let root = URL(fileURLWithPath: source).standardizedFileURL
            var isFolder: ObjCBool = false
            guard manager.fileExists(atPath: root.path, isDirectory: &isFolder) else {
                throw AudioError.missing(path: source)
            }
            if isFolder.boolValue {
                let relativePaths = (manager.enumerator(atPath: root.path)?.allObjects as? [String]) ?? []
                for relative in relativePaths
                where audioExtensions.contains((relative as NSString).pathExtension.lowercased()) {
                    let path = root.appendingPathComponent(relative).path
                    var isSubfolder: ObjCBool = false
                    if manager.fileExists(atPath: path, isDirectory: &isSubfolder), !isSubfolder.boolValue {
                        found[path] = found[path] ?? relative
                    }
                }
            } else if ["txt", "lst", "list"].contains(root.pathExtension.lowercased()) {
                let text: String
                do { text = try String(contentsOfFile: root.path, encoding: .utf8) } catch {
                    throw AudioError.unreadable(path: source, reason: "cannot read the file list")
                }
                let folder = root.deletingLastPathComponent()
                for line in text.split(whereSeparator: \.isNewline) {
                    let entry = line.trimmingCharacters(in: .whitespaces)
                    if entry.isEmpty || entry.hasPrefix("#") { continue }
                    let url = entry.hasPrefix("/") ? URL(fileURLWithPath: entry)
                                                   : folder.appendingPathComponent(entry)
                    found[url.standardizedFileURL.path] = found[url.standardizedFileURL.path] ?? entry
                }
            } else {
                found[root.path] = found[root.path] ?? root.lastPathComponent
            }
        }
        return found.keys.sorted().map { ($0, found[$0]!) }
    }
}

/// The cached headers of a dataset's files, keyed by path, size and modification time.
struct AudioIndex {
    struct Record: Codable {
        var path: String
        var size: Int64
        var modified: Int64          // nanoseconds since 1970
        var sampleRate: Int
        var channels: Int
        var frames: Int
        var error: String?
    }

    struct File: Codable {
        var format = "jukebox-audio-index"
        var version = 1
        var files: [Record]
    }

    let path: String?
    private var records: [String: Record] = [:]
    private(set) var scanned = 0
    private(set) var reused = 0

    /// Loads the cache at `path` if there is a readable one.
    init(path: String?) {
        self.path = path
        guard let path, let data = FileManager.default.contents(atPath: path),
              let file = try? JSONDecoder().decode(File.self, from: data),
              file.format == "jukebox-audio-index", file.version == 1 else { return }
        for record in file.files { records[record.path] = record }
    }

    /// The header of `path`, from the cache when its size and mtime match, else by opening it.
    /// Failures are cached too, as their message.
    mutating func lookup(_ path: String) -> Result<AudioInfo, AudioError> {
        var status = stat()
        guard stat(path, &status) == 0 else { return .failure(.missing(path: path)) }
        let size = Int64(status.st_size)
        let modified = Int64(status.st_mtim.tv_sec) * 1_000_000_000 + Int64(status.st_mtim.tv_nsec)
        if let record = records[path], record.size == size, record.modified == modified {
            reused += 1
            if let error = record.error { return .failure(.unreadable(path: path, reason: error)) }
            return .success(AudioInfo(path: path, sampleRate: record.sampleRate, channels: record.channels,
                                      frames: record.frames))
        }
        scanned += 1
        do {
            let info = try AudioFile.info(path)
            records[path] = Record(path: path, size: size, modified: modified, sampleRate: info.sampleRate,
                                   channels: info.channels, frames: info.frames, error: nil)
            return .success(info)
        } catch let error as AudioError {
            // Keep the reason only: the description starts with the path, which is stored already.
            let text = error.description, prefix = "\(path): "
            let reason = text.hasPrefix(prefix) ? String(text.dropFirst(prefix.count)) : text
            records[path] = Record(path: path, size: size, modified: modified, sampleRate: 0, channels: 0,
                                   frames: 0, error: reason)
            return .failure(error)
        } catch {
            return .failure(.unreadable(path: path, reason: "\(error)"))
        }
    }

    /// Writes the cache atomically (creating the run folder), when it has a path.
    func save() throws {
        guard let path else { return }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(File(files: records.keys.sorted().map { records[$0]! }))
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
