// A PyTorch checkpoint (`torch.save` output) in either of its two formats, read without
// running any of it.
//
// Legacy format (torch < 1.6, or `_use_new_zipfile_serialization=False`; OpenAI's Jukebox
// files): five pickles one after another, then the storages:
//   pickle 1   the magic number 0x1950a86a20f9469cfc6c (LONG1)
//   pickle 2   the protocol version, 1001
//   pickle 3   {'protocol_version': 1001, 'little_endian': True, 'type_sizes': {...}}
//   pickle 4   the object; tensors name their storages by persistent id
//   pickle 5   the storage keys, a list of strings
//   then, for each key in that order: its element count (int64, little-endian), then
//   count × element size bytes of data; the file ends after the last storage.
// Zip format (torch ≥ 1.6 by default): a stored zip with one top folder `P/` holding
// `P/data.pkl` (the object) and `P/data/<key>` (each storage's bytes), see `TorchZip.swift`.
//
// Both are parsed from a memory mapping; the tensors point into it.

/// A PyTorch checkpoint: the object it holds, and its tensors by dotted name.
public final class TorchFile {
    /// The two layouts of `torch.save`.
    public enum Format: String, Sendable {
        /// A sequence of pickles followed by the storages (torch < 1.6; OpenAI's files).
        case legacy
        /// A zip file of stored entries (torch ≥ 1.6).
        case zip
    }

    /// The first bytes of a legacy file: PROTO 2, then LONG1 of the 10-byte magic number.
    static let legacySignature: [UInt8] = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]
    /// The first bytes of a zip file (a local header).
    static let zipSignature: [UInt8] = [0x50, 0x4b, 0x03, 0x04]
    /// The largest pickle read. The object pickle of a Jukebox prior is about 300 KB (with
    /// optimizer state, about 1 MB); a value costs at most 24 bytes of memory per pickle byte.
    public static let maxPickleBytes = 64 << 20

    /// The mapped bytes every tensor points into.
    public let file: MappedFile
    /// Which of the two layouts the file has.
    public let format: Format
    /// The object that was saved (for Jukebox, a dict of `hps`, `model`, `opt` and `step`).
    public let root: PickleValue
    /// Every tensor reachable from the root through dicts, lists and tuples, in pickle order,
    /// named by the keys on the way joined with dots (`model.encoders.0.level_blocks.0.model.0.0.weight`;
    /// list and tuple items by index). A container reached twice is listed under its first name.
    public let tensors: [(name: String, tensor: TorchTensor)]
    /// The storages, in the order their data lies in the file.
    public let storages: [TorchStorage]

    /// Maps and reads the checkpoint at `path`. Throws a ``TorchCheckpointError`` naming the
    /// problem (and its offset) for a file that is not a valid checkpoint or asks for anything
    /// but plain values and tensors.
    public convenience init(path: String) throws {
        try self.init(file: try MappedFile(path: path))
    }

    /// Reads the checkpoint in `file`.
    public init(file: MappedFile) throws {
        self.file = file
        let storageTable = StorageTable()
        switch Self.format(of: file.bytes) {
        case .legacy?:
            format = .legacy
            root = try Self.readLegacy(file, storages: storageTable)
        case .zip?:
            format = .zip
            root = try Self.readZip(file, storages: storageTable)
        case nil:
            throw TorchCheckpointError(.malformed, path: file.path, offset: 0,
                                       "not a PyTorch checkpoint: it starts with neither a zip header (PK\\3\\4) nor the "
                                       + "legacy magic number (80 02 8a 0a 6c fc 9c 46 …)")
        }
        storages = storageTable.keys.map { storageTable.byKey[$0]! }.sorted { $0.fileOffset < $1.fileOffset }
        tensors = Self.flatten(root)
    }

    /// The format `bytes` start like, or nil when they look like neither.
    public static func format(of bytes: UnsafeRawBufferPointer) -> Format? {
        if bytes.starts(with: legacySignature) { return .legacy }
        if bytes.starts(with: zipSignature) { return .zip }
        return nil
    }

    /// The format of the file at `path` from its first bytes, or nil when it is not a
    /// PyTorch checkpoint (or cannot be read).
    public static func format(ofFileAt path: String) -> Format? {
        // Only a sniff of the first bytes: a file that cannot be opened is "not a torch file"
        // here, and the reader that then opens it reports why.
        guard let file = try? MappedFile(path: path) else { return nil }
        return format(of: file.bytes)
    }

    /// The training step: the root's `step` when it is an int or a one-element integer tensor.
    public var step: Int? {
        switch root["step"] {
        case .int(let step)?: return Int(exactly: step)
        case .tensor(let tensor)? where tensor.count == 1: return tensor.integerValues().flatMap { Int(exactly: $0[0]) }
        default: return nil
        }
    }

    // MARK: Legacy

    private static func readLegacy(_ file: MappedFile, storages: StorageTable) throws -> PickleValue {
        let path = file.path
        let count = file.bytes.count
        func pickle(at start: Int, storages: StorageTable? = nil) throws -> (value: PickleValue, end: Int) {
            var machine = PickleMachine(file: file, start: start, end: min(count, start + maxPickleBytes), storages: storages)
            return try machine.run()
        }
        let magic = try pickle(at: 0)
        guard case .bigInt(let magicBytes) = magic.value, magicBytes == Array(legacySignature[4...]) else {
            throw TorchCheckpointError(.malformed, path: path, offset: 0, "the legacy magic number is wrong")
        }
        let version = try pickle(at: magic.end)
        guard case .int(1001) = version.value else {
            throw TorchCheckpointError(.malformed, path: path, offset: magic.end,
                                       "legacy protocol version is \(version.value.kindDescription), not 1001")
        }
        let systemInfo = try pickle(at: version.end)
        guard case .bool(true)? = systemInfo.value["little_endian"] else {
            throw TorchCheckpointError(.malformed, path: path, offset: version.end,
                                       "the file was not written on a little-endian machine (sys_info little_endian is not True)")
        }
        let object = try pickle(at: systemInfo.end, storages: storages)
        let keyList = try pickle(at: object.end)

        // The key list must name exactly the storages of the object, each once.
        guard case .list(let list) = keyList.value else {
            throw TorchCheckpointError(.malformed, path: path, offset: object.end, "the storage key list is \(keyList.value.kindDescription)")
        }
        var keys: [String] = []
        for item in list.items {
            guard case .string(let key) = item, storages.byKey[key] != nil else {
                throw TorchCheckpointError(.malformed, path: path, offset: object.end,
                                           "the storage key list holds \(item.kindDescription), which no tensor uses")
            }
            keys.append(key)
        }
        guard Set(keys).count == keys.count, keys.count == storages.keys.count else {
            throw TorchCheckpointError(.malformed, path: path, offset: object.end,
                                       "the storage key list (\(keys.count) keys) does not name the \(storages.keys.count) storages "
                                       + "of the tensors once each")
        }

        // The storages follow in key-list order: an int64 element count, then the data.
        var position = keyList.end
        for key in keys {
            let storage = storages.byKey[key]!
            guard count - position >= 8 else {
                throw TorchCheckpointError(.malformed, path: path, offset: position,
                                           "the file ends before storage '\(printable(key))': the file is truncated "
                                           + "(an interrupted download?)")
            }
            let declared = Int64(littleEndian: file.bytes.loadUnaligned(fromByteOffset: position, as: Int64.self))
            guard declared == Int64(storage.count) else {
                throw TorchCheckpointError(.malformed, path: path, offset: position,
                                           "storage '\(printable(key))' is stored with \(declared) elements, "
                                           + "but the pickle says \(storage.count)")
            }
            // count × size was checked against the file length when the pickle named the storage.
            let byteCount = storage.count * storage.dtype.byteSize
            guard count - (position + 8) >= byteCount else {
                throw TorchCheckpointError(.malformed, path: path, offset: position,
                                           "storage '\(printable(key))' needs \(byteCount) bytes, but the file ends "
                                           + "\(count - position - 8) bytes later: the file is truncated (an interrupted download?)")
            }
            storage.fileOffset = position + 8
            position += 8 + byteCount
        }
        guard position == count else {
            throw TorchCheckpointError(.malformed, path: path, offset: position,
                                       "\(count - position) bytes follow the last storage; a checkpoint ends with it")
        }
        return object.value
    }

    // MARK: Zip

    private static func readZip(_ file: MappedFile, storages: StorageTable) throws -> PickleValue {
        let path = file.path
        let directory = try ZipDirectory(file: file)
        // The one `<folder>/data.pkl`, whatever the folder is called.
        let pickles = directory.entries.keys.filter { name in
            let parts = name.split(separator: "/", omittingEmptySubsequences: false)
            return parts.count == 2 && parts[1] == "data.pkl" && !parts[0].isEmpty
        }
        guard pickles.count == 1, let pickleName = pickles.first, let pickle = directory.entries[pickleName] else {
            throw TorchCheckpointError(.malformed, path: path, pickles.isEmpty
                                       ? "the zip holds no <folder>/data.pkl: it is not a PyTorch checkpoint"
                                       : "the zip holds \(pickles.count) <folder>/data.pkl entries, not one")
        }
        let folder = String(pickleName.dropLast("data.pkl".count))
        if let order = directory.entries[folder + "byteorder"] {
            let text = UnsafeRawBufferPointer(rebasing: file.bytes[order.dataOffset ..< order.dataOffset + order.size])
            guard text.elementsEqual("little".utf8) else {
                throw TorchCheckpointError(.malformed, path: path, offset: order.dataOffset,
                                           "the byteorder entry is not 'little': a big-endian checkpoint is not supported")
            }
        }
        guard pickle.size <= maxPickleBytes else {
            throw TorchCheckpointError(.malformed, path: path, offset: pickle.dataOffset,
                                       "data.pkl is \(pickle.size) bytes, more than the \(maxPickleBytes) accepted")
        }
        var machine = PickleMachine(file: file, start: pickle.dataOffset, end: pickle.dataOffset + pickle.size, storages: storages)
        let (object, end) = try machine.run()
        guard end == pickle.dataOffset + pickle.size else {
            throw TorchCheckpointError(.malformed, path: path, offset: end,
                                       "\(pickle.dataOffset + pickle.size - end) bytes follow the STOP of data.pkl")
        }
        for key in storages.keys {
            let storage = storages.byKey[key]!
            guard let entry = directory.entries[folder + "data/" + key] else {
                throw TorchCheckpointError(.malformed, path: path, "storage '\(printable(key))' has no entry \(printable(folder))data/\(printable(key))")
            }
            guard entry.size == storage.count * storage.dtype.byteSize else {
                throw TorchCheckpointError(.malformed, path: path, offset: entry.dataOffset,
                                           "entry \(printable(entry.name)) is \(entry.size) bytes, but storage '\(printable(key))' "
                                           + "is \(storage.count) × \(storage.dtype.rawValue)")
            }
            storage.fileOffset = entry.dataOffset
        }
        return object
    }

    // MARK: Names

    /// The tensors under `root`, named by dotted paths, each container walked once.
    static func flatten(_ root: PickleValue) -> [(name: String, tensor: TorchTensor)] {
        var result: [(name: String, tensor: TorchTensor)] = []
        var visited: Set<ObjectIdentifier> = []
        // An explicit stack of (prefix, value); children are pushed in reverse to keep pickle order.
        var pending: [(String, PickleValue)] = [("", root)]
        func child(_ prefix: String, _ key: String) -> String { prefix.isEmpty ? key : prefix + "." + key }
        while let (prefix, value) = pending.popLast() {
            switch value {
            case .tensor(let tensor):
                result.append((prefix, tensor))
            case .dict(let dict) where visited.insert(ObjectIdentifier(dict)).inserted:
                pending += dict.entries.reversed().map { (child(prefix, $0.0.description), $0.1) }
            case .list(let list) where visited.insert(ObjectIdentifier(list)).inserted:
                pending += list.items.indices.reversed().map { (child(prefix, String($0)), list.items[$0]) }
            case .tuple(let tuple) where visited.insert(ObjectIdentifier(tuple)).inserted:
                pending += tuple.items.indices.reversed().map { (child(prefix, String($0)), tuple.items[$0]) }
            default:
                break
            }
        }
        return result
    }
}
