// The zip container of torch.save since torch 1.6: stored (uncompressed) entries under one
// top folder, found through the central directory at the end of the file.
//
// Layout read here (all integers little-endian; APPNOTE.TXT of PKWARE):
//   local header   "PK\3\4", 26 bytes of fields, name, extra; then the entry's bytes
//   …
//   central dir    per entry "PK\1\2", 42 bytes of fields, name, extra, comment
//   [zip64 end record "PK\6\6" and locator "PK\6\7", when a count or offset needs 64 bits]
//   end record     "PK\5\6", 18 bytes of fields, comment
// A 32-bit size or offset of 0xFFFFFFFF means the real value is in the entry's zip64 extra
// field (id 1). Only stored entries (method 0) are accepted, which is what torch writes, so
// every tensor's bytes lie in the file as they are and are used from the mapping.

/// One entry of the zip's central directory, located in the file.
struct ZipEntry {
    let name: String
    /// Where the entry's bytes start in the file (after its local header).
    let dataOffset: Int
    let size: Int
}

/// Reads the central directory of a zip file mapped in memory.
struct ZipDirectory {
    /// Every entry, by name.
    private(set) var entries: [String: ZipEntry] = [:]

    private let file: MappedFile
    private var bytes: UnsafeRawBufferPointer { file.bytes }

    init(file: MappedFile) throws {
        self.file = file
        let (count, directoryOffset, directorySize) = try endOfDirectory()
        try readDirectory(count: count, offset: directoryOffset, size: directorySize)
    }

    private func malformed(_ offset: Int?, _ reason: String) -> TorchCheckpointError {
        TorchCheckpointError(.malformed, path: file.path, offset: offset, reason)
    }

    private func uint(_ offset: Int, _ count: Int) -> Int {
        var value = 0
        for i in 0 ..< count { value |= Int(bytes[offset + i]) << (8 * i) }
        return value
    }

    /// A 64-bit field, refused when it does not fit in Int.
    private func uint64(_ offset: Int) throws -> Int {
        guard bytes[offset + 7] & 0x80 == 0 else { throw malformed(offset, "a zip64 size or offset is larger than 2^63") }
        return uint(offset, 8)
    }

    /// The entry count, offset and size of the central directory, from the end record (and
    /// the zip64 end record when there is one).
    private func endOfDirectory() throws -> (count: Int, offset: Int, size: Int) {
        // The end record is 22 bytes plus a comment of at most 65535: search back for the
        // signature whose comment length reaches exactly the end of the file.
        let length = bytes.count
        guard length >= 22 else { throw malformed(nil, "the file is \(length) bytes, too short for a zip") }
        var end = -1
        var candidate = length - 22
        while candidate >= max(0, length - 22 - 65535) {
            if uint(candidate, 4) == 0x0605_4b50, candidate + 22 + uint(candidate + 20, 2) == length {
                end = candidate
                break
            }
            candidate -= 1
        }
        guard end >= 0 else {
            throw malformed(nil, "no zip end record in the last 64 KB: the file is truncated (a zip's directory is at its end)")
        }
        guard uint(end + 4, 2) == 0, uint(end + 6, 2) == 0 else { throw malformed(end, "a zip split over several disks") }
        var count = uint(end + 10, 2), size = uint(end + 12, 4), offset = uint(end + 16, 4)

        // A zip64 locator sits just before the end record.
        if end >= 20, uint(end - 20, 4) == 0x0706_4b50 {
            let locator = end - 20
            let record = try uint64(locator + 8)
            guard record <= length - 56, uint(record, 4) == 0x0606_4b50 else {
                throw malformed(locator, "the zip64 locator points at \(record), where there is no zip64 end record")
            }
            count = try uint64(record + 32)
            size = try uint64(record + 40)
            offset = try uint64(record + 48)
        } else if count == 0xffff || size == 0xffff_ffff || offset == 0xffff_ffff {
            throw malformed(end, "the zip end record asks for zip64 values, but there is no zip64 locator")
        }
        guard offset <= length, size <= length - offset else {
            throw malformed(end, "the zip directory (\(size) bytes at \(offset)) runs past the end of the \(length)-byte file")
        }
        guard count <= size / 46 else {
            throw malformed(end, "\(count) zip entries cannot fit in a \(size)-byte directory")
        }
        return (count, offset, size)
    }

    private mutating func readDirectory(count: Int, offset start: Int, size: Int) throws {
        var position = start
        let end = start + size
        for _ in 0 ..< count {
            guard end - position >= 46, uint(position, 4) == 0x0201_4b50 else {
                throw malformed(position, "expected a zip central directory entry")
            }
            let flags = uint(position + 8, 2), method = uint(position + 10, 2)
            var compressed = uint(position + 20, 4), size = uint(position + 24, 4)
            let nameLength = uint(position + 28, 2), extraLength = uint(position + 30, 2)
            let commentLength = uint(position + 32, 2)
            var local = uint(position + 42, 4)
            let nameStart = position + 46
            guard end - nameStart >= nameLength + extraLength + commentLength else {
                throw malformed(position, "a zip entry's name and extra fields run past the directory")
            }
            guard let name = String(validating: UnsafeRawBufferPointer(rebasing: bytes[nameStart ..< nameStart + nameLength]),
                                    as: UTF8.self) else {
                throw malformed(nameStart, "a zip entry's name is not UTF-8")
            }
            let shown = printable(name)

            // Zip64: the saturated fields, in this order, follow in extra field 1.
            if size == 0xffff_ffff || compressed == 0xffff_ffff || local == 0xffff_ffff {
                var field = try zip64Field(at: nameStart + nameLength, length: extraLength, entry: shown)
                func next() throws -> Int {
                    guard field.count >= 8 else { throw malformed(position, "zip entry '\(shown)': its zip64 extra field is too short") }
                    defer { field = field.dropFirst(8) }
                    return try uint64(field.lowerBound)
                }
                if size == 0xffff_ffff { size = try next() }
                if compressed == 0xffff_ffff { compressed = try next() }
                if local == 0xffff_ffff { local = try next() }
            }
            guard flags & 1 == 0 else { throw malformed(position, "zip entry '\(shown)' is encrypted") }
            guard method == 0, compressed == size else {
                throw malformed(position, "zip entry '\(shown)' is compressed (method \(method)); torch writes stored "
                                + "entries only: load and save it again with torch.save")
            }
            let dataOffset = try localData(at: local, name: name, size: size)
            guard entries[name] == nil else { throw malformed(position, "two zip entries are named '\(shown)'") }
            entries[name] = ZipEntry(name: name, dataOffset: dataOffset, size: size)
            position = nameStart + nameLength + extraLength + commentLength
        }
    }

    /// The byte range of extra field 1 (zip64) among the extra fields at `start`.
    private func zip64Field(at start: Int, length: Int, entry: String) throws -> Range<Int> {
        var position = start
        while length - (position - start) >= 4 {
            let id = uint(position, 2), fieldLength = uint(position + 2, 2)
            guard length - (position - start) - 4 >= fieldLength else { break }
            if id == 1 { return position + 4 ..< position + 4 + fieldLength }
            position += 4 + fieldLength
        }
        throw malformed(start, "zip entry '\(entry)' needs a zip64 extra field and has none")
    }

    /// Checks the local header at `offset` and returns where the entry's data starts.
    private func localData(at offset: Int, name: String, size: Int) throws -> Int {
        let shown = printable(name)
        guard offset <= bytes.count - 30, uint(offset, 4) == 0x0403_4b50 else {
            throw malformed(offset, "zip entry '\(shown)': no local header where the directory says")
        }
        let nameLength = uint(offset + 26, 2), extraLength = uint(offset + 28, 2)
        let dataOffset = offset + 30 + nameLength + extraLength
        guard dataOffset <= bytes.count, size <= bytes.count - dataOffset else {
            throw malformed(offset, "zip entry '\(shown)' (\(size) bytes) runs past the end of the file; the file is truncated")
        }
        guard nameLength == name.utf8.count,
              UnsafeRawBufferPointer(rebasing: bytes[offset + 30 ..< offset + 30 + nameLength]).elementsEqual(name.utf8) else {
            throw malformed(offset, "zip entry '\(shown)': the local header names another entry")
        }
        return dataOffset
    }
}
