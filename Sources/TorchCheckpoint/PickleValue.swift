// The inert values a checkpoint's pickle builds: numbers, strings, containers, storages and
// tensors. Nothing here can hold code; a pickle that asks for anything else is refused.
//
// Containers are objects, because a pickle fills a dict or list after creating it and may
// refer to it again through the memo. Two rules keep every value a finite tree of bounded
// depth, so that walking or freeing one can neither loop nor exhaust the stack:
//   - a container is sealed when it is placed inside another (or passed to a call), and a
//     sealed container can no longer be filled; so no container can come to contain itself,
//     and a container's depth is final once anything holds it;
//   - no value may be nested deeper than `PickleValue.maxDepth`.
// A sealed container may still be shared (the memo hands out the same object twice).

/// A value built by the pickle.
public enum PickleValue: @unchecked Sendable {
    /// Python's None, bools, ints (BININT*, LONG1 up to 8 bytes), floats (BINFLOAT), `str`
    /// and `bytes`.
    case none
    case bool(Bool)
    case int(Int64)
    /// An integer too large for Int64 (LONG1 with more than 8 bytes): little-endian two's
    /// complement bytes, as pickled.
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes([UInt8])
    /// Containers (see ``PickleTuple``, ``PickleList``, ``PickleDict``).
    case tuple(PickleTuple)
    case list(PickleList)
    case dict(PickleDict)
    /// A whitelisted callable or class, as GLOBAL pushes it.
    case global(TorchGlobal)
    /// A storage named by a persistent id (BINPERSID), and a tensor rebuilt over one.
    case storage(TorchStorage)
    /// Boxed, so that every value stays small (24 bytes): a pickle can make one per byte.
    indirect case tensor(TorchTensor)

    /// Deepest nesting of containers accepted (a state dict needs 2, `hps` a few).
    public static let maxDepth = 100

    /// Containers inside containers: 0 for anything that is not a container.
    var depth: Int {
        switch self {
        case .tuple(let t): t.depth
        case .list(let l): l.depth
        case .dict(let d): d.depth
        default: 0
        }
    }

    /// Marks a container as placed inside another, after which it can no longer be filled.
    func seal() {
        switch self {
        case .list(let l): l.sealed = true
        case .dict(let d): d.sealed = true
        default: break
        }
    }

    /// The value of `key` when this is a dict holding it.
    public subscript(key: String) -> PickleValue? {
        guard case .dict(let d) = self else { return nil }
        return d[.string(key)]
    }

    /// A short description of the value's kind, for error messages: "a dict", "the int 3".
    public var kindDescription: String {
        switch self {
        case .none: "None"
        case .bool(let b): b ? "True" : "False"
        case .int(let i): "the int \(i)"
        case .bigInt: "a big int"
        case .float(let f): "the float \(f)"
        case .string(let s): s.count <= 40 ? "the string '\(s)'" : "a string"
        case .bytes: "bytes"
        case .tuple(let t): "a tuple of \(t.items.count)"
        case .list(let l): "a list of \(l.items.count)"
        case .dict(let d): "a dict of \(d.count)"
        case .global(let g): "the global \(g.qualifiedName)"
        case .storage: "a storage"
        case .tensor: "a tensor"
        }
    }
}

/// A tuple: immutable from creation.
public final class PickleTuple {
    /// The items, in order.
    public let items: [PickleValue]
    let depth: Int

    init(_ items: [PickleValue]) {
        self.items = items
        depth = 1 + (items.map(\.depth).max() ?? 0)
    }
}

/// A list, filled by APPEND and APPENDS until it is sealed.
public final class PickleList {
    /// The items, in order.
    public internal(set) var items: [PickleValue] = []
    var depth = 1
    var sealed = false
}

/// A dict or OrderedDict (both keep insertion order), filled by SETITEM and SETITEMS until
/// it is sealed. Keys are scalars; setting a key again replaces its value in place, as in
/// Python.
public final class PickleDict {
    /// The keys, in insertion order.
    public private(set) var keys: [PickleKey] = []
    /// The values, in the order of `keys`.
    public private(set) var values: [PickleValue] = []
    private var index: [PickleKey: Int] = [:]
    var depth = 1
    var sealed = false

    /// Number of entries.
    public var count: Int { keys.count }

    /// The entries in insertion order.
    public var entries: Zip2Sequence<[PickleKey], [PickleValue]> { zip(keys, values) }

    /// The value of `key`, or nil when the dict has no such key.
    public subscript(key: PickleKey) -> PickleValue? { index[key].map { values[$0] } }

    func set(_ key: PickleKey, _ value: PickleValue) {
        if let i = index[key] {
            values[i] = value
        } else {
            index[key] = keys.count
            keys.append(key)
            values.append(value)
        }
    }
}

/// A dict key: the hashable scalars. (Python would also take tuples and other objects; no
/// checkpoint needs them.)
public enum PickleKey: Hashable, Sendable, CustomStringConvertible {
    /// The scalar values of ``PickleValue`` of the same names.
    case none
    case bool(Bool)
    case int(Int64)
    case bigInt([UInt8])
    /// A float key, by bit pattern.
    case float(UInt64)
    case string(String)
    case bytes([UInt8])

    init?(_ value: PickleValue) {
        switch value {
        case .none: self = .none
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(i)
        case .bigInt(let b): self = .bigInt(b)
        case .float(let f): self = .float(f.bitPattern)
        case .string(let s): self = .string(s)
        case .bytes(let b): self = .bytes(b)
        default: return nil
        }
    }

    /// Bytes that hashing the key reads, to bound a pickle's work.
    var hashCost: Int {
        switch self {
        case .string(let s): s.utf8.count
        case .bytes(let b), .bigInt(let b): b.count
        default: 1
        }
    }

    /// The key as a component of a dotted tensor name: strings as they are, numbers in decimal.
    public var description: String {
        switch self {
        case .none: "None"
        case .bool(let b): b ? "True" : "False"
        case .int(let i): String(i)
        case .bigInt: "<big int>"
        case .float(let bits): String(Double(bitPattern: bits))
        case .string(let s): s
        case .bytes: "<bytes>"
        }
    }
}

/// The globals a checkpoint may name: OrderedDict, the tensor rebuilders, the storage classes.
public enum TorchGlobal: Equatable, Sendable {
    /// `collections.OrderedDict`: called with no arguments, it makes an empty dict.
    case orderedDict
    /// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`.
    case rebuildTensorV2
    /// `torch._utils._rebuild_tensor(storage, offset, size, stride)` (files of torch < 1.0).
    case rebuildTensor
    /// `torch._utils._rebuild_parameter(tensor, requires_grad, hooks)` (a saved `nn.Parameter`).
    case rebuildParameter
    /// `torch.<T>Storage`: names a dtype in a storage's persistent id; never called.
    case storageClass(TorchDType, name: String)

    /// The global named `module.name`, or nil when it is not one of these.
    init?(module: String, name: String) {
        switch (module, name) {
        case ("collections", "OrderedDict"): self = .orderedDict
        case ("torch._utils", "_rebuild_tensor_v2"): self = .rebuildTensorV2
        case ("torch._utils", "_rebuild_tensor"): self = .rebuildTensor
        case ("torch._utils", "_rebuild_parameter"): self = .rebuildParameter
        case ("torch", _):
            guard let dtype = TorchDType(storageClass: name) else { return nil }
            self = .storageClass(dtype, name: name)
        default: return nil
        }
    }

    /// `module.name`, as Python spells it.
    public var qualifiedName: String {
        switch self {
        case .orderedDict: "collections.OrderedDict"
        case .rebuildTensorV2: "torch._utils._rebuild_tensor_v2"
        case .rebuildTensor: "torch._utils._rebuild_tensor"
        case .rebuildParameter: "torch._utils._rebuild_parameter"
        case .storageClass(_, let name): "torch.\(name)"
        }
    }
}
