// The one error type of the PyTorch checkpoint reader: every problem with a file, from a
// missing file to a refused pickle opcode, is one line that names the file and, where it
// applies, the byte offset in the file where the problem was found.

/// Why a PyTorch checkpoint could not be read.
public struct TorchCheckpointError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The broad reason, for callers that react differently (tests, the command line).
    public enum Kind: Sendable {
        /// The file cannot be opened or mapped.
        case fileAccess
        /// The file breaks the format: truncated, inconsistent, or a size out of bounds.
        case malformed
        /// The pickle asks for an opcode, a global or a call that this reader never runs.
        case refused
    }

    /// The broad reason.
    public var kind: Kind
    /// The file, as given by the caller.
    public var path: String
    /// Byte offset in the file where the problem was found, when there is one.
    public var offset: Int?
    /// What is wrong, in one line.
    public var reason: String

    /// An error about the file at `path`, found at byte `offset` when there is one.
    public init(_ kind: Kind, path: String, offset: Int? = nil, _ reason: String) {
        self.kind = kind
        self.path = path
        self.offset = offset
        self.reason = reason
    }

    /// One line: the file, the offset when known, and the reason.
    public var description: String {
        if let offset { return "\(path): offset \(offset): \(reason)" }
        return "\(path): \(reason)"
    }
}
