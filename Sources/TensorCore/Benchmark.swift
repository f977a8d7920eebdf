// Benchmark plumbing shared by `jukebox bench`: timing with a median over repeats, raw
// cblas_sgemm measured in the same run for a product of the same size, and one JSON object per
// result. On a shared machine an absolute time means little; the ratio of a kernel's GFLOP/s
// to sgemm's on the same M, N, K holds up.

import Foundation
import CBLAS

/// One line of `jukebox bench --json`.
public struct BenchmarkResult {
    public var name: String
    /// Median wall time of one run, in milliseconds.
    public var milliseconds: Double
    /// Useful floating-point work per second of the measured kernel, when it has a FLOP count.
    public var gflops: Double?
    /// Raw sgemm on the equivalent product, measured in the same run.
    public var sgemmGflops: Double?
    /// Other figures (`tokens_per_s`, `realtime_factor`, `peak_rss_mb`, …), in insertion order.
    public var extra: [(String, Double)]
    /// A remark, e.g. why a case was skipped.
    public var note: String?

    public init(name: String, milliseconds: Double, gflops: Double? = nil, sgemmGflops: Double? = nil,
                extra: [(String, Double)] = [], note: String? = nil) {
        self.name = name
        self.milliseconds = milliseconds
        self.gflops = gflops
        self.sgemmGflops = sgemmGflops
        self.extra = extra
        self.note = note
    }

    /// `gflops / sgemmGflops`, the efficiency against the machine's own sgemm.
    public var ratio: Double? {
        guard let g = gflops, let s = sgemmGflops, s > 0 else { return nil }
        return g / s
    }

    /// One JSON object: `{"name": ..., "ms": ..., "gflops": ..., "sgemm_gflops": ..., ...}`.
    public var jsonLine: String {
        func num(_ v: Double) -> String { v.isFinite ? String(format: "%.4g", v) : "null" }
        var fields = ["\"name\": \"\(name)\"", "\"ms\": \(num(milliseconds))"]
        if let gflops { fields.append("\"gflops\": \(num(gflops))") }
        if let sgemmGflops { fields.append("\"sgemm_gflops\": \(num(sgemmGflops))") }
        if let ratio { fields.append("\"ratio\": \(String(format: "%.3f", ratio))") }
        for (k, v) in extra { fields.append("\"\(k)\": \(num(v))") }
        if let note { fields.append("\"note\": \"\(note.replacingOccurrences(of: "\"", with: "'"))\"") }
        return "{" + fields.joined(separator: ", ") + "}"
    }

    /// A line for people: name, time, rates and ratio.
    public var humanLine: String {
        var s = name.padding(toLength: 24, withPad: " ", startingAt: 0) + String(format: "%10.3f ms", milliseconds)
        if let gflops { s += String(format: "  %7.1f GFLOP/s", gflops) }
        if let sgemmGflops { s += String(format: "  sgemm %7.1f", sgemmGflops) }
        if let ratio { s += String(format: "  ratio %.2f", ratio) }
        for (k, v) in extra { s += "  \(k) \(String(format: "%.4g", v))" }
        if let note { s += "  (\(note))" }
        return s
    }
}

/// Timing helpers.
public enum Benchmark {
    /// Monotonic time in seconds.
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Median seconds of `repeats` runs of `body`, after `warmup` untimed runs.
    public static func median(repeats: Int = 5, warmup: Int = 1, _ body: () -> Void) -> Double {
        for _ in 0..<warmup { body() }
        var times: [Double] = []
        for _ in 0..<Swift.max(1, repeats) {
            let t0 = now()
            body()
            times.append(now() - t0)
        }
        times.sort()
        return times[times.count / 2]
    }

    /// Median seconds of each body, run in turns (a, b, a, b, …) after one untimed round, so
    /// that load from other processes falls on all of them alike and their ratio holds up.
    public static func interleavedMedians(repeats: Int = 5, _ bodies: [() -> Void]) -> [Double] {
        for body in bodies { body() }
        var times = [[Double]](repeating: [], count: bodies.count)
        for _ in 0..<Swift.max(1, repeats) {
            for (i, body) in bodies.enumerated() {
                let t0 = now()
                body()
                times[i].append(now() - t0)
            }
        }
        return times.map { $0.sorted()[$0.count / 2] }
    }

    /// Raw cblas_sgemm on an (M × K) @ (K × N) product with OpenBLAS threaded on every core:
    /// a body for ``interleavedMedians(repeats:_:)``. Its buffers live as long as the body.
    public static func rawSgemm(m: Int, n: Int, k: Int) -> () -> Void {
        let a = Tensor(repeating: 0.5, shape: [m, k]), b = Tensor(repeating: 0.25, shape: [k, n])
        let c = Tensor(uninitializedShape: [m, n])
        return {
            Threading.withNativeBLASThreading {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1, a.data, Int32(k),
                            b.data, Int32(n), 0, c.data, Int32(n))
            }
        }
    }

    /// GFLOP/s of raw cblas_sgemm on an (M × K) @ (K × N) product, median of a few runs, with
    /// OpenBLAS threaded on every core as it is out of the box.
    public static func sgemmGflops(m: Int, n: Int, k: Int, repeats: Int = 5) -> Double {
        let a = Tensor(repeating: 0.5, shape: [m, k]), b = Tensor(repeating: 0.25, shape: [k, n])
        let c = Tensor(uninitializedShape: [m, n])
        let seconds = Threading.withNativeBLASThreading {
            median(repeats: repeats) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1, a.data, Int32(k),
                            b.data, Int32(n), 0, c.data, Int32(n))
            }
        }
        return 2 * Double(m) * Double(n) * Double(k) / seconds / 1e9
    }

    /// Peak resident memory of this process so far, in MiB (from /proc/self/status VmHWM).
    public static func peakResidentMegabytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
            return kb / 1024
        }
        return 0
    }
}
