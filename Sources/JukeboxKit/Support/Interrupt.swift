// Ctrl-C handling for long jobs: the first SIGINT (or SIGTERM) only raises a flag that training
// and sampling loops check between steps, so they can write a checkpoint and stop cleanly. A
// second signal ends the process at once.

import Foundation

/// A process-wide "please stop" flag raised by SIGINT/SIGTERM.
public enum Interrupt {
    private static let flag: UnsafeMutablePointer<sig_atomic_t> = {
        let p = UnsafeMutablePointer<sig_atomic_t>.allocate(capacity: 1)
        p.pointee = 0
        return p
    }()

    /// Installs the handlers (idempotent).
    public static func install() {
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
    }

    /// Whether a stop was requested.
    public static var requested: Bool { flag.pointee != 0 }

    /// Raises the flag from code (tests use this to stop a job after a given step).
    public static func request() { flag.pointee = 1 }

    /// Lowers the flag.
    public static func reset() { flag.pointee = 0 }
}
