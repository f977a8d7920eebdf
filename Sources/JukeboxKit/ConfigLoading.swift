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

    /// The defaults overlaid with a JSON object (`source` names it in errors).
    public static func decode(_ data: Data, source: String) throws -> Self {
        let overlay: Any
        do {
            overlay = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw ConfigError("\(source): not valid JSON (\(error.localizedDescription))")
        }
        guard let object = overlay as? [String: Any] else {
            throw ConfigError("\(source): the config must be a JSON object")
        }
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
