// Progress lines for long work on stderr: rewritten in place when stderr is a terminal, one plain
// line per interval when it is not (logs, Makefiles). Rate and ETA come from the work done in
// this process, so a resumed job does not count the steps it skipped.

import Foundation

/// Tracks done/total work and renders rate and ETA.
public final class ProgressMeter {
    public let total: Int
    private let startDone: Int
    private let startTime: Double
    private var lastEmit = -Double.infinity
    /// Seconds between lines when stderr is not a terminal.
    public var plainInterval: Double
    public let isTerminal = isatty(2) != 0

    /// `done` is where the work starts (non-zero when resuming).
    public init(total: Int, done: Int = 0, plainInterval: Double = 10) {
        self.total = total
        startDone = done
        startTime = ProgressMeter.now()
        self.plainInterval = plainInterval
    }

    static func now() -> Double { Date().timeIntervalSinceReferenceDate }

    /// Seconds since the meter started.
    public var elapsed: Double { ProgressMeter.now() - startTime }

    /// Units of work per second since the start.
    public func rate(done: Int) -> Double {
        let t = elapsed
        return t > 0 ? Double(done - startDone) / t : 0
    }

    /// Estimated seconds left.
    public func eta(done: Int) -> Double? {
        let r = rate(done: done)
        return r > 0 ? Double(total - done) / r : nil
    }

    /// Writes `line` (with rate and ETA appended) if it is due: at most 10 times a second on a
    /// terminal, every `plainInterval` seconds otherwise; `force` writes regardless.
    public func report(done: Int, _ line: String, force: Bool = false) {
        let t = ProgressMeter.now()
        let interval = isTerminal ? 0.1 : plainInterval
        guard force || t - lastEmit >= interval else { return }
        lastEmit = t
        let eta = self.eta(done: done).map { ProgressMeter.duration($0) } ?? "?"
        let full = "\(line)  ETA \(eta)"
        if isTerminal {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + full).utf8))
        } else {
            FileHandle.standardError.write(Data((full + "\n").utf8))
        }
    }

    /// Writes `line` as it is (the caller computed its own ETA), when due as ``report``.
    public func reportLine(_ line: String, force: Bool = false) {
        let t = ProgressMeter.now()
        guard force || t - lastEmit >= (isTerminal ? 0.1 : plainInterval) else { return }
        lastEmit = t
        FileHandle.standardError.write(Data((isTerminal ? "\r\u{1B}[K" + line : line + "\n").utf8))
    }

    /// Ends an in-place line with a newline (terminal only).
    public func finish() {
        if isTerminal { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    /// `45s`, `3m05s`, `1h02m`.
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60)
    }
}

/// Writes a line to stderr.
public func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
