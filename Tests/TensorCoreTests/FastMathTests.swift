// The vectorised exponential against Double exp: a dense sweep with an error bound in ulps, the
// special values, and the buffer routines (tails shorter than a vector included).

import XCTest
import Foundation
import TensorCore

final class FastMathTests: XCTestCase {
    /// Distance from `y` to the correctly rounded e^x, in units in the last place of the latter.
    private func ulpError(_ y: Float, _ x: Float) -> Double {
        let exact = Foundation.exp(Double(x))
        return Swift.abs(Double(y) - exact) / Double(Float(exact).ulp)
    }

    func testExpWithinTwoUlpOverDenseSweep() {
        // 1.75 M points, spacing 1e-4, covering every exponent 2^n the softmax loops produce.
        var worst = 0.0, worstX: Float = 0
        var x0: Double = -87
        while x0 < 88 {
            var v = SIMD16<Float>()
            for l in 0..<16 { v[l] = Float(x0 + Double(l) * 1e-4) }
            let y = Kernels.exp(v)
            for l in 0..<16 where ulpError(y[l], v[l]) > worst { worst = ulpError(y[l], v[l]); worstX = v[l] }
            x0 += 16e-4
        }
        XCTAssertLessThanOrEqual(worst, 2, "worst error \(worst) ulp at x = \(worstX)")
    }

    func testExpOnConsecutiveFloatsWhereTheReductionChanges() {
        // 2^14 neighbouring Floats around each point: near 0, where n = round(x / ln2) steps
        // ((k + ½)·ln2 for k = 0, −1, −15, 127), and just inside both ends of the range.
        var worst = 0.0, worstX: Float = 0
        for center: Float in [1e-3, -1e-3, 0.346_573_6, -0.346_573_6, -10.050_65, 88.376_26, -87.27, 88.65] {
            var x = center
            for _ in 0..<(1 << 13) { x = x.nextDown }
            for _ in 0..<(1 << 10) {
                var v = SIMD16<Float>()
                for l in 0..<16 { v[l] = x; x = x.nextUp }
                let y = Kernels.exp(v)
                for l in 0..<16 where ulpError(y[l], v[l]) > worst { worst = ulpError(y[l], v[l]); worstX = v[l] }
            }
        }
        XCTAssertLessThanOrEqual(worst, 2, "worst error \(worst) ulp at x = \(worstX)")
    }

    func testExpSpecialValues() {
        let x = SIMD16<Float>(0, -.infinity, -88, -1000, -Float.greatestFiniteMagnitude, .infinity, 89, 1e30,
                              1, -1, .nan, 88, -87, 0.5, -0.5, -1e-7)
        let y = Kernels.exp(x)
        XCTAssertEqual(y[0], 1)                      // exactly
        XCTAssertEqual(y[1], 0)
        XCTAssertEqual(y[2], 0)                      // e^−88 is subnormal: flushed
        XCTAssertEqual(y[3], 0)
        XCTAssertEqual(y[4], 0)
        XCTAssertEqual(y[5], .infinity)
        XCTAssertEqual(y[6], .infinity)
        XCTAssertEqual(y[7], .infinity)
        XCTAssertTrue(y[10].isNaN)
        for l in [8, 9, 11, 12, 13, 14, 15] {
            XCTAssertLessThanOrEqual(ulpError(y[l], x[l]), 2, "x = \(x[l])")
        }
    }

    func testExponentiateAndMaximumOverBuffersWithTails() {
        var d = TestData(seed: 21)
        for count in [0, 1, 7, 15, 16, 17, 33, 100, 2048] {
            let x = d.floats(count).map { $0 * 10 }
            var y = x
            let m = y.withUnsafeBufferPointer { Kernels.maximum($0.baseAddress!, count: count) }
            XCTAssertEqual(m, x.max() ?? -.infinity, "count \(count)")
            let shift = count == 0 ? 0 : m
            let sum = y.withUnsafeMutableBufferPointer { Kernels.exponentiate($0.baseAddress!, count: count, subtracting: shift) }
            var exactSum = 0.0
            for i in 0..<count {
                let exact = Foundation.exp(Double(x[i] - shift))   // the kernel subtracts in Float
                exactSum += exact
                XCTAssertEqual(Double(y[i]), exact, accuracy: 3e-7 * exact, "count \(count) element \(i)")
            }
            XCTAssertEqual(Double(sum), exactSum, accuracy: 1e-5 * Swift.max(exactSum, 1), "count \(count)")
        }
    }

    /// The fused activations equal their definitions (in Double) to Float accuracy, over a
    /// sweep that reaches where the exponential saturates, on a length with a tail.
    func testSwishAndGeluTanhEqualTheirDefinitions() {
        let values = stride(from: -30.0, through: 30.0, by: 0.0137).map(Float.init) + [0, -0.0, 100, -100, 1e-3]
        let x = Tensor(values, shape: [values.count])
        XCTAssertNotEqual(values.count % 16, 0)
        let swish = x.swish().array, gelu = x.geluTanh().array
        for (i, v) in values.enumerated() {
            let d = Double(v)
            let expectedSwish = d / (1 + Foundation.exp(-d))
            let expectedGelu = 0.5 * d * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (d + 0.044715 * d * d * d)))
            XCTAssertEqual(Double(swish[i]), expectedSwish, accuracy: 4e-7 * Swift.max(1, Swift.abs(expectedSwish)), "swish(\(v))")
            XCTAssertEqual(Double(gelu[i]), expectedGelu, accuracy: 4e-7 * Swift.max(1, Swift.abs(expectedGelu)), "geluTanh(\(v))")
        }
    }
}
