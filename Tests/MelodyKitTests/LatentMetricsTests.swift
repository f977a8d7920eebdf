import XCTest
@testable import MelodyKit

final class LatentMetricsTests: XCTestCase {
    /// The fixture's sets: smooth correlated values, rounded to Float as latents are.
    static func set(_ n: Int, _ d: Int, phase: Double) -> LatentSet {
        var values: [Float] = []
        for r in 0..<n {
            let row = Double(r)
            var base: [Double] = []
            for j in 0..<d {
                let column = Double(j)
                let wave: Double = sin(row * 1.3 + column * 0.7 + phase) * (0.5 + 0.1 * column)
                let slow: Double = cos(row * row * 0.01 + column) * 0.3
                base.append(wave + slow)
            }
            for k in 0..<d {
                var mixed = 0.0
                for j in 0..<d { mixed += base[j] * cos(Double(j) * 0.9 + Double(k) * 0.4 + phase) }
                values.append(Float(mixed / Double(d)))
            }
        }
        return LatentSet(values: values, dims: d)
    }

    /// Our distances equal the reference's `utils/metrics.py` (numpy 2.4.6, scipy 1.17.1
    /// `linalg.sqrtm`, scikit-learn 1.9.1 pairwise kernels) on the same values.
    func testDistancesEqualTheReferenceImplementation() {
        let a = Self.set(300, 6, phase: 0), b = Self.set(200, 6, phase: 0.5)
        XCTAssertEqual(a.values[0], 0.01972345, accuracy: 1e-7)
        XCTAssertEqual(a.values[6], 0.4434098, accuracy: 1e-6)
        XCTAssertEqual(LatentDistance.frechet(a, b), 0.024399205856101003, accuracy: 1e-7)
        XCTAssertEqual(LatentDistance.mmdRBF(a, b), 0.011421230179751163, accuracy: 1e-7)
        XCTAssertEqual(LatentDistance.mmdPolynomial(a, b), 0.021158833031420993, accuracy: 1e-7)
    }

    func testDistancesOfASetToItselfAreZeroAndGrowWithAShift() {
        let a = Self.set(250, 5, phase: 0.2)
        XCTAssertEqual(LatentDistance.frechet(a, a), 0, accuracy: 1e-7)
        XCTAssertEqual(LatentDistance.mmdRBF(a, a), 0, accuracy: 1e-7)
        // Shifting every value by δ moves only the mean: the Fréchet distance is exactly d·δ².
        let shifted = LatentSet(values: a.values.map { $0 + 0.25 }, dims: 5)
        XCTAssertEqual(LatentDistance.frechet(a, shifted), 5 * 0.0625, accuracy: 1e-5)
        let further = LatentSet(values: a.values.map { $0 + 0.5 }, dims: 5)
        XCTAssertGreaterThan(LatentDistance.mmdRBF(a, further), LatentDistance.mmdRBF(a, shifted))
    }

    /// The Jacobi eigendecomposition rebuilds its matrix, and the square root squares back.
    func testSymmetricSquareRootSquaresBack() {
        let d = 7
        var m = [Double](repeating: 0, count: d * d)
        for i in 0..<d { for j in 0..<d { for k in 0..<d { m[i * d + j] += sin(Double(i * d + k)) * sin(Double(j * d + k)) } } }
        let root = LatentDistance.symmetricSquareRoot(m, d)
        let square = LatentDistance.multiply(root, root, d)
        for i in 0..<(d * d) { XCTAssertEqual(square[i], m[i], accuracy: 1e-9) }
    }
}
