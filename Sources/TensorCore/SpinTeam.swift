// A fork-join team for streams of tiny parallel jobs (token sampling: dozens of jobs of a few
// microseconds each per token). Dispatch wakes a sleeping thread for every job, which costs as
// much as the job; here one helper thread per extra core spins on an atomic counter between
// jobs and picks the next one up within a fraction of a microsecond. After about 50 µs without
// work it parks on a condition, so an idle team costs nothing.
//
// Parts are claimed from an atomic counter rather than tied to threads: on a busy machine a
// helper that the scheduler has not run yet leaves its part to the caller instead of making
// the caller wait a whole time slice for it. Each part still runs exactly once, so per-part
// scratch stays private and results do not depend on which thread ran a part.

import Foundation
import Synchronization

/// Runs `body(part)` for parts 0..<size, part 0 on the caller and the others on spinning helpers.
public final class SpinTeam: @unchecked Sendable {
    /// Number of parts per job (the caller plus the helpers).
    public let size: Int
    private let state: TeamState

    /// A team of `size` parts (default: one per core).
    public init(size: Int = Parallel.coreCount) {
        self.size = Swift.max(1, size)
        state = TeamState(helpers: self.size - 1)
        for helper in 1..<Swift.max(1, self.size) {
            let state = self.state
            let thread = Thread { state.helperLoop(helper) }
            thread.name = "jukebox-spin-\(helper)"
            thread.start()
        }
    }

    /// Stops the helpers (they hold the shared state until they exit).
    deinit { state.stop() }

    /// Runs `body` for every part and returns when all are done.
    public func run(_ body: @escaping (Int) -> Void) {
        guard size > 1 else { return body(0) }
        state.run(body)
    }

    /// Splits `0..<count` into one contiguous range per part and runs `body` on each.
    public func forRanges(_ count: Int, _ body: @escaping (Range<Int>) -> Void) {
        let parts = Swift.min(size, count)
        guard parts > 1 else {
            if count > 0 { body(0..<count) }
            return
        }
        let chunk = (count + parts - 1) / parts
        run { p in
            let lo = p * chunk, hi = Swift.min(count, lo + chunk)
            if lo < hi { body(lo..<hi) }
        }
    }
}

/// What the caller and the helpers share.
private final class TeamState: @unchecked Sendable {
    /// The current job's number (high bits) and its next unclaimed part (low `partBits` bits):
    /// one atomic word, so a part can only be claimed for the job that is running.
    let ticket = Atomic<Int>(0)
    static let partBits = 20
    static let partMask = (1 << partBits) - 1
    /// Parts of the current job finished so far.
    let finished = Atomic<Int>(0)
    let parts: Int
    let parked = Atomic<Int>(0)
    let stopping = Atomic<Bool>(false)
    let condition = NSCondition()
    /// The current job; read only by a thread holding one of its parts, which keeps it set.
    var job: ((Int) -> Void)?

    init(helpers: Int) {
        parts = helpers + 1
    }

    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    /// Claims a part of job `number`, or returns nil when it has none left or is over.
    private func claim(_ number: Int) -> Int? {
        var current = ticket.load(ordering: .acquiring)
        while current >> Self.partBits == number && current & Self.partMask < parts {
            let (exchanged, original) = ticket.compareExchange(expected: current, desired: current + 1,
                                                               ordering: .acquiringAndReleasing)
            if exchanged { return current & Self.partMask }
            current = original
        }
        return nil
    }

    /// Runs parts of job `number` until none is left.
    private func work(_ number: Int) {
        while let part = claim(number) {
            job!(part)
            finished.add(1, ordering: .releasing)
        }
    }

    func run(_ body: @escaping (Int) -> Void) {
        // The previous job's parts were all finished before its run returned, so no helper
        // holds one and the job and counter can be replaced.
        job = body
        finished.store(0, ordering: .relaxed)
        let number = (ticket.load(ordering: .relaxed) >> Self.partBits) + 1
        ticket.store(number << Self.partBits, ordering: .sequentiallyConsistent)
        if parked.load(ordering: .sequentiallyConsistent) > 0 {
            condition.lock()
            condition.broadcast()
            condition.unlock()
        }
        work(number)
        var spins = 0
        while finished.load(ordering: .acquiring) != parts {
            spins += 1
            if spins > 4096 { sched_yield() }
        }
        job = nil
    }

    func helperLoop(_ index: Int) {
        var seen = 0
        let spinLimit = 200_000   // about 50 µs of polling before parking
        while true {
            var spins = 0
            while ticket.load(ordering: .acquiring) >> Self.partBits == seen {
                if stopping.load(ordering: .relaxed) { return }
                spins += 1
                if spins > spinLimit {
                    condition.lock()
                    parked.add(1, ordering: .sequentiallyConsistent)
                    while ticket.load(ordering: .sequentiallyConsistent) >> Self.partBits == seen
                            && !stopping.load(ordering: .relaxed) {
                        condition.wait()
                    }
                    parked.subtract(1, ordering: .sequentiallyConsistent)
                    condition.unlock()
                    spins = 0
                }
            }
            if stopping.load(ordering: .relaxed) { return }
            // A helper that wakes late may find its job done or the next one begun; it only
            // runs parts it claims for the job that is running.
            seen = ticket.load(ordering: .acquiring) >> Self.partBits
            work(seen)
        }
    }
}
