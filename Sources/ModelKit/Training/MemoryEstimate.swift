// What a model or a training run will hold in memory, worked out from its config before any of
// it is allocated, so that a batch or a width that cannot fit is refused with a reason instead
// of growing until the kernel kills the process.
//
// Each model's config says how many parameters it builds and how many activation floats a
// batch item needs (see the models' own estimates). Training holds each parameter four times
// (weights, gradients, Adam's two moments).

import Foundation
import TensorCore

/// Memory a job needs, with what it is made of (for the message).
public struct MemoryEstimate: Equatable {
    /// Bytes that do not grow with the batch (weights, optimizer state).
    public var fixedBytes: Double
    /// Bytes per batch item (one crop or one context window).
    public var bytesPerItem: Double
    /// Items per batch.
    public var batch: Int
    /// Parameters of the model.
    public var parameters: Int
    /// What one item is, e.g. "crops of 33024 samples".
    public var item: String

    public init(fixedBytes: Double, bytesPerItem: Double, batch: Int, parameters: Int, item: String) {
        self.fixedBytes = fixedBytes
        self.bytesPerItem = bytesPerItem
        self.batch = batch
        self.parameters = parameters
        self.item = item
    }

    public var bytes: Double { fixedBytes + bytesPerItem * Double(batch) }

    /// The most items that fit in `available` bytes.
    public func largestBatch(fitting available: Double) -> Int {
        Int(max(0, min(Double(Int32.max), ((available - fixedBytes) / bytesPerItem).rounded(.down))))
    }

    /// Throws ``MemoryError`` unless the estimate fits in `available` bytes (default: the
    /// machine's memory, less a tenth for the system and the rest of the process).
    public func check(available: Double = MemoryEstimate.usableBytes) throws {
        guard bytes <= available else { throw MemoryError(estimate: self, available: available) }
    }

    /// Memory this process may use: 90 % of the smaller of physical memory and the cgroup's
    /// limit (containers).
    public static var usableBytes: Double { 0.9 * Double(machineBytes) }

    /// Physical memory, or the cgroup (v2 or v1) limit when that is lower.
    public static var machineBytes: Int {
        var bytes = Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE)))
        for file in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            if let text = try? String(contentsOfFile: file, encoding: .utf8),
               let limit = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), limit > 0 {
                bytes = min(bytes, limit)
            }
        }
        return bytes
    }

    /// `bytes` as "41.3 GB" (decimal units, as `free -h` users read them).
    public static func describe(_ bytes: Double) -> String {
        let units = ["bytes", "kB", "MB", "GB", "TB", "PB", "EB"]
        var value = bytes, unit = 0
        while value >= 1000 && unit < units.count - 1 { value /= 1000; unit += 1 }
        return unit == 0 ? "\(Int(value)) bytes" : String(format: "%.1f %@", value, units[unit])
    }
}

/// A job that does not fit in memory.
public struct MemoryError: Error, CustomStringConvertible {
    public let estimate: MemoryEstimate
    public let available: Double

    public var description: String {
        "needs about \(MemoryEstimate.describe(estimate.bytes)) (\(estimate.parameters) parameters, batch \(estimate.batch) "
            + "\(estimate.item)), more than the \(MemoryEstimate.describe(available)) of memory this process can use"
    }
}

/// Parameters of a convolution (weight and bias) of `kernel` taps from `input` to `output` channels.
public func convolutionParameters(_ input: Int, _ output: Int, _ kernel: Int) -> Int { kernel * input * output + output }
