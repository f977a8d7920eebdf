// A pickle interpreter that builds inert values and runs nothing.
//
// It runs the opcodes of `PickleOpcode.allowed` over a byte range of the mapped file and
// refuses every other opcode, every global outside `TorchGlobal` and every call other than
// the three torch makes (OrderedDict(), _rebuild_tensor_v2(...) and its two relatives), with
// an error naming the opcode or global and its offset in the file. There is no recursion:
// one loop over the bytes, a value stack and a mark stack.
//
// Bounds, so that a hostile file gets an error, never a crash, a hang or a huge allocation:
// every length is checked against the bytes left; the stack, the marks and the memo have
// fixed limits; containers nest at most `PickleValue.maxDepth` deep; and the work done (items
// moved, key bytes hashed) is bounded by a multiple of the pickle's length, which rules out a
// short pickle that hashes the same long key again and again.

/// The storages named by a pickle's persistent ids, by key, in first-seen order.
final class StorageTable {
    private(set) var byKey: [String: TorchStorage] = [:]
    private(set) var keys: [String] = []

    func insert(_ storage: TorchStorage) {
        byKey[storage.key] = storage
        keys.append(storage.key)
    }
}

/// Runs one pickle (up to its STOP) from a byte range of a mapped file.
struct PickleMachine {
    /// Largest value stack accepted.
    static let maxStack = 1 << 20
    /// Largest memo accepted (entries).
    static let maxMemo = 1 << 22
    /// Longest module or name in a GLOBAL.
    static let maxGlobalLength = 256

    private let file: MappedFile
    private let bytes: UnsafeRawBufferPointer
    private let end: Int
    /// The storages of persistent ids, or nil when this pickle may not have any.
    private let storages: StorageTable?
    private var position: Int
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [UInt32: PickleValue] = [:]
    private var workLeft: Int
    /// Offset of the opcode being run, for error messages.
    private var opcodeOffset = 0

    /// A machine for the pickle that starts at `start` and must stop before `end`.
    init(file: MappedFile, start: Int, end: Int, storages: StorageTable?) {
        self.file = file
        bytes = file.bytes
        self.end = end
        self.storages = storages
        position = start
        workLeft = 16 * (end - start) + (1 << 20)
    }

    /// Runs the pickle to its STOP. Returns the value and the offset just after the STOP.
    mutating func run() throws -> (value: PickleValue, end: Int) {
        while true {
            opcodeOffset = position
            guard position < end else { throw malformed("the pickle ends without STOP") }
            let byte = bytes[position]
            position += 1
            guard let opcode = PickleOpcode(rawValue: byte), PickleOpcode.allowed.contains(opcode) else {
                throw refused("\(PickleOpcode.describe(byte: byte)) is not allowed")
            }
            try spend(1)
            if opcode == .stop {
                guard stack.count == 1, marks.isEmpty else {
                    throw malformed("STOP with \(stack.count) values and \(marks.count) marks on the stack, not one value")
                }
                return (stack[0], position)
            }
            try execute(opcode)
            guard stack.count <= Self.maxStack else { throw malformed("more than \(Self.maxStack) values on the stack") }
        }
    }

    private mutating func execute(_ opcode: PickleOpcode) throws {
        switch opcode {
        case .proto:
            let version = try readByte()
            guard version >= 2, version <= 5 else { throw malformed("pickle protocol \(version); torch writes 2 (3 to 5 are read too)") }
        case .frame:
            // Framing only groups the opcodes that follow; the length must fit in the pickle.
            let length = try readUInt(8)
            guard length <= UInt64(end - position) else { throw malformed("FRAME of \(length) bytes runs past the end of the pickle") }
        case .mark:
            guard marks.count < Self.maxStack else { throw malformed("more than \(Self.maxStack) marks") }
            marks.append(stack.count)
        case .none: stack.append(.none)
        case .newTrue: stack.append(.bool(true))
        case .newFalse: stack.append(.bool(false))
        case .binInt: stack.append(.int(Int64(Int32(truncatingIfNeeded: try readUInt(4)))))
        case .binInt1: stack.append(.int(Int64(try readByte())))
        case .binInt2: stack.append(.int(Int64(try readUInt(2))))
        case .long1: stack.append(try readLong1())
        case .binFloat:
            let bits = try readUInt(8)
            stack.append(.float(Double(bitPattern: bits.byteSwapped)))  // big-endian in the pickle
        case .shortBinUnicode: stack.append(.string(try readString(lengthBytes: 1)))
        case .binUnicode: stack.append(.string(try readString(lengthBytes: 4)))
        case .binUnicode8: stack.append(.string(try readString(lengthBytes: 8)))
        case .shortBinBytes: stack.append(.bytes(Array(try readData(lengthBytes: 1))))
        case .binBytes: stack.append(.bytes(Array(try readData(lengthBytes: 4))))
        case .emptyTuple: stack.append(.tuple(PickleTuple([])))
        case .emptyList: stack.append(.list(PickleList()))
        case .emptyDict: stack.append(.dict(PickleDict()))
        case .tuple: stack.append(.tuple(try makeTuple(try popToMark())))
        case .tuple1: stack.append(.tuple(try makeTuple(try pop(1))))
        case .tuple2: stack.append(.tuple(try makeTuple(try pop(2))))
        case .tuple3: stack.append(.tuple(try makeTuple(try pop(3))))
        case .append: try append(try pop(1))
        case .appends: try append(try popToMark())
        case .setItem: try setItems(try pop(2))
        case .setItems: try setItems(try popToMark())
        case .binPut: try put(UInt32(try readByte()))
        case .longBinPut: try put(UInt32(try readUInt(4)))
        case .memoize: try put(UInt32(truncatingIfNeeded: memo.count))
        case .binGet: try get(UInt32(try readByte()))
        case .longBinGet: try get(UInt32(try readUInt(4)))
        case .global:
            let module = try readLine(), name = try readLine()
            stack.append(.global(try global(module: module, name: name)))
        case .stackGlobal:
            let parts = try pop(2)
            guard case .string(let module) = parts[0], case .string(let name) = parts[1] else {
                throw malformed("STACK_GLOBAL needs two strings, not \(parts[0].kindDescription) and \(parts[1].kindDescription)")
            }
            stack.append(.global(try global(module: module, name: name)))
        case .reduce:
            let parts = try pop(2)
            stack.append(try call(parts[0], parts[1]))
        case .build: try build(try pop(1)[0])
        case .binPersID: stack.append(try persistentLoad(try pop(1)[0]))
        default:
            // `run` refuses opcodes outside `PickleOpcode.allowed` before they get here.
            throw refused("\(PickleOpcode.describe(byte: opcode.rawValue)) is not allowed")
        }
    }

    // MARK: Errors and work

    private func malformed(_ reason: String) -> TorchCheckpointError {
        TorchCheckpointError(.malformed, path: file.path, offset: opcodeOffset, reason)
    }

    private func refused(_ reason: String) -> TorchCheckpointError {
        TorchCheckpointError(.refused, path: file.path, offset: opcodeOffset, reason)
    }

    private mutating func spend(_ work: Int) throws {
        workLeft -= work
        guard workLeft >= 0 else {
            throw malformed("the pickle does far more work than its length calls for (values copied or keys hashed over and over)")
        }
    }

    // MARK: Reading operands

    private mutating func readByte() throws -> UInt8 {
        guard position < end else { throw malformed("the pickle ends inside an operand") }
        position += 1
        return bytes[position - 1]
    }

    /// An unsigned little-endian integer of `count` bytes (at most 8).
    private mutating func readUInt(_ count: Int) throws -> UInt64 {
        guard end - position >= count else { throw malformed("the pickle ends inside an operand") }
        var value: UInt64 = 0
        for i in 0 ..< count { value |= UInt64(bytes[position + i]) << (8 * i) }
        position += count
        return value
    }

    /// The bytes of a length-prefixed operand, checked against the bytes left.
    private mutating func readData(lengthBytes: Int) throws -> UnsafeRawBufferPointer {
        let length = try readUInt(lengthBytes)
        guard length <= UInt64(end - position) else {
            throw malformed("an operand of \(length) bytes runs past the end of the pickle (\(end - position) bytes left)")
        }
        let data = UnsafeRawBufferPointer(rebasing: bytes[position ..< position + Int(length)])
        position += Int(length)
        try spend(data.count / 64)
        return data
    }

    private mutating func readString(lengthBytes: Int) throws -> String {
        let data = try readData(lengthBytes: lengthBytes)
        guard let text = String(validating: data, as: UTF8.self) else { throw malformed("a string is not valid UTF-8") }
        return text
    }

    /// A text line of GLOBAL (module or name), without its newline.
    private mutating func readLine() throws -> String {
        var length = 0
        while true {
            guard position + length < end else { throw malformed("the pickle ends inside GLOBAL") }
            if bytes[position + length] == 0x0a { break }
            length += 1
            guard length <= Self.maxGlobalLength else {
                throw malformed("a GLOBAL name is longer than \(Self.maxGlobalLength) bytes")
            }
        }
        let line = UnsafeRawBufferPointer(rebasing: bytes[position ..< position + length])
        position += length + 1
        guard let text = String(validating: line, as: UTF8.self) else { throw malformed("a GLOBAL name is not valid UTF-8") }
        return text
    }

    /// LONG1: a length byte, then that many bytes of little-endian two's complement.
    private mutating func readLong1() throws -> PickleValue {
        let data = try readData(lengthBytes: 1)
        guard data.count <= 8 else { return .bigInt(Array(data)) }
        guard let top = data.last else { return .int(0) }
        // Sign-extend from the top byte.
        var value: UInt64 = top & 0x80 != 0 ? ~0 : 0
        for byte in data.reversed() { value = value << 8 | UInt64(byte) }
        return .int(Int64(bitPattern: value))
    }

    // MARK: The stack and the memo

    /// Removes and returns the top `count` values, which must lie above the last mark.
    private mutating func pop(_ count: Int) throws -> [PickleValue] {
        guard stack.count - (marks.last ?? 0) >= count else {
            throw malformed("\(PickleOpcode.describe(byte: bytes[opcodeOffset])) needs \(count) values on the stack")
        }
        let values = Array(stack[(stack.count - count)...])
        stack.removeLast(count)
        return values
    }

    /// Removes and returns the values above the last mark, and the mark.
    private mutating func popToMark() throws -> [PickleValue] {
        guard let mark = marks.popLast() else {
            throw malformed("\(PickleOpcode.describe(byte: bytes[opcodeOffset])) without a MARK")
        }
        let values = Array(stack[mark...])
        stack.removeSubrange(mark...)
        try spend(values.count)
        return values
    }

    /// The value that APPEND(S), SETITEM(S) and BUILD change: the top of the stack, above the last mark.
    private func target() throws -> PickleValue {
        guard let top = stack.last, stack.count > (marks.last ?? 0) else {
            throw malformed("\(PickleOpcode.describe(byte: bytes[opcodeOffset])) has nothing to change")
        }
        return top
    }

    private mutating func put(_ index: UInt32) throws {
        guard let top = stack.last, stack.count > (marks.last ?? 0) else { throw malformed("memo PUT with an empty stack") }
        guard memo.count < Self.maxMemo || memo[index] != nil else { throw malformed("more than \(Self.maxMemo) memo entries") }
        memo[index] = top
    }

    private mutating func get(_ index: UInt32) throws {
        guard let value = memo[index] else { throw malformed("memo entry \(index) is read before it is written") }
        stack.append(value)
    }

    // MARK: Containers

    private func makeTuple(_ items: [PickleValue]) throws -> PickleTuple {
        let tuple = PickleTuple(items)
        guard tuple.depth <= PickleValue.maxDepth else { throw malformed("values nested deeper than \(PickleValue.maxDepth) levels") }
        for item in items { item.seal() }
        return tuple
    }

    private mutating func append(_ items: [PickleValue]) throws {
        let value = try target()
        guard case .list(let list) = value else { throw malformed("APPEND to \(value.kindDescription), not a list") }
        let depth = 1 + (items.map(\.depth).max() ?? 0)
        guard depth <= PickleValue.maxDepth else { throw malformed("values nested deeper than \(PickleValue.maxDepth) levels") }
        // Seal first: a list appended to itself is then sealed and refused below.
        for item in items { item.seal() }
        guard !list.sealed else { throw refused("APPEND to a list that is already inside another value (or would contain itself)") }
        list.items += items
        list.depth = max(list.depth, depth)
    }

    private mutating func setItems(_ items: [PickleValue]) throws {
        let value = try target()
        guard case .dict(let dict) = value else { throw malformed("SETITEM on \(value.kindDescription), not a dict") }
        guard items.count % 2 == 0 else { throw malformed("SETITEMS with an odd number of values (\(items.count))") }
        let depth = 1 + (items.map(\.depth).max() ?? 0)
        guard depth <= PickleValue.maxDepth else { throw malformed("values nested deeper than \(PickleValue.maxDepth) levels") }
        for item in items { item.seal() }
        guard !dict.sealed else { throw refused("SETITEM on a dict that is already inside another value (or would contain itself)") }
        for i in stride(from: 0, to: items.count, by: 2) {
            guard let key = PickleKey(items[i]) else {
                throw malformed("a dict key is \(items[i].kindDescription); keys must be None, bools, numbers, strings or bytes")
            }
            try spend(key.hashCost)
            dict.set(key, items[i + 1])
        }
        dict.depth = max(dict.depth, depth)
    }

    /// BUILD sets an object's state. The only object torch builds is a state dict's OrderedDict,
    /// whose state (`{'_metadata': …}`, the modules' versions) is dropped.
    private mutating func build(_ state: PickleValue) throws {
        let value = try target()
        guard case .dict = value, case .dict = state else {
            throw refused("BUILD of \(value.kindDescription) with \(state.kindDescription) is not allowed (only a dict's state)")
        }
    }

    // MARK: Globals, calls and storages

    private func global(module: String, name: String) throws -> TorchGlobal {
        guard let global = TorchGlobal(module: module, name: name) else {
            throw refused("global \(printable(module)).\(printable(name)) is not allowed "
                          + "(only collections.OrderedDict, torch._utils._rebuild_tensor_v2 and its relatives, torch.*Storage)")
        }
        return global
    }

    /// REDUCE: `callable(*arguments)` for the three calls torch pickles.
    private func call(_ callable: PickleValue, _ arguments: PickleValue) throws -> PickleValue {
        guard case .global(let function) = callable else { throw refused("REDUCE of \(callable.kindDescription) is not allowed") }
        guard case .tuple(let tuple) = arguments else {
            throw malformed("REDUCE of \(function.qualifiedName) with \(arguments.kindDescription) instead of an argument tuple")
        }
        let args = tuple.items
        func bad(_ reason: String) -> TorchCheckpointError { malformed("\(function.qualifiedName): \(reason)") }
        switch function {
        case .orderedDict:
            guard args.isEmpty else { throw bad("called with \(args.count) arguments, not none") }
            return .dict(PickleDict())
        case .rebuildTensorV2, .rebuildTensor:
            let count = function == .rebuildTensor ? [4] : [6, 7]
            guard count.contains(args.count) else { throw bad("called with \(args.count) arguments, not \(count.map(String.init).joined(separator: " or "))") }
            if function == .rebuildTensorV2 {
                guard case .bool = args[4] else { throw bad("requires_grad is \(args[4].kindDescription), not a bool") }
                guard isEmptyDict(args[5]) else { throw bad("backward hooks are \(args[5].kindDescription), not empty") }
                if args.count == 7 {
                    guard isEmptyDict(args[6]) || isNone(args[6]) else { throw bad("metadata is \(args[6].kindDescription), not empty") }
                }
            }
            guard case .storage(let storage) = args[0] else { throw bad("the storage is \(args[0].kindDescription)") }
            guard case .int(let offset) = args[1], let offset = Int(exactly: offset) else {
                throw bad("the storage offset is \(args[1].kindDescription), not an int")
            }
            let shape = try integers(args[2], what: "size", bad)
            let strides = try integers(args[3], what: "stride", bad)
            switch TorchTensor.make(storage: storage, offset: offset, shape: shape, strides: strides) {
            case .success(let tensor): return .tensor(tensor)
            case .failure(let error): throw bad(error.reason)
            }
        case .rebuildParameter:
            guard args.count == 3 else { throw bad("called with \(args.count) arguments, not 3") }
            guard case .tensor = args[0] else { throw bad("the data is \(args[0].kindDescription), not a tensor") }
            guard case .bool = args[1] else { throw bad("requires_grad is \(args[1].kindDescription), not a bool") }
            guard isEmptyDict(args[2]) else { throw bad("backward hooks are \(args[2].kindDescription), not empty") }
            return args[0]
        case .storageClass:
            throw refused("calling \(function.qualifiedName) is not allowed (a storage class only names a dtype)")
        }
    }

    private func isEmptyDict(_ value: PickleValue) -> Bool {
        if case .dict(let d) = value { return d.count == 0 }
        return false
    }

    private func isNone(_ value: PickleValue) -> Bool {
        if case .none = value { return true }
        return false
    }

    /// A tuple of ints, as `size` and `stride` are.
    private func integers(_ value: PickleValue, what: String, _ bad: (String) -> TorchCheckpointError) throws -> [Int] {
        guard case .tuple(let tuple) = value, tuple.items.count <= TorchTensor.maxRank else {
            throw bad("the \(what) is \(value.kindDescription), not a tuple of at most \(TorchTensor.maxRank) ints")
        }
        return try tuple.items.map { item in
            guard case .int(let i) = item, let i = Int(exactly: i) else { throw bad("the \(what) holds \(item.kindDescription)") }
            return i
        }
    }

    /// BINPERSID: `('storage', torch.<T>Storage, key, location, count[, None])` names a storage.
    private func persistentLoad(_ id: PickleValue) throws -> PickleValue {
        guard let storages else { throw refused("BINPERSID is not allowed in this pickle (only in the checkpoint's object)") }
        guard case .tuple(let tuple) = id, let first = tuple.items.first, case .string("storage") = first else {
            throw refused("persistent id \(id.kindDescription) is not allowed (only a storage)")
        }
        let items = tuple.items
        guard items.count == 5 || (items.count == 6 && isNone(items[5])) else {
            throw malformed("a storage's persistent id has \(items.count) fields, not 5 (zip) or 6 ending in None (legacy)")
        }
        guard case .global(.storageClass(let dtype, _)) = items[1] else {
            throw malformed("a storage's type is \(items[1].kindDescription), not torch.<T>Storage")
        }
        guard case .string(let key) = items[2], case .string = items[3] else {
            throw malformed("a storage's key and location are \(items[2].kindDescription) and \(items[3].kindDescription), not strings")
        }
        guard case .int(let declared) = items[4], declared >= 0, let count = Int(exactly: declared) else {
            throw malformed("storage '\(printable(key))' has \(items[4].kindDescription) elements, not a count")
        }
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow, byteCount <= file.bytes.count else {
            throw malformed("storage '\(printable(key))' claims \(count) elements of \(dtype.rawValue), "
                            + "more than the \(file.bytes.count)-byte file holds")
        }
        if let known = storages.byKey[key] {
            guard known.dtype == dtype, known.count == count else {
                throw malformed("storage '\(printable(key))' is named as \(known.count) × \(known.dtype.rawValue) "
                                + "and as \(count) × \(dtype.rawValue)")
            }
            return .storage(known)
        }
        let storage = TorchStorage(key: key, dtype: dtype, count: count, file: file)
        storages.insert(storage)
        return .storage(storage)
    }
}

/// `text` with control characters escaped and cut to 80 characters, safe for a one-line message.
func printable(_ text: String) -> String {
    var out = ""
    for scalar in text.unicodeScalars.prefix(80) {
        out += scalar.value < 0x20 || scalar.value == 0x7f ? "\\u{\(String(scalar.value, radix: 16))}" : String(scalar)
    }
    return text.unicodeScalars.count > 80 ? out + "…" : out
}
