// The run folder of a training job: the latest checkpoint, the config it started from, and
// metrics.jsonl (one JSON object per logged step). A resumed run cuts the log back to the
// checkpoint's step, so rows written after the last checkpoint are not duplicated.

import Foundation
import TensorCore

/// Files of one training run.
public struct RunDirectory {
    public let path: String

    public var checkpointPath: String { path + "/checkpoint.safetensors" }
    public var metricsPath: String { path + "/metrics.jsonl" }
    public var configPath: String { path + "/config.json" }

    /// The files of a run in `path`, without looking at or creating anything.
    public init(naming path: String) {
        self.path = path
    }

    /// Creates the folder when `resume` is false (refusing one that already holds a run, so
    /// nothing is overwritten), or checks that it holds a checkpoint when `resume` is true.
    public init(_ path: String, resume: Bool) throws {
        self.path = path
        let fm = FileManager.default
        if resume {
            guard fm.fileExists(atPath: checkpointPath) else {
                throw ConfigError("\(path): --resume given but there is no checkpoint.safetensors to resume from")
            }
        } else {
            if fm.fileExists(atPath: checkpointPath) {
                throw ConfigError("\(path): already holds a training run; pass --resume to continue it or choose another --out")
            }
            try OutputFolder.prepare(path)
        }
    }

    /// Appends one row to metrics.jsonl.
    public func log(_ row: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: row, options: [.sortedKeys]) else { return }
        var line = data
        line.append(0x0A)
        if let handle = FileHandle(forWritingAtPath: metricsPath) {
            handle.seekToEndOfFile()
            Interrupt.protecting { handle.write(line) }
            handle.closeFile()
        } else {
            FileManager.default.createFile(atPath: metricsPath, contents: line)
        }
    }

    /// Drops metrics rows after `step` (called when resuming from a checkpoint at `step`).
    public func truncateMetrics(after step: Int) {
        guard let text = try? String(contentsOfFile: metricsPath, encoding: .utf8) else { return }
        let kept = text.split(separator: "\n").filter { line in
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let s = obj["step"] as? Int else { return true }
            return s <= step
        }
        try? (kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).write(toFile: metricsPath, atomically: true, encoding: .utf8)
    }

    /// Writes the config the run uses (once, at the start of a new run).
    public func saveConfig(_ json: String) throws {
        try json.write(toFile: configPath, atomically: true, encoding: .utf8)
    }
}

/// Five significant digits, for logs: keeps JSON short and readable.
public func rounded(_ x: Float) -> Double {
    guard x.isFinite else { return Double(x) }
    return Double(String(format: "%.5g", Double(x))) ?? Double(x)
}

extension RunDirectory {
    /// Where a trainer starts: from `checkpoint` when resuming (its weights into `optimizer`'s
    /// parameters, Adam's moments, the generator; metrics after its step cut), else at step 0
    /// with `fresh` as the generator and `config` saved as the run's config.
    public func start(from checkpoint: Checkpoint?, optimizer: Adam, fresh: RandomGenerator,
                      config: String) throws -> (step: Int, generator: RandomGenerator) {
        guard let checkpoint else {
            try saveConfig(config)
            return (0, fresh)
        }
        try checkpoint.load(into: optimizer.parameters.map { ($0.name, $0.tensor) })
        try optimizer.loadState(checkpoint.tensors, step: checkpoint.step)
        truncateMetrics(after: checkpoint.step)
        return (checkpoint.step, try checkpoint.generator())
    }
}
