// Errors from reading, writing and analysing audio; each names the file and the problem.

import Foundation

/// A problem with an audio file or signal, reported to the user in one line.
public enum AudioError: Error, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case unwritable(path: String, reason: String)
    case invalidSignal(String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): "\(path): \(reason)"
        case .unwritable(let path, let reason): "\(path): \(reason)"
        case .invalidSignal(let reason): reason
        }
    }
}
