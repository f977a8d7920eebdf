// Hand-made pickles, legacy files and zips for the tests: what torch writes, and what a
// hostile or broken file might hold instead.

import Foundation
@testable import TorchCheckpoint

/// The fixtures folder, found from this source file's location.
func fixturePath(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/" + name).path
}

/// Bytes of a pickle, opcode by opcode.
struct Pickle {
    var bytes: [UInt8] = [0x80, 0x02]  // PROTO 2, as torch writes

    init(protocol version: UInt8 = 2) { bytes = [0x80, version] }

    mutating func op(_ opcode: PickleOpcode) { bytes.append(opcode.rawValue) }
    mutating func raw(_ more: [UInt8]) { bytes += more }

    mutating func string(_ text: String) {
        op(.binUnicode)
        bytes += le(UInt32(text.utf8.count)) + Array(text.utf8)
    }

    mutating func int(_ value: Int) {
        if (0 ..< 256).contains(value) {
            op(.binInt1); bytes.append(UInt8(value))
        } else if (Int(Int32.min) ... Int(Int32.max)).contains(value) {
            op(.binInt); bytes += le(UInt32(bitPattern: Int32(value)))
        } else {
            op(.long1); bytes.append(8); bytes += le(UInt64(bitPattern: Int64(value)))
        }
    }

    mutating func global(_ module: String, _ name: String) {
        op(.global)
        bytes += Array("\(module)\n\(name)\n".utf8)
    }

    mutating func tuple(_ items: [Int]) {
        op(.mark)
        for i in items { int(i) }
        op(.tuple)
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())` of a storage
    /// named by a persistent id, as torch writes it (zip's 5-field id, or legacy's 6).
    mutating func tensor(storageClass: String = "FloatStorage", key: String, count: Int,
                         offset: Int = 0, shape: [Int], strides: [Int], legacy: Bool = true) {
        global("torch._utils", "_rebuild_tensor_v2")
        op(.mark)
        op(.mark)
        string("storage")
        global("torch", storageClass)
        string(key)
        string("cpu")
        int(count)
        if legacy { op(.none) }
        op(.tuple)
        op(.binPersID)
        int(offset)
        tuple(shape)
        tuple(strides)
        op(.newFalse)
        global("collections", "OrderedDict")
        op(.emptyTuple)
        op(.reduce)
        op(.tuple)
        op(.reduce)
    }

    /// `{'model': {name: tensor, …}, 'step': step}` around `tensors`, which pushes the
    /// name/tensor pairs.
    static func checkpoint(step: Int = 7, legacy: Bool = true, _ tensors: (inout Pickle) -> Void) -> Pickle {
        var p = Pickle()
        p.op(.emptyDict)
        p.string("model")
        p.op(.emptyDict)
        p.op(.mark)
        tensors(&p)
        p.op(.setItems)
        p.op(.setItem)
        p.string("step")
        p.int(step)
        p.op(.setItem)
        p.op(.stop)
        return p
    }
}

func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.littleEndian, Array.init) }

/// A legacy-format file: the three header pickles, `object`, the key list, then each
/// storage's count and bytes (`count` overrides the count written before the data).
func legacyFile(object: [UInt8], storages: [(key: String, data: [UInt8], count: Int)]) -> [UInt8] {
    var out: [UInt8] = TorchFile.legacySignature + [0x2e]
    var version = Pickle(); version.int(1001); version.op(.stop)
    var info = Pickle()
    info.op(.emptyDict); info.string("protocol_version"); info.int(1001); info.op(.setItem)
    info.string("little_endian"); info.op(.newTrue); info.op(.setItem); info.op(.stop)
    var keys = Pickle()
    keys.op(.emptyList); keys.op(.mark)
    for storage in storages { keys.string(storage.key) }
    keys.op(.appends); keys.op(.stop)
    out += version.bytes + info.bytes + object + keys.bytes
    for storage in storages { out += le(Int64(storage.count)) + storage.data }
    return out
}

/// Little-endian bytes of Float32 values.
func floatBytes(_ values: [Float]) -> [UInt8] { values.flatMap { le($0.bitPattern) } }

/// A zip of stored entries written as torch does (without data descriptors). `zip64` puts
/// every size and offset in zip64 extra fields and adds the zip64 end records; `method`
/// sets the compression method field (the data is not compressed for real).
func zipFile(_ entries: [(name: String, data: [UInt8])], zip64: Bool = false, method: UInt16 = 0) -> [UInt8] {
    var out: [UInt8] = []
    var central: [UInt8] = []
    for (name, data) in entries {
        let offset = out.count
        let name8 = Array(name.utf8)
        out += le(UInt32(0x0403_4b50)) + le(UInt16(20)) + le(UInt16(0)) + le(method) + [0, 0, 0, 0] + le(UInt32(0))
        out += le(UInt32(data.count)) + le(UInt32(data.count)) + le(UInt16(name8.count)) + le(UInt16(0)) + name8 + data
        let extra: [UInt8] = zip64 ? le(UInt16(1)) + le(UInt16(24)) + le(UInt64(data.count)) + le(UInt64(data.count)) + le(UInt64(offset)) : []
        let saturated = zip64 ? UInt32.max : nil
        central += le(UInt32(0x0201_4b50)) + le(UInt16(45)) + le(UInt16(45)) + le(UInt16(0)) + le(method) + [0, 0, 0, 0]
        central += le(UInt32(0)) + le(saturated ?? UInt32(data.count)) + le(saturated ?? UInt32(data.count))
        central += le(UInt16(name8.count)) + le(UInt16(extra.count)) + le(UInt16(0)) + le(UInt16(0)) + le(UInt16(0))
        central += le(UInt32(0)) + le(saturated ?? UInt32(offset)) + name8 + extra
    }
    let directoryOffset = out.count
    out += central
    if zip64 {
        let record = out.count
        out += le(UInt32(0x0606_4b50)) + le(UInt64(44)) + le(UInt16(45)) + le(UInt16(45)) + le(UInt32(0)) + le(UInt32(0))
        out += le(UInt64(entries.count)) + le(UInt64(entries.count)) + le(UInt64(central.count)) + le(UInt64(directoryOffset))
        out += le(UInt32(0x0706_4b50)) + le(UInt32(0)) + le(UInt64(record)) + le(UInt32(1))
    }
    out += le(UInt32(0x0605_4b50)) + le(UInt16(0)) + le(UInt16(0))
    out += le(UInt16(zip64 ? 0xffff : entries.count)) + le(UInt16(zip64 ? 0xffff : entries.count))
    out += le(zip64 ? UInt32.max : UInt32(central.count)) + le(zip64 ? UInt32.max : UInt32(directoryOffset)) + le(UInt16(0))
    return out
}

/// Reads `bytes` as the checkpoint `name`.
func read(_ bytes: [UInt8], name: String = "test.pth") throws -> TorchFile {
    try TorchFile(file: MappedFile(copying: Data(bytes), name: name))
}

/// The error reading `bytes` throws, or nil when it reads.
func readingError(_ bytes: [UInt8]) -> TorchCheckpointError? {
    do {
        _ = try read(bytes)
        return nil
    } catch let error as TorchCheckpointError {
        return error
    } catch {
        fatalError("not a TorchCheckpointError: \(error)")
    }
}

/// A legacy file whose object pickle is `object` (with no storages).
func legacyFile(object: Pickle) -> [UInt8] { legacyFile(object: object.bytes, storages: []) }
