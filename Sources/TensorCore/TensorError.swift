// Errors from loading and validating tensors: each names the tensor or file and what is wrong.

import Foundation

/// A problem with stored tensors, reported to the user in one line.
public enum TensorError: Error, CustomStringConvertible, Equatable {
    case missingTensor(String)
    case unexpectedTensor(String)
    case shapeMismatch(name: String, expected: [Int], found: [Int])
    case invalidFile(path: String, reason: String)
    /// A tensor is stored with a different element type than the caller asked for.
    case dtypeMismatch(name: String, expected: String, found: String)
    /// The operating system refused to open, read, write or rename a file.
    case fileAccess(path: String, reason: String)

    public var description: String {
        switch self {
        case .missingTensor(let name): "tensor '\(name)' is missing"
        case .unexpectedTensor(let name): "unexpected tensor '\(name)'"
        case .shapeMismatch(let name, let expected, let found):
            "tensor '\(name)' has shape \(found), expected \(expected)"
        case .invalidFile(let path, let reason): "\(path): \(reason)"
        case .dtypeMismatch(let name, let expected, let found):
            "tensor '\(name)' is stored as \(found), expected \(expected)"
        case .fileAccess(let path, let reason): "\(path): \(reason)"
        }
    }
}
