import ArgumentParser
import TensorCore

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure kernels and models against raw sgemm in the same run.",
        discussion: """
            Suites: ops (tensor kernels). Each case prints its median time, GFLOP/s where it \
            has a FLOP count, and `sgemm_gflops`: raw cblas_sgemm on a product of the same \
            size measured in the same run, so the ratio holds on a busy machine.
            Build with -c release (make build) before benchmarking.
            """)

    @Argument(help: "Suite to run: ops.")
    var suite: String

    @Flag(help: "Print one JSON object per case on stdout.")
    var json = false

    @Option(help: "Timed runs per case; the median is reported.")
    var repeats = 5

    func validate() throws {
        guard ["ops"].contains(suite) else {
            throw ValidationError("unknown suite '\(suite)'; choose one of: ops")
        }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
    }

    func run() throws {
        let results: [BenchmarkResult]
        switch suite {
        default: results = opBenchmarks(repeats: repeats)
        }
        for r in results { print(json ? r.jsonLine : r.humanLine) }
    }
}
