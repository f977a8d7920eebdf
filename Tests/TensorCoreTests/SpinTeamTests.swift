import XCTest
import TensorCore

final class SpinTeamTests: XCTestCase {
    /// Every part of every job runs exactly once, with more parts than cores (so helpers are
    /// often descheduled and the caller claims their parts) and jobs of very different lengths.
    func testEveryPartRunsOncePerJob() {
        let team = SpinTeam(size: 4)
        let hits = UnsafeMutablePointer<Int>.allocate(capacity: team.size)
        defer { hits.deallocate() }
        var g = RandomGenerator(seed: 5)
        for job in 0..<20_000 {
            hits.initialize(repeating: 0, count: team.size)
            let work = job % 7 == 0 ? g.int(below: 20_000) : 0
            team.run { part in
                var x = 0
                for i in 0..<work { x &+= i }
                hits[part] += 1 + (x & 0)
            }
            for part in 0..<team.size where hits[part] != 1 {
                XCTFail("job \(job): part \(part) ran \(hits[part]) times")
                return
            }
        }
    }

    /// forRanges covers 0..<count once for counts below, at and above the team size.
    func testForRangesCoverEachIndexOnce() {
        let team = SpinTeam(size: 3)
        for count in [0, 1, 2, 3, 4, 10, 1001] {
            let seen = UnsafeMutablePointer<Int>.allocate(capacity: max(count, 1))
            seen.initialize(repeating: 0, count: max(count, 1))
            team.forRanges(count) { range in for i in range { seen[i] += 1 } }
            XCTAssertTrue((0..<count).allSatisfy { seen[$0] == 1 }, "count \(count)")
            seen.deallocate()
        }
    }
}
