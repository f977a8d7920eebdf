// Ctrl-C handling for long jobs. The first SIGINT (or SIGTERM) raises a flag that training and
// sampling loops check between steps, so they can write a checkpoint and stop cleanly. A step
// can be long (a big batch), so a watchdog gives the loop a few seconds to get there; if it
// does not, the process stops anyway, keeping the files already written (every write is
// atomic, and one in progress is finished first). A second signal ends the process at once.

import Foundation

/// A process-wide "please stop" flag raised by SIGINT/SIGTERM.
public enum Interrupt {
    private static let flag: UnsafeMutablePointer<sig_atomic_t> = {
        let p = UnsafeMutablePointer<sig_atomic_t>.allocate(capacity: 1)
        p.pointee = 0
        return p
    }()

    /// Seconds the watchdog waits after the first signal for the job to stop by itself
    /// (`JUKEBOX_INTERRUPT_GRACE` sets another).
    nonisolated(unsafe) public static var grace: Double = {
        if let text = ProcessInfo.processInfo.environment["JUKEBOX_INTERRUPT_GRACE"], let value = Double(text),
           value >= 0, value <= 3600 { return value }
        return 3
    }()

    /// What the watchdog prints when it stops the process (the job's own words for what is
    /// kept), and how many writes are in progress.
    private static let state = NSLock()
    nonisolated(unsafe) private static var stopMessage = "stopped before the step ended; the files already written are kept"
    nonisolated(unsafe) private static var writesInProgress = 0
    nonisolated(unsafe) private static var watchdogStarted = false

    /// Installs the handlers and starts the watchdog (idempotent). `whenCut` says what a
    /// user keeps if the watchdog has to stop the job mid-step.
    public static func install(whenCut: String? = nil) {
        _ = flag
        let handler: @convention(c) (Int32) -> Void = { sig in
            if Interrupt.flag.pointee != 0 {
                signal(sig, SIG_DFL)
                raise(sig)
            }
            Interrupt.flag.pointee = 1
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
        state.lock()
        if let whenCut { stopMessage = whenCut }
        let start = !watchdogStarted
        watchdogStarted = true
        state.unlock()
        if start {
            let thread = Thread { watch() }
            thread.name = "jukebox-interrupt-watchdog"
            thread.start()
        }
    }

    /// Polls the flag; once it is up, waits `grace` seconds, then for any write in progress,
    /// and ends the process with status 130.
    private static func watch() {
        while true {
            while flag.pointee == 0 { usleep(50_000) }
            let raised = Date()
            while flag.pointee != 0 && Date().timeIntervalSince(raised) < grace { usleep(50_000) }
            guard flag.pointee != 0 else { continue }   // reset by a test
            state.lock()                                // held until exit: no new write starts
            while writesInProgress > 0 {
                state.unlock()
                usleep(10_000)
                state.lock()
            }
            FileHandle.standardError.write(Data("\njukebox: interrupted: \(stopMessage)\n".utf8))
            _exit(130)
        }
    }

    /// Runs `body` (a file write) so that the watchdog does not stop the process part way.
    public static func protecting<T>(_ body: () throws -> T) rethrows -> T {
        state.lock()
        writesInProgress += 1
        state.unlock()
        defer {
            state.lock()
            writesInProgress -= 1
            state.unlock()
        }
        return try body()
    }

    /// Whether a stop was requested.
    public static var requested: Bool { flag.pointee != 0 }

    /// Raises the flag from code (tests use this to stop a job after a given step).
    public static func request() { flag.pointee = 1 }

    /// Lowers the flag.
    public static func reset() { flag.pointee = 0 }
}
