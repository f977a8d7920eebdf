// Files and folders as the file system knows them. A command must not write over one of its
// own inputs, and `./a.wav`, `dir/../a.wav`, a symbolic link and a hard link to the same file
// all name it: paths are compared by device and inode, never by their text. And an output
// folder is made (or found writable) before any work, with the system's reason when it cannot
// be.

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

/// Output folders.
public enum OutputFolder {
    /// Creates `path` and its parents if needed, and checks that files can be written in it;
    /// an error names the path and gives the system's reason.
    public static func prepare(_ path: String) throws {
        let folder = path.isEmpty ? "." : path
        try create(folder)
        guard access(folder, W_OK | X_OK) == 0 else {
            throw ConfigError("\(folder): cannot write in this folder (\(String(cString: strerror(errno))))")
        }
    }

    private static func create(_ path: String) throws {
        var info = stat()
        if stat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFDIR else { throw ConfigError("\(path): is a file, not a folder") }
            return
        }
        let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
        if parent != path && !parent.isEmpty { try create(parent) }
        if mkdir(path, 0o755) != 0 && errno != EEXIST {
            throw ConfigError("\(path): cannot create the folder (\(String(cString: strerror(errno))))")
        }
    }
}
