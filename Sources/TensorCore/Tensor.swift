// A Tensor is a contiguous, row-major block of Float32 values with a shape, plus what reverse-mode
// automatic differentiation needs: a gradient slot and, for results of recorded operations, the
// node that knows how to push a gradient back to the operation's inputs.
//
// Shape legend used throughout TensorCore: B batch, T time, C channels, H heads, D head size,
// M/N/K matrix dimensions, V vocabulary size.

import Foundation
import CSystem
import Synchronization

/// Reference-counted, 64-byte aligned Float32 buffer. Several tensors may share one storage
/// (a reshape is a new tensor over the same storage).
public final class TensorStorage {
    /// Number of Float32 elements.
    public let count: Int
    /// First element; valid for `count` elements until the storage is released.
    public let pointer: UnsafeMutablePointer<Float>

    /// The block from malloc that `pointer` lies in.
    private let block: UnsafeMutableRawPointer

    /// Keeps freed tensor memory in the process for reuse. By default glibc returns every large
    /// block to the kernel on free, so the next tensor of that size pays a page fault and a
    /// kernel zero-fill for each 4 KiB page: a fifth of the time of a 16 MB convolution.
    /// Training and sampling allocate the same sizes step after step, so the heap stays flat
    /// at the peak of one step.
    private static let retainFreedMemory: Void = {
        // No block is mapped on its own, however large: glibc caps M_MMAP_THRESHOLD at 32 MiB,
        // and a 10 s decode in one chunk allocates 56-113 MB activations, whose page faults
        // cost a fifth of its time.
        mallopt(M_MMAP_MAX, 0)
        mallopt(M_TRIM_THRESHOLD, Int32.max)
    }()

    /// Allocates uninitialised memory for `count` floats.
    public init(uninitializedCount count: Int) {
        precondition(count >= 0, "TensorStorage: negative element count \(count)")
        TensorStorage.retainFreedMemory
        self.count = count
        // Plain malloc, aligned by hand: glibc 2.36 rarely reuses a freed posix_memalign block
        // (glibc bug 14581, fixed in 2.38), so the heap grew by hundreds of MB per decode and
        // by a fifth in a training step.
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        guard let raw = malloc(bytes + 63) else { preconditionFailure("TensorStorage: cannot allocate \(bytes) bytes") }
        block = raw
        let aligned = raw + (64 - Int(bitPattern: raw) % 64) % 64
        pointer = aligned.bindMemory(to: Float.self, capacity: max(count, 1))
        let live = TensorStorage.live.add(bytes, ordering: .relaxed).newValue
        TensorStorage.peak.max(live, ordering: .relaxed)
    }

    deinit {
        TensorStorage.live.subtract(max(count, 1) * MemoryLayout<Float>.stride, ordering: .relaxed)
        free(block)
    }

    private static let live = Atomic<Int>(0)
    private static let peak = Atomic<Int>(0)

    /// Bytes of tensor memory allocated now, and the most at any time since the last
    /// ``resetPeakBytes()`` (memory estimates are checked against these).
    public static var liveBytes: Int { live.load(ordering: .relaxed) }
    public static var peakBytes: Int { peak.load(ordering: .relaxed) }
    public static func resetPeakBytes() { peak.store(live.load(ordering: .relaxed), ordering: .relaxed) }
}

/// A Float32 tensor of any rank in contiguous row-major storage, with reverse-mode autodiff.
///
/// Operations on tensors that require gradients record a ``GradNode`` while gradient recording is
/// on (see ``Tensor/withoutGrad(_:)``); ``backward()`` on a scalar result then fills ``grad`` of
/// every tensor that requires it.
public final class Tensor {
    /// The extent of each dimension, outermost first.
    public let shape: [Int]
    /// Total number of elements (the product of `shape`; 1 for a scalar).
    public let count: Int
    /// The buffer that holds the values.
    public let storage: TensorStorage

    /// The gradient of the last ``backward()`` with respect to this tensor, once computed.
    public var grad: Tensor?
    /// Whether ``backward()`` should compute a gradient for this tensor. Parameters set this.
    public var requiresGrad: Bool
    /// The operation that produced this tensor, while recorded.
    var node: GradNode?
    /// True while `grad` may alias another tensor's gradient and must not be updated in place.
    var gradIsShared = false

    /// Makes a tensor over existing storage (which must hold at least as many elements).
    init(shape: [Int], storage: TensorStorage, requiresGrad: Bool = false) {
        let count = Tensor.elementCount(shape)
        precondition(storage.count == count,
                     "Tensor: storage of \(storage.count) elements cannot hold shape \(shape)")
        self.shape = shape
        self.count = count
        self.storage = storage
        self.requiresGrad = requiresGrad
    }

    /// An uninitialised tensor; every element must be written before it is read.
    public convenience init(uninitializedShape shape: [Int]) {
        self.init(shape: shape, storage: TensorStorage(uninitializedCount: Tensor.elementCount(shape)))
    }

    /// A tensor of `shape` filled with `value`.
    public convenience init(repeating value: Float, shape: [Int], requiresGrad: Bool = false) {
        self.init(uninitializedShape: shape)
        self.data.update(repeating: value, count: count)
        self.requiresGrad = requiresGrad
    }

    /// A tensor of zeros.
    public static func zeros(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        Tensor(repeating: 0, shape: shape, requiresGrad: requiresGrad)
    }

    /// A tensor from row-major values; `values.count` must equal the product of `shape`.
    public convenience init(_ values: [Float], shape: [Int], requiresGrad: Bool = false) {
        precondition(values.count == Tensor.elementCount(shape),
                     "Tensor: \(values.count) values do not fill shape \(shape)")
        self.init(uninitializedShape: shape)
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: values.count) }
        self.requiresGrad = requiresGrad
    }

    /// A rank-0 tensor holding one value.
    public convenience init(scalar value: Float) {
        self.init([value], shape: [])
    }

    /// Pointer to the first element (row-major).
    @inline(__always) public var data: UnsafeMutablePointer<Float> { storage.pointer }

    /// Number of dimensions.
    public var rank: Int { shape.count }

    /// The values as an array (copies).
    public var array: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// The single value of a tensor with one element.
    public var item: Float {
        precondition(count == 1, "item: tensor of shape \(shape) has \(count) elements, not 1")
        return data[0]
    }

    /// A copy that shares nothing with this tensor and records no history.
    public func copy() -> Tensor {
        let out = Tensor(uninitializedShape: shape)
        out.data.update(from: data, count: count)
        return out
    }

    /// The same values, cut off from the recorded history (no gradient flows through).
    public func detached() -> Tensor {
        Tensor(shape: shape, storage: storage)
    }

    /// Size of dimension `axis`; negative axes count from the end.
    public func size(_ axis: Int) -> Int { shape[normalizedAxis(axis)] }

    /// `axis` in `0..<rank`, accepting negative axes that count from the end.
    public func normalizedAxis(_ axis: Int) -> Int {
        let a = axis < 0 ? axis + rank : axis
        precondition(a >= 0 && a < rank, "axis \(axis) is out of range for shape \(shape)")
        return a
    }

    /// Product of the dimensions (1 for a scalar).
    public static func elementCount(_ shape: [Int]) -> Int {
        var n = 1
        for d in shape {
            precondition(d >= 0, "Tensor: negative dimension in shape \(shape)")
            n *= d
        }
        return n
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = min(count, 8)
        let values = (0..<shown).map { String(format: "%.4g", data[$0]) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(values)\(count > shown ? ", …" : "")])"
    }
}
