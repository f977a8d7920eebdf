// Reading and writing safetensors files, the format of every checkpoint and code file.
//
// Layout:
//   bytes 0..<8        header length N, unsigned 64-bit little-endian
//   bytes 8..<8+N      UTF-8 JSON object, possibly padded with trailing spaces:
//                        {"__metadata__": {"key": "value", ...},
//                         "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
//   bytes 8+N..<end    data section; a tensor's bytes are begin..<end relative to its start,
//                      little-endian and row-major.
//
// Reading maps the file (or, for the header alone, touches only its first pages) and converts
// each tensor straight from the mapping into its final storage, so a large checkpoint is
// copied once. Every header field is checked before any data is touched: a corrupted or
// hostile file produces a `TensorError` that names the problem, never a crash.
//
// Writing lays the data out in the order given, with a header whose bytes depend only on the
// input, into a temporary file that replaces the destination only once it is complete and
// flushed to disk.

import Foundation

#if _endian(big)
#error("safetensors data is little-endian and is copied as is; a big-endian host needs byte swaps")
#endif

/// Element types of tensors in a safetensors file that jukebox reads and writes.
public enum SafetensorsDType: String, CaseIterable, Sendable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", i16 = "I16", i32 = "I32", i64 = "I64", u8 = "U8"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .u8: 1
        case .f16, .bf16, .i16: 2
        case .f32, .i32: 4
        case .i64: 8
        }
    }

    /// Whether values of this type load as a Float32 ``Tensor``.
    public var isFloat: Bool { self == .f32 || self == .f16 || self == .bf16 }
}

/// The values of one tensor, as loaded from or written to a safetensors file. Floating-point
/// tensors (F32, F16, BF16 on disk) are Float32 ``Tensor``s in memory; integer tensors keep
/// their element type.
public enum StoredTensor {
    case float(Tensor)
    case int16([Int16], shape: [Int])
    case int32([Int32], shape: [Int])
    case int64([Int64], shape: [Int])
    case uint8([UInt8], shape: [Int])

    /// The extent of each dimension, outermost first.
    public var shape: [Int] {
        switch self {
        case .float(let tensor): tensor.shape
        case .int16(_, let shape), .int32(_, let shape), .int64(_, let shape), .uint8(_, let shape): shape
        }
    }

    /// The element type in memory (F32 for every float tensor, whatever it was stored as).
    public var dtype: SafetensorsDType {
        switch self {
        case .float: .f32
        case .int16: .i16
        case .int32: .i32
        case .int64: .i64
        case .uint8: .u8
        }
    }

    /// Number of values.
    var count: Int {
        switch self {
        case .float(let tensor): tensor.count
        case .int16(let values, _): values.count
        case .int32(let values, _): values.count
        case .int64(let values, _): values.count
        case .uint8(let values, _): values.count
        }
    }
}

/// One tensor as a safetensors header describes it.
public struct SafetensorsEntry: Equatable, Sendable {
    public var name: String
    /// The element type on disk.
    public var dtype: SafetensorsDType
    public var shape: [Int]
    /// Where the tensor's bytes lie, relative to the start of the data section.
    public var byteRange: Range<Int>
}

/// A validated safetensors header: metadata and tensor descriptions, without tensor data.
public struct SafetensorsHeader {
    /// The `__metadata__` object (empty when the file has none).
    public var metadata: [String: String]
    /// Every tensor, in the order of its data in the file.
    public var entries: [SafetensorsEntry]
    /// File offset of the data section: 8 plus the header length.
    public var dataStart: Int
}

/// The whole content of a safetensors file.
public struct SafetensorsFile {
    /// The `__metadata__` object (empty when the file has none).
    public var metadata: [String: String]
    /// Every tensor as described on disk (with its stored dtype), in the order of its data.
    public var entries: [SafetensorsEntry]
    /// The values, by name.
    public var tensors: [String: StoredTensor]

    /// The float tensor `name` (stored as F32, F16 or BF16), as Float32.
    /// Throws ``TensorError/missingTensor(_:)`` or ``TensorError/dtypeMismatch(name:expected:found:)``.
    public func float(_ name: String) throws -> Tensor {
        let value = try stored(name)
        guard case .float(let tensor) = value else { throw mismatch(name, value, expected: "F32, F16 or BF16") }
        return tensor
    }

    /// The I16 tensor `name` with its shape (row-major values). Throws as ``float(_:)`` does.
    public func int16(_ name: String) throws -> (values: [Int16], shape: [Int]) {
        let value = try stored(name)
        guard case .int16(let values, let shape) = value else { throw mismatch(name, value, expected: "I16") }
        return (values, shape)
    }

    /// The I32 tensor `name` with its shape (row-major values). Throws as ``float(_:)`` does.
    public func int32(_ name: String) throws -> (values: [Int32], shape: [Int]) {
        let value = try stored(name)
        guard case .int32(let values, let shape) = value else { throw mismatch(name, value, expected: "I32") }
        return (values, shape)
    }

    /// The I64 tensor `name` with its shape (row-major values). Throws as ``float(_:)`` does.
    public func int64(_ name: String) throws -> (values: [Int64], shape: [Int]) {
        let value = try stored(name)
        guard case .int64(let values, let shape) = value else { throw mismatch(name, value, expected: "I64") }
        return (values, shape)
    }

    /// The U8 tensor `name` with its shape (row-major values). Throws as ``float(_:)`` does.
    public func uint8(_ name: String) throws -> (values: [UInt8], shape: [Int]) {
        let value = try stored(name)
        guard case .uint8(let values, let shape) = value else { throw mismatch(name, value, expected: "U8") }
        return (values, shape)
    }

    private func stored(_ name: String) throws -> StoredTensor {
        guard let value = tensors[name] else { throw TensorError.missingTensor(name) }
        return value
    }

    /// The error for a tensor of the wrong kind, naming its dtype on disk (F16 rather than F32).
    private func mismatch(_ name: String, _ value: StoredTensor, expected: String) -> TensorError {
        let found = entries.first { $0.name == name }?.dtype ?? value.dtype
        return .dtypeMismatch(name: name, expected: expected, found: found.rawValue)
    }
}

/// Reads and writes safetensors files (see the format at the top of `Safetensors.swift`).
public enum Safetensors {
    /// The largest header accepted, as in the reference implementation: a longer one means a
    /// corrupted length field or a file that is not safetensors at all.
    public static let maxHeaderBytes = 100_000_000

    /// Loads every tensor of the file at `path`. F16 and BF16 tensors are converted to Float32.
    /// Throws ``TensorError/invalidFile(path:reason:)`` naming the problem when the file is not
    /// valid safetensors, and ``TensorError/fileAccess(path:reason:)`` when it cannot be opened.
    public static func read(path: String) throws -> SafetensorsFile {
        try withMappedFile(path: path) { file in
            let header = try parseHeader(file, path: path)
            var tensors: [String: StoredTensor] = [:]
            tensors.reserveCapacity(header.entries.count)
            for entry in header.entries {
                let start = header.dataStart + entry.byteRange.lowerBound
                let bytes = UnsafeRawBufferPointer(rebasing: file[start ..< start + entry.byteRange.count])
                tensors[entry.name] = decode(bytes, dtype: entry.dtype, shape: entry.shape)
            }
            return SafetensorsFile(metadata: header.metadata, entries: header.entries, tensors: tensors)
        }
    }

    /// The validated header of the file at `path`, reading only the header's bytes (for
    /// `jukebox info` and for checks before a full load). Throws as ``read(path:)`` does.
    public static func readHeader(path: String) throws -> SafetensorsHeader {
        try withMappedFile(path: path) { try parseHeader($0, path: path) }
    }

    /// Writes `tensors`, in the order given, and `metadata` to `path`, atomically: the file at
    /// `path` is either left as it was or replaced by the complete new file.
    ///
    /// A float tensor may be stored as F32 (exact), F16 or BF16 (rounded to nearest even;
    /// F16 overflows to infinity beyond 65504); an integer tensor is stored as its own dtype.
    /// The same arguments always produce the same bytes.
    public static func write(path: String,
                             tensors: [(name: String, value: StoredTensor, storeAs: SafetensorsDType)],
                             metadata: [String: String] = [:]) throws {
        // Check every argument before creating anything, so a bad one leaves no file behind.
        let entries = try layout(tensors, path: path)
        var header = Array(headerJSON(entries, metadata: metadata).utf8)
        // Pad so the data section starts 8-byte aligned, letting readers map values in place.
        header += repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8)

        let temporary = temporaryPath(for: path)
        let file = try OutputFile(creating: temporary)
        do {
            try withUnsafeBytes(of: UInt64(header.count).littleEndian) { try file.append($0) }
            try header.withUnsafeBytes { try file.append($0) }
            for tensor in tensors { try appendData(of: tensor.value, as: tensor.storeAs, to: file) }
            try file.closeAfterSync()
            guard rename(temporary, path) == 0 else {
                throw TensorError.fileAccess(path: path, reason: "cannot replace with '\(temporary)': \(lastOSError())")
            }
        } catch {
            file.closeIfOpen()
            unlink(temporary)
            throw error
        }
        syncDirectory(containing: path)
    }

    /// Writes the float tensors described by `layout` (names, shapes and on-disk float dtypes,
    /// in file order) to `path` atomically, asking `tensor(i)` for the values of entry i only
    /// when its turn comes: peak memory is one tensor, whatever the file's size. Each returned
    /// tensor must have its entry's shape.
    public static func write(path: String, layout: [(name: String, shape: [Int], storeAs: SafetensorsDType)],
                             metadata: [String: String] = [:], tensor: (Int) throws -> Tensor) throws {
        func bad(_ reason: String) -> TensorError { .invalidFile(path: path, reason: "cannot write: \(reason)") }
        var entries: [SafetensorsEntry] = []
        var names: Set<String> = []
        var offset = 0
        for (name, shape, storeAs) in layout {
            guard name != "__metadata__" else { throw bad("'__metadata__' is reserved and cannot name a tensor") }
            guard names.insert(name).inserted else { throw bad("two tensors are named '\(name)'") }
            guard storeAs.isFloat, let byteCount = byteCount(shape: shape, dtype: storeAs) else {
                throw bad("tensor '\(name)' of shape \(shape) cannot be stored as \(storeAs.rawValue)")
            }
            entries.append(SafetensorsEntry(name: name, dtype: storeAs, shape: shape, byteRange: offset ..< offset + byteCount))
            offset += byteCount
        }
        var header = Array(headerJSON(entries, metadata: metadata).utf8)
        header += repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8)
        let temporary = temporaryPath(for: path)
        let file = try OutputFile(creating: temporary)
        do {
            try withUnsafeBytes(of: UInt64(header.count).littleEndian) { try file.append($0) }
            try header.withUnsafeBytes { try file.append($0) }
            for (i, entry) in entries.enumerated() {
                let values = try tensor(i)
                guard values.shape == entry.shape else {
                    throw bad("tensor '\(entry.name)' has shape \(values.shape), its header entry \(entry.shape)")
                }
                try appendData(of: .float(values), as: entry.dtype, to: file)
            }
            try file.closeAfterSync()
            guard rename(temporary, path) == 0 else {
                throw TensorError.fileAccess(path: path, reason: "cannot replace with '\(temporary)': \(lastOSError())")
            }
        } catch {
            file.closeIfOpen()
            unlink(temporary)
            throw error
        }
        syncDirectory(containing: path)
    }

    // MARK: Reading

    /// Validates the header at the start of `file`, the whole file's bytes.
    static func parseHeader(_ file: UnsafeRawBufferPointer, path: String) throws -> SafetensorsHeader {
        func invalid(_ reason: String) -> TensorError { .invalidFile(path: path, reason: reason) }

        guard file.count >= 8 else {
            throw invalid("file is \(file.count) bytes, shorter than the 8-byte header length of a safetensors file")
        }
        let declaredLength = UInt64(littleEndian: file.loadUnaligned(as: UInt64.self))
        guard declaredLength <= UInt64(maxHeaderBytes) else {
            throw invalid("header length \(declaredLength) exceeds the \(maxHeaderBytes)-byte limit; "
                          + "the file is corrupted or not safetensors")
        }
        let headerLength = Int(declaredLength)
        guard headerLength <= file.count - 8 else {
            throw invalid("header length \(headerLength) is larger than the \(file.count - 8) bytes "
                          + "that follow it; the file is truncated")
        }
        let dataStart = 8 + headerLength
        let dataSize = file.count - dataStart

        let headerBytes = UnsafeRawBufferPointer(rebasing: file[8 ..< dataStart])
        guard String(validating: headerBytes, as: UTF8.self) != nil else { throw invalid("header is not valid UTF-8") }
        let root: JSONValue
        // JSONDecoder refuses nesting deeper than 512 levels, which also bounds the recursion
        // of `JSONValue`: a hostile header cannot exhaust the stack.
        do {
            root = try JSONDecoder().decode(JSONValue.self, from: Data(headerBytes))
        } catch {
            throw invalid("header (\(headerLength) bytes) is not valid JSON")
        }
        guard case .object(let fields) = root else { throw invalid("header is not a JSON object") }

        var metadata: [String: String] = [:]
        var entries: [SafetensorsEntry] = []
        for (key, value) in fields {
            if key == "__metadata__" {
                metadata = try parseMetadata(value, invalid: invalid)
            } else {
                entries.append(try parseEntry(name: key, value, dataSize: dataSize, invalid: invalid))
            }
        }

        // Data order, with the name breaking ties between empty tensors so the order is stable.
        entries.sort { ($0.byteRange.lowerBound, $0.byteRange.upperBound, $0.name)
                       < ($1.byteRange.lowerBound, $1.byteRange.upperBound, $1.name) }
        // Two tensors must not share bytes. Gaps between tensors, or after the last one, are
        // accepted: the reference implementation rejects them, but they hide no data and
        // cannot make a tensor read the wrong bytes.
        var previous: SafetensorsEntry?
        for entry in entries where !entry.byteRange.isEmpty {
            if let previous, entry.byteRange.lowerBound < previous.byteRange.upperBound {
                throw invalid("tensors '\(previous.name)' (bytes \(previous.byteRange)) and '\(entry.name)' "
                              + "(bytes \(entry.byteRange)) overlap")
            }
            previous = entry
        }
        return SafetensorsHeader(metadata: metadata, entries: entries, dataStart: dataStart)
    }

    private static func parseMetadata(_ value: JSONValue,
                                      invalid: (String) -> TensorError) throws -> [String: String] {
        guard case .object(let fields) = value else { throw invalid("\"__metadata__\" is not a JSON object") }
        var metadata: [String: String] = [:]
        for (key, field) in fields {
            guard case .string(let text) = field else {
                throw invalid("\"__metadata__\" value of '\(key)' is \(field), not a string "
                              + "(safetensors metadata holds strings only)")
            }
            metadata[key] = text
        }
        return metadata
    }

    /// Checks one tensor description against the format and the `dataSize` bytes of data.
    private static func parseEntry(name: String, _ value: JSONValue, dataSize: Int,
                                   invalid: (String) -> TensorError) throws -> SafetensorsEntry {
        func bad(_ reason: String) -> TensorError { invalid("tensor '\(name)': \(reason)") }

        guard case .object(let info) = value else { throw bad("description is not a JSON object") }

        guard case .string(let dtypeName)? = info["dtype"] else { throw bad("\"dtype\" is missing or not a string") }
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            let supported = SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
            throw bad("unsupported dtype '\(dtypeName)' (supported: \(supported))")
        }

        guard case .array(let dimensions)? = info["shape"] else { throw bad("\"shape\" is missing or not an array") }
        var shape: [Int] = []
        for dimension in dimensions {
            guard case .integer(let extent) = dimension, extent >= 0 else {
                throw bad("shape \(JSONValue.array(dimensions)) has an entry that is not a non-negative integer")
            }
            shape.append(extent)
        }
        guard let byteCount = byteCount(shape: shape, dtype: dtype) else {
            throw bad("shape \(shape) of \(dtype.rawValue) has more bytes than a file can hold")
        }

        guard case .array(let offsets)? = info["data_offsets"], offsets.count == 2,
              case .integer(let begin) = offsets[0], case .integer(let end) = offsets[1] else {
            throw bad("\"data_offsets\" is missing or not an array of two integers")
        }
        guard begin >= 0, begin <= end else {
            throw bad("data_offsets [\(begin), \(end)] are not a non-negative begin followed by an end no smaller")
        }
        guard end <= dataSize else {
            throw bad("data_offsets end \(end) is past the end of the data section (\(dataSize) bytes); "
                      + "the file is truncated or corrupted")
        }
        guard byteCount == end - begin else {
            throw bad("shape \(shape) of \(dtype.rawValue) needs \(byteCount) bytes, "
                      + "but data_offsets [\(begin), \(end)] span \(end - begin)")
        }
        return SafetensorsEntry(name: name, dtype: dtype, shape: shape, byteRange: begin ..< end)
    }

    /// The size of a tensor of `shape` and `dtype`, or nil for a negative extent or a size that
    /// overflows `Int` (a corrupted header must not trap on the multiplication).
    private static func byteCount(shape: [Int], dtype: SafetensorsDType) -> Int? {
        var bytes = dtype.byteSize
        for extent in shape {
            guard extent >= 0 else { return nil }
            let (product, overflow) = bytes.multipliedReportingOverflow(by: extent)
            if overflow { return nil }
            bytes = product
        }
        return bytes
    }

    /// Copies or converts one tensor's validated bytes into new storage.
    private static func decode(_ bytes: UnsafeRawBufferPointer, dtype: SafetensorsDType, shape: [Int]) -> StoredTensor {
        switch dtype {
        case .f32:
            let tensor = Tensor(uninitializedShape: shape)
            if let source = bytes.baseAddress {
                UnsafeMutableRawPointer(tensor.data).copyMemory(from: source, byteCount: bytes.count)
            }
            return .float(tensor)
        case .f16: return .float(widen(bytes, shape: shape, HalfFloat.float(fromFloat16Bits:)))
        case .bf16: return .float(widen(bytes, shape: shape, HalfFloat.float(fromBFloat16Bits:)))
        case .i16: return .int16(integers(bytes), shape: shape)
        case .i32: return .int32(integers(bytes), shape: shape)
        case .i64: return .int64(integers(bytes), shape: shape)
        case .u8: return .uint8(integers(bytes), shape: shape)
        }
    }

    /// A Float32 tensor from 16-bit floats. Loads are unaligned because a header without
    /// padding can leave the data section at any address.
    private static func widen(_ bytes: UnsafeRawBufferPointer, shape: [Int],
                              _ convert: (UInt16) -> Float) -> Tensor {
        let tensor = Tensor(uninitializedShape: shape)
        let out = tensor.data
        for i in 0 ..< tensor.count {
            out[i] = convert(bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
        }
        return tensor
    }

    private static func integers<T: FixedWidthInteger>(_ bytes: UnsafeRawBufferPointer) -> [T] {
        let count = bytes.count / MemoryLayout<T>.size
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            if let source = bytes.baseAddress, let target = buffer.baseAddress {
                UnsafeMutableRawPointer(target).copyMemory(from: source, byteCount: bytes.count)
            }
            initialized = count
        }
    }

    /// Runs `body` on the bytes of the file at `path`, mapped read-only; the mapping is
    /// released when `body` returns. Pages are read on first touch, so a header-only parse
    /// reads little more than the header. A file shortened in place while mapped would fault;
    /// ``write(path:tensors:metadata:)`` replaces files by rename, which leaves a mapped old
    /// file intact.
    private static func withMappedFile<T>(path: String, _ body: (UnsafeRawBufferPointer) throws -> T) throws -> T {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw TensorError.fileAccess(path: path, reason: "cannot open: \(lastOSError())") }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw TensorError.fileAccess(path: path, reason: "cannot read file size: \(lastOSError())")
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw TensorError.invalidFile(path: path, reason: "not a regular file")
        }
        let size = Int(status.st_size)
        guard size > 0 else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0), base != MAP_FAILED else {
            throw TensorError.fileAccess(path: path, reason: "cannot map into memory: \(lastOSError())")
        }
        defer { munmap(base, size) }
        return try body(UnsafeRawBufferPointer(start: base, count: size))
    }

    // MARK: Writing

    /// Checks names, dtypes and value counts and assigns consecutive byte ranges.
    private static func layout(_ tensors: [(name: String, value: StoredTensor, storeAs: SafetensorsDType)],
                               path: String) throws -> [SafetensorsEntry] {
        func bad(_ reason: String) -> TensorError { .invalidFile(path: path, reason: "cannot write: \(reason)") }
        var entries: [SafetensorsEntry] = []
        var names: Set<String> = []
        var offset = 0
        for (name, value, storeAs) in tensors {
            guard name != "__metadata__" else { throw bad("'__metadata__' is reserved and cannot name a tensor") }
            guard names.insert(name).inserted else { throw bad("two tensors are named '\(name)'") }
            let fits = value.dtype == .f32 ? storeAs.isFloat : storeAs == value.dtype
            guard fits else {
                throw bad("tensor '\(name)' holds \(value.dtype.rawValue) values, which cannot be stored as \(storeAs.rawValue)")
            }
            guard let byteCount = byteCount(shape: value.shape, dtype: storeAs),
                  byteCount == value.count * storeAs.byteSize else {
                throw bad("tensor '\(name)' has \(value.count) values, which do not fill shape \(value.shape)")
            }
            entries.append(SafetensorsEntry(name: name, dtype: storeAs, shape: value.shape,
                                            byteRange: offset ..< offset + byteCount))
            offset += byteCount
        }
        return entries
    }

    /// Compact JSON with metadata first (keys sorted) and tensors in the given order, so the
    /// same input always gives the same bytes. An empty metadata object is left out.
    static func headerJSON(_ entries: [SafetensorsEntry], metadata: [String: String]) -> String {
        var fields: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key < $1.key }.map { jsonString($0.key) + ":" + jsonString($0.value) }
            fields.append("\"__metadata__\":{" + pairs.joined(separator: ",") + "}")
        }
        for entry in entries {
            let shape = entry.shape.map(String.init).joined(separator: ",")
            fields.append(jsonString(entry.name) + ":{\"dtype\":\"\(entry.dtype.rawValue)\",\"shape\":[\(shape)],"
                          + "\"data_offsets\":[\(entry.byteRange.lowerBound),\(entry.byteRange.upperBound)]}")
        }
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// `text` as a JSON string literal; non-ASCII characters stay as UTF-8.
    private static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    private static func appendData(of value: StoredTensor, as dtype: SafetensorsDType, to file: OutputFile) throws {
        switch value {
        case .float(let tensor):
            switch dtype {
            case .f16: try appendNarrowed(tensor, to: file, HalfFloat.float16Bits(from:))
            case .bf16: try appendNarrowed(tensor, to: file, HalfFloat.bfloat16Bits(from:))
            default:  // F32: `layout` admits no other dtype for a float tensor.
                try file.append(UnsafeRawBufferPointer(start: tensor.data, count: tensor.count * 4))
            }
        case .int16(let values, _): try values.withUnsafeBytes { try file.append($0) }
        case .int32(let values, _): try values.withUnsafeBytes { try file.append($0) }
        case .int64(let values, _): try values.withUnsafeBytes { try file.append($0) }
        case .uint8(let values, _): try values.withUnsafeBytes { try file.append($0) }
        }
    }

    /// Converts in chunks, so storing a large tensor as 16 bits needs no second full copy.
    private static func appendNarrowed(_ tensor: Tensor, to file: OutputFile, _ convert: (Float) -> UInt16) throws {
        let chunk = 1 << 16
        var buffer = [UInt16](repeating: 0, count: chunk)
        var start = 0
        while start < tensor.count {
            let n = min(chunk, tensor.count - start)
            for i in 0 ..< n { buffer[i] = convert(tensor.data[start + i]) }
            try buffer.withUnsafeBytes { try file.append(UnsafeRawBufferPointer(rebasing: $0[0 ..< 2 * n])) }
            start += n
        }
    }

    /// `.NAME.tmp-PID` next to `path`: the same directory keeps the final rename atomic.
    private static func temporaryPath(for path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return ".\(path).tmp-\(getpid())" }
        return "\(path[...slash]).\(path[path.index(after: slash)...]).tmp-\(getpid())"
    }

    /// Flushes the directory entry of a just-renamed file, so the rename survives a power cut.
    /// Best effort: some file systems refuse to sync a directory, and the file itself is safe.
    private static func syncDirectory(containing path: String) {
        let directory = path.lastIndex(of: "/").map { String(path[...$0]) } ?? "."
        let descriptor = open(directory, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        fsync(descriptor)
        close(descriptor)
    }
}

/// A file being written, by descriptor. Kept outside `Safetensors`, whose `read` and `write`
/// would hide the system calls of the same names.
private final class OutputFile {
    let path: String
    private var descriptor: Int32

    init(creating path: String) throws {
        self.path = path
        descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw TensorError.fileAccess(path: path, reason: "cannot create: \(lastOSError())")
        }
    }

    /// Writes all of `bytes`, resuming after partial writes and interruptions.
    func append(_ bytes: UnsafeRawBufferPointer) throws {
        guard var next = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let written = write(descriptor, next, remaining)
            if written < 0 {
                if errno == EINTR { continue }
                throw TensorError.fileAccess(path: path, reason: "cannot write: \(lastOSError())")
            }
            next += written
            remaining -= written
        }
    }

    /// Flushes the data to disk and closes; only then may the file replace another.
    func closeAfterSync() throws {
        guard fsync(descriptor) == 0 else {
            throw TensorError.fileAccess(path: path, reason: "cannot flush to disk: \(lastOSError())")
        }
        let status = close(descriptor)
        descriptor = -1
        guard status == 0 else { throw TensorError.fileAccess(path: path, reason: "cannot close: \(lastOSError())") }
    }

    func closeIfOpen() {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
    }

    deinit { closeIfOpen() }
}

/// The current `errno` as text.
private func lastOSError() -> String { String(cString: strerror(errno)) }

/// A parsed JSON value. Integers are kept apart from other numbers so that offsets and
/// dimensions are never rounded through Double, and `1.5` cannot pass for a dimension.
enum JSONValue: Decodable, CustomStringConvertible {
    case null
    case bool(Bool)
    case integer(Int)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    /// Compact JSON-like text for error messages.
    var description: String {
        switch self {
        case .null: "null"
        case .bool(let value): "\(value)"
        case .integer(let value): "\(value)"
        case .number(let value): "\(value)"
        case .string(let value): "\"\(value)\""
        case .array(let values): "[" + values.map(\.description).joined(separator: ", ") + "]"
        case .object: "{…}"
        }
    }
}
