// Artist and genre labels: vocabularies built from the training data (saved in checkpoints), and
// per-file labels from a JSON or CSV file or from folder names (`data/ARTIST/...`).
//
// Names are normalised as Jukebox's v2 labels are: lower case, every run of characters other
// than letters and digits becomes one '_', leading and trailing '_' removed.

import Foundation
import ModelKit

/// The labels the model knows, "unknown" first (id 0).
public struct LabelVocabulary: Codable, Equatable, Sendable {
    public var artists: [String]
    public var genres: [String]

    public static let unknown = "unknown"

    public init(artists: [String] = [], genres: [String] = []) {
        self.artists = [LabelVocabulary.unknown] + artists.filter { $0 != LabelVocabulary.unknown }
        self.genres = [LabelVocabulary.unknown] + genres.filter { $0 != LabelVocabulary.unknown }
    }

    /// Id of an artist; unknown names are an error listing the known ones.
    public func artistID(_ name: String) throws -> Int32 {
        let n = normalizeLabel(name)
        guard let i = artists.firstIndex(of: n) else {
            throw ConfigError("unknown artist '\(name)'; the model knows: \(artists.joined(separator: ", "))")
        }
        return Int32(i)
    }

    /// Id of a genre; unknown names are an error listing the known ones.
    public func genreID(_ name: String) throws -> Int32 {
        let n = normalizeLabel(name)
        guard let i = genres.firstIndex(of: n) else {
            throw ConfigError("unknown genre '\(name)'; the model knows: \(genres.joined(separator: ", "))")
        }
        return Int32(i)
    }

    /// As JSON for checkpoint metadata, keys sorted so that the same labels give the same bytes.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try! encoder.encode(self), as: UTF8.self)
    }
}

/// Lower case, runs of non-alphanumerics → '_', trimmed.
public func normalizeLabel(_ s: String) -> String {
    var out = ""
    var lastUnderscore = true
    for ch in s.lowercased() {
        if ch.isLetter || ch.isNumber {
            out.append(ch)
            lastUnderscore = false
        } else if !lastUnderscore {
            out.append("_")
            lastUnderscore = true
        }
    }
    while out.hasSuffix("_") { out.removeLast() }
    return out.isEmpty ? LabelVocabulary.unknown : out
}

/// The labels of one file.
public struct FileLabels: Equatable, Sendable {
    public var artist: String
    public var genres: [String]

    public init(artist: String, genres: [String]) {
        self.artist = normalizeLabel(artist)
        self.genres = genres.map(normalizeLabel)
    }
}

/// Labels for the files of a dataset.
public struct LabelTable {
    /// By file name (last path component) and by full path.
    var byKey: [String: FileLabels] = [:]

    /// Reads `--labels`: a JSON object `{"FILE": {"artist": "...", "genre": "..." | ["...", ...]}}`
    /// or a CSV file with a header `path,artist,genre` (genres separated by ';'). FILE may be a
    /// path or a file name.
    public static func load(_ path: String) throws -> LabelTable {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError("\(path): cannot read the labels file")
        }
        var table = LabelTable()
        if path.lowercased().hasSuffix(".json") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
                throw ConfigError("\(path): labels JSON must be an object mapping files to {\"artist\": …, \"genre\": …}")
            }
            for (file, value) in object {
                guard let entry = value as? [String: Any] else { throw ConfigError("\(path): entry '\(file)' is not an object") }
                let artist = entry["artist"] as? String ?? LabelVocabulary.unknown
                let genres: [String]
                if let g = entry["genre"] as? String { genres = [g] } else { genres = entry["genre"] as? [String] ?? entry["genres"] as? [String] ?? [] }
                table.byKey[file] = FileLabels(artist: artist, genres: genres)
            }
        } else {
            let lines = text.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
            guard let header = lines.first?.lowercased().split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }),
                  let pathColumn = header.firstIndex(of: "path") ?? header.firstIndex(of: "file"),
                  let artistColumn = header.firstIndex(of: "artist") else {
                throw ConfigError("\(path): labels CSV needs a header line with 'path' and 'artist' (and optionally 'genre') columns")
            }
            let genreColumn = header.firstIndex(of: "genre") ?? header.firstIndex(of: "genres")
            for (n, line) in lines.dropFirst().enumerated() {
                let fields = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
                guard fields.count > Swift.max(pathColumn, artistColumn) else {
                    throw ConfigError("\(path): line \(n + 2) has \(fields.count) fields")
                }
                let genres = genreColumn.flatMap { $0 < fields.count ? fields[$0].split(separator: ";").map(String.init) : nil } ?? []
                table.byKey[fields[pathColumn]] = FileLabels(artist: fields[artistColumn], genres: genres)
            }
        }
        return table
    }

    /// Labels from folder names: a file under `ROOT/ARTIST/...` gets artist ARTIST; a file
    /// directly in a data folder, or given on its own, is "unknown". No genres.
    public static func fromFolders(files: [String], roots: [String]) -> LabelTable {
        var table = LabelTable()
        for file in files {
            var artist = LabelVocabulary.unknown
            for root in roots {
                let prefix = root.hasSuffix("/") ? root : root + "/"
                if file.hasPrefix(prefix) {
                    let rest = file.dropFirst(prefix.count).split(separator: "/")
                    if rest.count > 1 { artist = String(rest[0]) }
                }
            }
            table.byKey[file] = FileLabels(artist: artist, genres: [])
        }
        return table
    }

    /// The labels of `file` (looked up by full path, then by name); unlabelled files are unknown.
    public func labels(for file: String) -> FileLabels {
        byKey[file] ?? byKey[URL(fileURLWithPath: file).lastPathComponent] ?? FileLabels(artist: LabelVocabulary.unknown, genres: [])
    }

    /// A vocabulary of every label used by `files`, sorted for determinism.
    public func vocabulary(for files: [String]) -> LabelVocabulary {
        let labels = files.map { self.labels(for: $0) }
        return LabelVocabulary(artists: Array(Set(labels.map(\.artist))).sorted(),
                               genres: Array(Set(labels.flatMap(\.genres))).sorted())
    }
}
