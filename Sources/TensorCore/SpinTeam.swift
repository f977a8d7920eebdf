// A fork-join team for streams of tiny parallel jobs (token sampling: dozens of jobs of a few
// microseconds each per token). Dispatch wakes a sleeping thread for every job, which costs as
// much as the job; here one helper thread per extra core spins on an atomic counter between
// jobs and picks the next one up within a fraction of a microsecond. After about 50 µs without
// work it parks on a condition, so an idle team costs nothing.

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
    let generation = Atomic<Int>(0)
    /// Parts finished by helpers since the start: `generation × helpers` when a job is done.
    let finished = Atomic<Int>(0)
    let helpers: Int
    let parked = Atomic<Int>(0)
    let stopping = Atomic<Bool>(false)
    let condition = NSCondition()
    var job: ((Int) -> Void)?

    init(helpers: Int) {
        self.helpers = helpers
    }

    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    func run(_ body: @escaping (Int) -> Void) {
        job = body
        let g = generation.add(1, ordering: .sequentiallyConsistent).newValue
        if parked.load(ordering: .sequentiallyConsistent) > 0 {
            condition.lock()
            condition.broadcast()
            condition.unlock()
        }
        body(0)
        var spins = 0
        while finished.load(ordering: .acquiring) != g * helpers {
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
            while generation.load(ordering: .acquiring) == seen {
                if stopping.load(ordering: .relaxed) { return }
                spins += 1
                if spins > spinLimit {
                    condition.lock()
                    parked.add(1, ordering: .sequentiallyConsistent)
                    while generation.load(ordering: .sequentiallyConsistent) == seen && !stopping.load(ordering: .relaxed) {
                        condition.wait()
                    }
                    parked.subtract(1, ordering: .sequentiallyConsistent)
                    condition.unlock()
                    spins = 0
                }
            }
            if stopping.load(ordering: .relaxed) { return }
            seen = generation.load(ordering: .acquiring)
            job?(index)
            finished.add(1, ordering: .releasing)
        }
    }
}
