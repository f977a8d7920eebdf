// Autodiff bookkeeping (shared uses, inference mode, graph release), the random generator, and
// an end-to-end check that a tiny network learns with Adam.

import XCTest
import TensorCore

final class AutodiffTests: XCTestCase {
    func testGradientsOfATensorUsedTwiceAdd() {
        let x = Tensor([1, 2, 3], shape: [3], requiresGrad: true)
        let y = (x * 2 + x.square()).sum()       // dy/dx = 2 + 2x
        y.backward()
        XCTAssertEqual(x.grad?.array, [4, 6, 8])
    }

    func testLeafGradientsDoNotAliasEachOther() {
        // a + b hands the same upstream gradient to both; scaling one must not touch the other.
        let a = Tensor([1, 2], shape: [2], requiresGrad: true), b = Tensor([3, 4], shape: [2], requiresGrad: true)
        (a + b).sum().backward()
        Kernels.scaleInPlace(a.grad!.data, 10, count: 2)
        XCTAssertEqual(b.grad?.array, [1, 1])
    }

    func testInferenceModeRecordsNothing() {
        let w = Tensor([1, 2], shape: [2], requiresGrad: true)
        let y = Tensor.withoutGrad { (w * w).sum() }
        XCTAssertFalse(y.requiresGrad)
        XCTAssertFalse(y.hasHistory)
        XCTAssertTrue(GradMode.isEnabled)
    }

    func testInferenceModeFreesIntermediates() {
        weak var intermediate: Tensor?
        let w = Tensor([1, 2, 3], shape: [3], requiresGrad: true)
        let y: Tensor = Tensor.withoutGrad {
            let h = w.exp()
            intermediate = h
            return h.sum()
        }
        XCTAssertNil(intermediate, "an intermediate outlived its scope in inference mode")
        XCTAssertEqual(y.item, Float(M_E + exp(2) + exp(3)), accuracy: 1e-3)
    }

    func testBackwardReleasesTheGraph() {
        weak var intermediate: Tensor?
        let w = Tensor([1, 2, 3], shape: [3], requiresGrad: true)
        var loss: Tensor? = nil
        do {
            let h = w.exp()
            intermediate = h
            loss = h.sum()
        }
        XCTAssertNotNil(intermediate, "recorded graph keeps intermediates until backward")
        loss!.backward()
        XCTAssertNil(intermediate, "backward should release the recorded graph")
    }

    func testRandomGeneratorIsReproducibleAndResumable() {
        var a = RandomGenerator(seed: 5), b = RandomGenerator(seed: 5)
        for _ in 0..<10 { XCTAssertEqual(a.next(), b.next()) }
        var c = RandomGenerator(stateWords: a.stateWords)
        XCTAssertEqual(a.normal(), c.normal())
        XCTAssertNotEqual(RandomGenerator(seed: 6).stateWords, RandomGenerator(seed: 5).stateWords)
        var r = RandomGenerator(seed: 1)
        XCTAssertEqual(r.permutation(50).sorted(), Array(0..<50))
        // Normal draws have about unit variance; categorical follows its weights.
        let xs = (0..<20000).map { _ in Double(r.normal()) }
        let mean = xs.reduce(0, +) / Double(xs.count)
        let variance = xs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(xs.count)
        XCTAssertEqual(mean, 0, accuracy: 0.03)
        XCTAssertEqual(variance, 1, accuracy: 0.05)
        var counts = [0, 0, 0]
        let w: [Float] = [0.2, 0, 0.8]
        for _ in 0..<10000 { counts[w.withUnsafeBufferPointer { r.categorical($0.baseAddress!, count: 3) }] += 1 }
        XCTAssertEqual(counts[1], 0)
        XCTAssertEqual(Double(counts[2]) / 10000, 0.8, accuracy: 0.02)
    }

    /// Two linear layers learn XOR; the loss must fall by at least a factor of 50.
    func testTinyNetworkLearnsXOR() {
        var rng = RandomGenerator(seed: 3)
        let w1 = Tensor.randomNormal([2, 16], std: 0.5, generator: &rng), b1 = Tensor.zeros([16])
        let w2 = Tensor.randomNormal([16, 1], std: 0.5, generator: &rng), b2 = Tensor.zeros([1])
        let params: [NamedParameter] = [("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2)]
        for p in params { p.tensor.requiresGrad = true }
        let x = Tensor([0, 0, 0, 1, 1, 0, 1, 1], shape: [4, 2]), y = Tensor([0, 1, 1, 0], shape: [4, 1])
        let adam = Adam(parameters: params, learningRate: 0.03)
        func loss() -> Tensor {
            let h = Tensor.linear(x, weight: w1, bias: b1).tanh()
            return (Tensor.linear(h, weight: w2, bias: b2) - y).square().mean()
        }
        let first = loss().item
        for _ in 0..<500 {
            adam.zeroGrad()
            let l = loss()
            l.backward()
            clipGradientNorm(params, maxNorm: 1)
            adam.update()
        }
        let last = loss().item
        XCTAssertLessThan(last, first / 50, "XOR loss went from \(first) to \(last)")
    }

    func testAdamWarmupAndClipping() {
        let p = Tensor([1], shape: [1], requiresGrad: true)
        let adam = Adam(parameters: [("p", p)], learningRate: 0.1, warmupSteps: 4)
        XCTAssertEqual(adam.currentLearningRate, 0.025, accuracy: 1e-7)
        p.grad = Tensor([30], shape: [1])
        XCTAssertEqual(clipGradientNorm([("p", p)], maxNorm: 3), 30, accuracy: 1e-4)
        XCTAssertEqual(p.grad!.item, 3, accuracy: 1e-3)
        adam.update()
        // First Adam step moves by the learning rate in the gradient's sign.
        XCTAssertEqual(p.item, 1 - 0.025, accuracy: 1e-5)
        XCTAssertEqual(adam.currentLearningRate, 0.05, accuracy: 1e-7)
    }
}
