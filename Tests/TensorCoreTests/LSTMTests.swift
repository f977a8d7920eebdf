// The fused LSTM against the naive Double reference (forward) and against the same cell composed
// of primitive ops whose gradients the gradient table checks (backward), at sizes that split the
// batch over the cores and leave a tail after the cell kernel's 16 lanes.

import XCTest
import TensorCore

/// The cell of `Tensor.lstm` built from linear, slice, sigmoid, tanh, mul and add, step by step.
/// `x (B, T, In)`, `weight (In + H, 4H)`; returns what `lstmResults` makes of the fused op.
private func composedLSTM(_ x: Tensor, h0: Tensor?, c0: Tensor?, weight: Tensor, bias: Tensor, reverse: Bool) -> Tensor {
    let (B, T, In, H) = (x.shape[0], x.shape[1], x.shape[2], weight.shape[1] / 4)
    var h = h0 ?? Tensor.zeros([B, H]), c = c0 ?? Tensor.zeros([B, H])
    var steps = [Tensor?](repeating: nil, count: T)
    for s in 0..<T {
        let t = reverse ? T - 1 - s : s
        let xt = x.slice(axis: 1, t..<(t + 1)).reshaped([B, In])
        let a = Tensor.linear(Tensor.concatenate([xt, h], axis: 1), weight: weight, bias: bias)   // (B, 4H)
        let i = a.slice(axis: 1, 0..<H).sigmoid(), ci = a.slice(axis: 1, H..<(2 * H)).tanh()
        let f = (a.slice(axis: 1, (2 * H)..<(3 * H)) + 1).sigmoid(), o = a.slice(axis: 1, (3 * H)..<(4 * H)).sigmoid()
        c = ci * i + c * f
        h = c.tanh() * o
        steps[t] = h.reshaped([B, 1, H])
    }
    return Tensor.concatenate([Tensor.concatenate(steps.map { $0! }, axis: 1).reshaped([B, T * H]), h, c], axis: 1)
}

final class LSTMTests: XCTestCase {
    func testForwardAgainstReference() {
        var d = TestData(seed: 21)
        // (B, T, In, H, reverse, initial state); B 20 and 17 split over two cores, H 21 leaves a
        // tail of 5 lanes.
        let cases = [(1, 1, 1, 1, false, false), (3, 5, 4, 7, false, true), (3, 5, 4, 7, true, true),
                     (20, 6, 9, 21, true, false), (17, 4, 5, 32, false, true), (16, 3, 11, 16, true, true)]
        for (B, T, In, H, reverse, withState) in cases {
            let x = d.floats(B * T * In), w = d.floats((In + H) * 4 * H).map { $0 * 0.4 }, b = d.floats(4 * H)
            let h0 = withState ? d.floats(B * H) : nil, c0 = withState ? d.floats(B * H) : nil
            let r = Tensor.lstm(Tensor(x, shape: [B, T, In]), initialHidden: h0.map { Tensor($0, shape: [B, H]) },
                                initialCell: c0.map { Tensor($0, shape: [B, H]) }, weight: Tensor(w, shape: [In + H, 4 * H]),
                                bias: Tensor(b, shape: [4 * H]), reverse: reverse)
            let ref = Kernels.referenceLSTM(x: x, B: B, T: T, In: In, H: H, weight: w, bias: b,
                                            initialHidden: h0, initialCell: c0, reverse: reverse)
            let name = "case \([B, T, In, H]) reverse \(reverse) state \(withState)"
            XCTAssertEqual(r.output.shape, [B, T, H])
            // Float32 sums of In + H products against Double, and a 2-ulp exponential.
            XCTAssertLessThan(maxAbsDiff(r.output.array, ref.output), 2e-5, name)
            XCTAssertLessThan(maxAbsDiff(r.finalHidden.array, ref.hidden), 2e-5, name)
            XCTAssertLessThan(maxAbsDiff(r.finalCell.array, ref.cell), 5e-5, name)
        }
    }

    func testGradientsMatchComposedOps() {
        var d = TestData(seed: 22)
        let (B, T, In, H) = (20, 5, 7, 21)
        for (reverse, withState) in [(false, true), (true, true), (true, false)] {
            let x = d.normal([B, T, In]), w = d.normal([In + H, 4 * H], std: 0.3), b = d.normal([4 * H], std: 0.5)
            let h0 = withState ? d.normal([B, H]) : nil, c0 = withState ? d.normal([B, H]) : nil
            let seed = d.normal([B, T * H + 2 * H], grad: false)
            let inputs = [x, w, b] + (withState ? [h0!, c0!] : [])
            lstmResults(Tensor.lstm(x, initialHidden: h0, initialCell: c0, weight: w, bias: b, reverse: reverse))
                .backward(gradient: seed)
            let fused = inputs.map { $0.grad!.array }
            for t in inputs { t.grad = nil }
            composedLSTM(x, h0: h0, c0: c0, weight: w, bias: b, reverse: reverse).backward(gradient: seed)
            for (n, (t, g)) in zip(inputs, fused).enumerated() {
                XCTAssertLessThan(maxAbsDiff(g, t.grad!.array), 1e-4, "input \(n) reverse \(reverse) state \(withState)")
            }
        }
    }

    /// A loss on the final cell state alone still reaches every input (through the hand-over
    /// of its gradient to the sequence's backward).
    func testGradientFromFinalCellAlone() {
        var d = TestData(seed: 23)
        let x = d.normal([3, 4, 2]), w = d.normal([5, 12], std: 0.5), b = d.normal([12], std: 0.5)
        let c0 = d.normal([3, 3])
        Tensor.lstm(x, initialCell: c0, weight: w, bias: b).finalCell.sum().backward()
        let fused = [x, w, b, c0].map { $0.grad!.array }
        for t in [x, w, b, c0] { t.grad = nil }
        composedLSTM(x, h0: nil, c0: c0, weight: w, bias: b, reverse: false).slice(axis: 1, 15..<18).sum().backward()
        for (n, t) in [x, w, b, c0].enumerated() { XCTAssertLessThan(maxAbsDiff(fused[n], t.grad!.array), 1e-5, "input \(n)") }
    }
}
