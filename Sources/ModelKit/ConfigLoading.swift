// Strict JSON configs: a file lists only what differs from the defaults (the reference values),
// an unknown key is an error that names it, and a value of the wrong type names its key.
//
// Loading overlays the file's JSON object on the defaults' JSON (nested objects merge key by
// key), then decodes the Codable struct, then asks it to validate its invariants.

import Foundation

/// A configuration error, reported in one line that names the file and key.
public struct ConfigError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A config struct: Codable with snake_case keys, defaults in `init()`, and checks.
public protocol JukeboxConfig: Codable {
    init()
    /// Throws a ``ConfigError`` naming the key when a value cannot work.
    func validate() throws
}

extension JukeboxConfig {
    /// The defaults overlaid with the JSON object at `path`.
    public static func load(path: String) throws -> Self {
        guard FileManager.default.fileExists(atPath: path) else { throw ConfigError("\(path): no such config file") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError("\(path): cannot read the config file")
        }
        return try decode(data, source: path)
    }

    /// The top-level keys the config file at `path` states itself (the rest are defaults).
    public static func statedKeys(path: String) throws -> Set<String> {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError("\(path): cannot read the config file")
        }
        return Set(try jsonObject(data, source: path).keys)
    }

    /// The defaults overlaid with a JSON object (`source` names it in errors).
    public static func decode(_ data: Data, source: String) throws -> Self {
        let object = try jsonObject(data, source: source)
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let defaults = try JSONSerialization.jsonObject(with: encoder.encode(Self())) as! [String: Any]
        let merged = try merge(object, into: defaults, path: "", source: source)
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let config: Self
        do {
            config = try decoder.decode(Self.self, from: JSONSerialization.data(withJSONObject: merged))
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            let key = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw ConfigError("\(source): key '\(key)' has a value of the wrong type")
        } catch let DecodingError.dataCorrupted(context) {
            let key = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw ConfigError("\(source): " + (key.isEmpty ? "a value" : "key '\(key)'")
                              + " does not fit its type (a whole number out of range, or a fraction where a whole number belongs)")
        } catch {
            throw ConfigError("\(source): \(error)")
        }
        do {
            try config.validate()
        } catch let e as ConfigError {
            throw ConfigError("\(source): \(e.message)")
        }
        return config
    }

    /// The config as pretty JSON with snake_case keys (stored in checkpoints).
    public func jsonString() -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try! encoder.encode(self), as: UTF8.self)
    }

    /// The keys (dotted, e.g. `train.learning_rate`) whose values differ between the two
    /// configs, sorted.
    public func differences(from other: Self) -> [String] {
        // jsonString() is our own encoder's output of a keyed struct: always a JSON object.
        func object(_ config: Self) -> [String: Any] {
            try! JSONSerialization.jsonObject(with: Data(config.jsonString().utf8)) as! [String: Any]
        }
        func compare(_ a: [String: Any], _ b: [String: Any], _ path: String) -> [String] {
            Set(a.keys).union(b.keys).sorted().flatMap { key -> [String] in
                let full = path.isEmpty ? key : path + "." + key
                if let x = a[key] as? [String: Any], let y = b[key] as? [String: Any] { return compare(x, y, full) }
                let same = a[key].map { NSDictionary(dictionary: ["v": $0]) } == b[key].map { NSDictionary(dictionary: ["v": $0]) }
                return same ? [] : [full]
            }
        }
        return compare(object(self), object(other), "")
    }

    /// Throws unless `given` (the config a resumed run was started with again) equals the
    /// run's own `saved` config, apart from the comment and the step budget.
    public static func checkResume(given: Self, saved: Self, run: String) throws {
        let changed = given.differences(from: saved).filter { $0 != "comment" && $0 != "train.steps" }
        guard changed.isEmpty else {
            throw ConfigError("\(run): the run was started with another config (differs in \(changed.joined(separator: ", "))); "
                              + "resume with the config it started with (\(run)/config.json) and the same flags")
        }
    }

    private static func jsonObject(_ data: Data, source: String) throws -> [String: Any] {
        let overlay: Any
        do {
            overlay = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw ConfigError("\(source): not valid JSON (\(error.localizedDescription))")
        }
        guard let object = overlay as? [String: Any] else {
            throw ConfigError("\(source): the config must be a JSON object")
        }
        return object
    }

    private static func merge(_ overlay: [String: Any], into base: [String: Any], path: String,
                              source: String) throws -> [String: Any] {
        var out = base
        for (key, value) in overlay {
            let full = path.isEmpty ? key : path + "." + key
            guard let existing = base[key] else {
                let known = base.keys.sorted().joined(separator: ", ")
                throw ConfigError("\(source): unknown key '\(full)' (known keys: \(known))")
            }
            if let inner = value as? [String: Any], let baseInner = existing as? [String: Any] {
                out[key] = try merge(inner, into: baseInner, path: full, source: source)
            } else {
                out[key] = value
            }
        }
        return out
    }
}
