// Which file a path names, as the file system knows it: a command must not write over one of
// its own inputs, and `./a.wav`, `dir/../a.wav`, a symbolic link and a hard link to the same
// file all name it. Paths are compared by device and inode, never by their text.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file's device and inode (symbolic links followed).
public struct FileIdentity: Hashable, Sendable {
    public let device: UInt64
    public let inode: UInt64

    /// The identity of the file at `path`, or nil when nothing is there.
    public init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
    }

    /// The first of `outputs` that is the same existing file as one of `inputs`, with that
    /// input. Outputs that do not exist yet clash with nothing.
    public static func clash(outputs: [String], inputs: [String]) -> (output: String, input: String)? {
        let known = inputs.compactMap { path in FileIdentity(path: path).map { (id: $0, path: path) } }
        for output in outputs {
            guard let id = FileIdentity(path: output) else { continue }
            if let hit = known.first(where: { $0.id == id }) { return (output, hit.path) }
        }
        return nil
    }
}
