// Finite-difference gradient checking shared by the test targets' gradient tables.

import XCTest
import TensorCore

/// Random tensors for tests from a fixed seed.
struct TestData {
    var rng: RandomGenerator

    init(seed: UInt64 = 42) { rng = RandomGenerator(seed: seed) }

    mutating func normal(_ shape: [Int], std: Float = 1, grad: Bool = true) -> Tensor {
        let t = Tensor.randomNormal(shape, std: std, generator: &rng)
        t.requiresGrad = grad
        return t
    }

    mutating func uniform(_ shape: [Int], _ low: Float, _ high: Float, grad: Bool = true) -> Tensor {
        let t = Tensor.randomUniform(shape, low: low, high: high, generator: &rng)
        t.requiresGrad = grad
        return t
    }

    mutating func floats(_ n: Int) -> [Float] { (0..<n).map { _ in rng.normal() } }
}

/// Checks the analytic gradient of `f` against central differences.
///
/// The scalar under test is `Σ f(inputs) · w` with fixed random weights `w`, accumulated in
/// Double so the finite difference sees the Float32 forward with as little extra rounding as
/// possible. `tolerance` bounds |analytic − numeric| / max(1, |numeric|) per checked element.
func checkGradients(_ name: String, inputs: [Tensor], step: Float = 1e-2, tolerance: Float,
                    elementsPerInput: Int = 12, file: StaticString = #filePath, line: UInt = #line,
                    _ f: ([Tensor]) -> Tensor) {
    var rng = RandomGenerator(seed: 7)
    let probe = f(inputs)
    let weights = (0..<probe.count).map { _ in Double(rng.normal()) }

    func objective() -> Double {
        let out = Tensor.withoutGrad { f(inputs) }
        var acc = 0.0
        for i in 0..<out.count { acc += Double(out.data[i]) * weights[i] }
        return acc
    }

    // Analytic: backward of Σ out·w.
    for t in inputs { t.grad = nil }
    let out = f(inputs)
    let seed = Tensor(weights.map { Float($0) }, shape: out.shape)
    out.backward(gradient: seed)

    for (n, t) in inputs.enumerated() where t.requiresGrad {
        guard let g = t.grad else {
            XCTFail("\(name): input \(n) got no gradient", file: file, line: line)
            continue
        }
        XCTAssertEqual(g.shape, t.shape, "\(name): gradient shape", file: file, line: line)
        let picks = t.count <= elementsPerInput ? Array(0..<t.count)
            : (0..<elementsPerInput).map { _ in rng.int(below: t.count) }
        for i in picks {
            let saved = t.data[i]
            t.data[i] = saved + step
            let plus = objective()
            t.data[i] = saved - step
            let minus = objective()
            t.data[i] = saved
            let numeric = Float((plus - minus) / (2 * Double(step)))
            let analytic = g.data[i]
            let err = Swift.abs(analytic - numeric) / Swift.max(1, Swift.abs(numeric))
            XCTAssert(err <= tolerance,
                      "\(name): input \(n) element \(i): analytic \(analytic) vs numeric \(numeric) (error \(err) > \(tolerance))",
                      file: file, line: line)
        }
    }
}

/// Maximum absolute difference between two arrays, failing on a size mismatch.
func maxAbsDiff(_ a: [Float], _ b: [Float], file: StaticString = #filePath, line: UInt = #line) -> Float {
    XCTAssertEqual(a.count, b.count, "sizes differ", file: file, line: line)
    var m: Float = 0
    for (x, y) in zip(a, b) { m = Swift.max(m, Swift.abs(x - y)) }
    return m
}
