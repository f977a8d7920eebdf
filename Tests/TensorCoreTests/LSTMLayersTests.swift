// The stacked and bidirectional LSTM helpers against the naive reference run layer by layer.

import XCTest
import TensorCore

final class LSTMLayersTests: XCTestCase {
    func testStackedAgainstReference() {
        var d = TestData(seed: 24)
        var rng = RandomGenerator(seed: 5)
        let (B, T, In, H) = (3, 5, 4, 6)
        let layers = [LSTMWeights(inputSize: In, hiddenSize: H, generator: &rng), LSTMWeights(inputSize: H, hiddenSize: H, generator: &rng)]
        let states = (0..<2).map { _ in LSTMState(hidden: d.normal([B, H]), cell: d.normal([B, H])) }
        let x = d.floats(B * T * In)
        let r = Tensor.stackedLSTM(Tensor(x, shape: [B, T, In]), layers: layers, initialStates: states)
        var input = x, inSize = In
        for (l, layer) in layers.enumerated() {
            let ref = Kernels.referenceLSTM(x: input, B: B, T: T, In: inSize, H: H, weight: layer.kernel.array,
                                            bias: layer.bias.array, initialHidden: states[l].hidden.array,
                                            initialCell: states[l].cell.array, reverse: false)
            XCTAssertLessThan(maxAbsDiff(r.finalStates[l].hidden.array, ref.hidden), 2e-5, "layer \(l)")
            XCTAssertLessThan(maxAbsDiff(r.finalStates[l].cell.array, ref.cell), 5e-5, "layer \(l)")
            (input, inSize) = (ref.output, H)
        }
        XCTAssertLessThan(maxAbsDiff(r.output.array, input), 2e-5)
    }

    func testBidirectionalAgainstReference() {
        var d = TestData(seed: 25)
        var rng = RandomGenerator(seed: 6)
        let (B, T, In, H) = (2, 5, 3, 4)
        let forward = [LSTMWeights(inputSize: In, hiddenSize: H, generator: &rng), LSTMWeights(inputSize: 2 * H, hiddenSize: H, generator: &rng)]
        let backward = [LSTMWeights(inputSize: In, hiddenSize: H, generator: &rng), LSTMWeights(inputSize: 2 * H, hiddenSize: H, generator: &rng)]
        let x = d.floats(B * T * In)
        let r = Tensor.bidirectionalLSTM(Tensor(x, shape: [B, T, In]), forward: forward, backward: backward)
        XCTAssertEqual(r.output.shape, [B, T, 2 * H])
        XCTAssertEqual(r.finalHidden.shape, [B, 2 * H])
        // Layer by layer: each direction over the previous layer's [forward, backward] outputs.
        var input = x, inSize = In
        var summary: [Float] = []
        for (fw, bw) in zip(forward, backward) {
            let f = Kernels.referenceLSTM(x: input, B: B, T: T, In: inSize, H: H, weight: fw.kernel.array, bias: fw.bias.array,
                                          initialHidden: nil, initialCell: nil, reverse: false)
            let b = Kernels.referenceLSTM(x: input, B: B, T: T, In: inSize, H: H, weight: bw.kernel.array, bias: bw.bias.array,
                                          initialHidden: nil, initialCell: nil, reverse: true)
            input = concatenatingRows(f.output, b.output, rows: B * T, columns: H)
            inSize = 2 * H
            summary = concatenatingRows(f.hidden, b.hidden, rows: B, columns: H)
        }
        XCTAssertLessThan(maxAbsDiff(r.output.array, input), 2e-5)
        XCTAssertLessThan(maxAbsDiff(r.finalHidden.array, summary), 2e-5)
    }
}

/// Row r of the result is row r of `a` followed by row r of `b`, both `(rows, columns)`.
private func concatenatingRows(_ a: [Float], _ b: [Float], rows: Int, columns: Int) -> [Float] {
    var out: [Float] = []
    for r in 0..<rows {
        out += a[(r * columns)..<((r + 1) * columns)]
        out += b[(r * columns)..<((r + 1) * columns)]
    }
    return out
}
