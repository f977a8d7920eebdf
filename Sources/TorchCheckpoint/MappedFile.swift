// The bytes of a checkpoint, memory-mapped read-only for as long as anything refers to them.
//
// A released prior is 3.8 to 11.5 GB: it is never read into memory. The reader parses the
// pickle and the zip directory from the mapping, and every tensor keeps a reference to the
// mapping, so its values are used where they lie (F16 weights go straight to the kernels)
// and the pages are read only when touched.

import Foundation

/// A file's bytes, mapped read-only (or, for tests and fuzzing, a private copy of some bytes).
/// The mapping is released when the last reference goes.
public final class MappedFile: @unchecked Sendable {
    /// Every byte of the file. Valid for the lifetime of this object.
    public let bytes: UnsafeRawBufferPointer
    /// The file, as given (or the name given to in-memory bytes), for error messages.
    public let path: String
    private let isMapped: Bool

    /// Maps the regular file at `path`. Throws a ``TorchCheckpointError`` of kind `fileAccess`
    /// when it cannot be opened, is not a regular file, or cannot be mapped.
    public init(path: String) throws {
        func failure(_ reason: String) -> TorchCheckpointError { TorchCheckpointError(.fileAccess, path: path, reason) }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw failure("cannot open: \(lastOSError())") }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw failure("cannot read the file size: \(lastOSError())") }
        guard status.st_mode & S_IFMT == S_IFREG else { throw failure("not a regular file") }
        let size = Int(status.st_size)
        self.path = path
        guard size > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            isMapped = false
            return
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0), base != MAP_FAILED else {
            throw failure("cannot map into memory: \(lastOSError())")
        }
        bytes = UnsafeRawBufferPointer(start: base, count: size)
        isMapped = true
    }

    /// A private copy of `data`, read as if it were the file `name`.
    public init(copying data: Data, name: String) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(data.count, 1), alignment: 64)
        data.copyBytes(to: buffer.bindMemory(to: UInt8.self), count: data.count)
        bytes = UnsafeRawBufferPointer(start: buffer.baseAddress, count: data.count)
        path = name
        isMapped = false
    }

    deinit {
        guard let base = bytes.baseAddress else { return }
        if isMapped {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        } else {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        }
    }
}

/// The current `errno` as text.
private func lastOSError() -> String { String(cString: strerror(errno)) }
