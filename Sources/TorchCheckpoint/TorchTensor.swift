// Storages and tensors as a PyTorch checkpoint describes them, pointing into the mapped file.
//
// A storage is a flat run of `count` elements of one dtype (a pickle names it by key; the
// file holds its bytes). A tensor is a strided view of a storage:
//   element (i0, i1, …) = storage[offset + i0·stride0 + i1·stride1 + …]
// Several tensors may share a storage (tied weights, slices, transposes), so a tensor is never
// assumed to start at element 0 or to own its storage. Every view is checked, with
// overflow-checked arithmetic, to lie inside its storage before it is handed out.

import TensorCore

/// The element type of a storage, from the storage class the pickle names (`torch.HalfStorage`).
public enum TorchDType: String, CaseIterable, Sendable {
    /// Named as in safetensors: Float, Half, BFloat16, Double; Long, Int, Short, Char (signed
    /// bytes), Byte; Bool.
    case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    /// The dtype of `torch.<name>`, for the storage classes torch writes; nil for any other name.
    init?(storageClass name: String) {
        switch name {
        case "FloatStorage": self = .f32
        case "HalfStorage": self = .f16
        case "BFloat16Storage": self = .bf16
        case "DoubleStorage": self = .f64
        case "LongStorage": self = .i64
        case "IntStorage": self = .i32
        case "ShortStorage": self = .i16
        case "CharStorage": self = .i8
        case "ByteStorage": self = .u8
        case "BoolStorage": self = .bool
        default: return nil
        }
    }

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f64, .i64: 8
        case .f32, .i32: 4
        case .f16, .bf16, .i16: 2
        case .i8, .u8, .bool: 1
        }
    }
}

/// One storage of the checkpoint: `count` elements of `dtype`, somewhere in the file.
public final class TorchStorage: @unchecked Sendable {
    /// The storage's key in the pickle: a number in zip files, a pointer value in legacy files.
    public let key: String
    /// The element type, from the storage class (`torch.HalfStorage` is F16).
    public let dtype: TorchDType
    /// Number of elements.
    public let count: Int
    /// The file the data lies in; kept alive by every tensor that views this storage.
    public let file: MappedFile
    /// Where the data starts in the file; set once the reader has located it.
    public internal(set) var fileOffset = -1

    init(key: String, dtype: TorchDType, count: Int, file: MappedFile) {
        self.key = key
        self.dtype = dtype
        self.count = count
        self.file = file
    }

    /// The storage's bytes in the mapping (`count × dtype.byteSize` of them).
    public var bytes: UnsafeRawBufferPointer {
        precondition(fileOffset >= 0, "storage '\(key)' was not located in the file")
        return UnsafeRawBufferPointer(rebasing: file.bytes[fileOffset ..< fileOffset + count * dtype.byteSize])
    }
}

/// A tensor of the checkpoint: a strided view of a storage, its values left in the file.
public struct TorchTensor: @unchecked Sendable {
    /// The storage viewed, possibly shared with other tensors.
    public let storage: TorchStorage
    /// Extent of each dimension, outermost first.
    public let shape: [Int]
    /// Elements between neighbours along each dimension.
    public let strides: [Int]
    /// Index in the storage of the first element.
    public let storageOffset: Int

    /// The largest rank accepted; Jukebox's tensors have at most 3 dimensions.
    public static let maxRank = 8

    /// The element type (the storage's).
    public var dtype: TorchDType { storage.dtype }

    /// Number of elements (the product of the shape; 1 for a scalar).
    public var count: Int { shape.reduce(1, *) }

    /// Checks the view against its storage: non-negative extents, strides and offset, and every
    /// element inside the storage. Returns the reason when it is invalid.
    static func make(storage: TorchStorage, offset: Int, shape: [Int], strides: [Int]) -> Result<TorchTensor, ViewError> {
        guard shape.count == strides.count else {
            return .failure(ViewError("size has \(shape.count) dimensions but stride has \(strides.count)"))
        }
        guard shape.count <= maxRank else {
            return .failure(ViewError("\(shape.count) dimensions, more than the \(maxRank) accepted"))
        }
        guard offset >= 0, shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }) else {
            return .failure(ViewError("negative offset, size or stride (offset \(offset), size \(shape), stride \(strides))"))
        }
        var count = 1
        for extent in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: extent)
            guard !overflow else { return .failure(ViewError("size \(shape) has more elements than an Int can count")) }
            count = product
        }
        let tensor = TorchTensor(storage: storage, shape: shape, strides: strides, storageOffset: offset)
        guard count > 0 else {
            guard offset <= storage.count else {
                return .failure(ViewError("offset \(offset) is past the end of storage '\(storage.key)' (\(storage.count) elements)"))
            }
            return .success(tensor)
        }
        // The last element's index: offset + Σ (extent − 1) · stride, which must be in the storage.
        var last = offset
        for (extent, stride) in zip(shape, strides) {
            let (step, overflow) = (extent - 1).multipliedReportingOverflow(by: stride)
            let (sum, overflow2) = last.addingReportingOverflow(step)
            guard !overflow, !overflow2 else {
                return .failure(ViewError("size \(shape) with stride \(strides) reaches past any storage"))
            }
            last = sum
        }
        guard last < storage.count else {
            return .failure(ViewError("size \(shape), stride \(strides) and offset \(offset) reach element \(last) "
                                      + "of storage '\(storage.key)', which has \(storage.count)"))
        }
        return .success(tensor)
    }

    /// Whether the elements lie in row-major order without gaps (extents of 1 may have any
    /// stride, as in torch).
    public var isContiguous: Bool {
        var expected = 1
        for (extent, stride) in zip(shape, strides).reversed() where extent != 1 {
            if stride != expected { return false }
            expected *= extent
        }
        return true
    }

    /// The tensor's bytes, straight from the mapped file, when it is contiguous; nil otherwise.
    /// Row-major, little-endian, and not necessarily aligned: legacy files put storages at
    /// arbitrary offsets (zip files align them to 64 bytes).
    public var contiguousBytes: UnsafeRawBufferPointer? {
        guard isContiguous else { return nil }
        let size = dtype.byteSize
        return UnsafeRawBufferPointer(rebasing: storage.bytes[storageOffset * size ..< (storageOffset + count) * size])
    }

    /// The values in row-major order as Float32, gathered by strides (F16 and BF16 widened,
    /// F64 rounded); nil for an integer or boolean dtype.
    public func floatValues() -> [Float]? {
        let bytes = storage.bytes
        let load: (Int) -> Float
        switch dtype {
        case .f32: load = { Float(bitPattern: bytes.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)) }
        case .f16: load = { HalfFloat.float(fromFloat16Bits: bytes.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) }
        case .bf16: load = { HalfFloat.float(fromBFloat16Bits: bytes.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) }
        case .f64: load = { Float(Double(bitPattern: bytes.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self))) }
        default: return nil
        }
        var values: [Float] = []
        values.reserveCapacity(count)
        forEachIndex { values.append(load($0)) }
        return values
    }

    /// The values as Int64 (integer and boolean dtypes only; nil otherwise), gathered by strides.
    public func integerValues() -> [Int64]? {
        let bytes = storage.bytes
        let load: (Int) -> Int64
        switch dtype {
        case .i64: load = { Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) }
        case .i32: load = { Int64(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
        case .i16: load = { Int64(Int16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * $0, as: Int16.self))) }
        case .i8: load = { Int64(bytes.loadUnaligned(fromByteOffset: $0, as: Int8.self)) }
        case .u8, .bool: load = { Int64(bytes[$0]) }
        default: return nil
        }
        var values: [Int64] = []
        values.reserveCapacity(count)
        forEachIndex { values.append(load($0)) }
        return values
    }

    /// Calls `body` with the storage index of every element, in row-major order.
    private func forEachIndex(_ body: (Int) -> Void) {
        guard count > 0 else { return }
        var position = [Int](repeating: 0, count: shape.count)
        var index = storageOffset
        while true {
            body(index)
            // Advance the odometer from the innermost dimension. A stride is added only when
            // the next position exists, so the index never leaves the checked range (a
            // dimension of extent 1 may have any stride, even Int.max).
            var d = shape.count - 1
            while d >= 0, position[d] + 1 == shape[d] {
                index -= strides[d] * position[d]
                position[d] = 0
                d -= 1
            }
            if d < 0 { return }
            position[d] += 1
            index += strides[d]
        }
    }
}

/// Why a tensor view does not fit its storage.
struct ViewError: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}
