// Every differentiable op of TensorCore against central finite differences, one row per op with
// its own tolerance. `testEveryOpHasAGradientCheck` walks `Op.allCases`, so a new op without a
// row here fails the suite.

import XCTest
import TensorCore

/// One row of the table: inputs to perturb and the function under test.
struct GradCase {
    var tolerance: Float = 5e-3
    var step: Float = 1e-2
    let make: (inout TestData) -> [Tensor]
    let f: ([Tensor]) -> Tensor
}

/// Values in ±[0.3, 1.5], away from the kinks of abs and relu.
func awayFromZero(_ d: inout TestData, _ shape: [Int]) -> Tensor {
    let t = d.uniform(shape, 0.3, 1.5, grad: true)
    var r = RandomGenerator(seed: 99)
    for i in 0..<t.count where r.uniform() < 0.5 { t.data[i] = -t.data[i] }
    return t
}

let gradCases: [Op: [GradCase]] = [
    .add: [GradCase(make: { [$0.normal([2, 3, 4]), $0.normal([4])] }, f: { $0[0] + $0[1] }),
           GradCase(make: { [$0.normal([2, 3, 1]), $0.normal([3, 4])] }, f: { $0[0] + $0[1] })],
    .sub: [GradCase(make: { [$0.normal([2, 3, 4]), $0.normal([2, 3, 1])] }, f: { $0[0] - $0[1] })],
    .mul: [GradCase(make: { [$0.normal([2, 3, 4]), $0.normal([3, 4])] }, f: { $0[0] * $0[1] }),
           // The same tensor on both sides: gradients from the two uses must add up.
           GradCase(make: { [$0.normal([5])] }, f: { $0[0] * $0[0] })],
    .div: [GradCase(make: { [$0.normal([2, 3, 4]), $0.uniform([4], 0.5, 2)] }, f: { $0[0] / $0[1] })],
    .addScalar: [GradCase(make: { [$0.normal([3, 4])] }, f: { $0[0] + 2.5 })],
    .mulScalar: [GradCase(make: { [$0.normal([3, 4])] }, f: { $0[0] * -1.5 })],
    .powScalar: [GradCase(make: { [$0.uniform([3, 4], 0.5, 2)] }, f: { $0[0].pow(1.5) })],
    .neg: [GradCase(make: { [$0.normal([3, 4])] }, f: { -$0[0] })],
    .exp: [GradCase(make: { [$0.normal([3, 4], std: 0.5)] }, f: { $0[0].exp() })],
    .log: [GradCase(make: { [$0.uniform([3, 4], 0.5, 2)] }, f: { $0[0].log() })],
    .sqrt: [GradCase(make: { [$0.uniform([3, 4], 0.5, 2)] }, f: { $0[0].sqrt() })],
    .square: [GradCase(make: { [$0.normal([3, 4])] }, f: { $0[0].square() })],
    .abs: [GradCase(make: { [awayFromZero(&$0, [3, 4])] }, f: { $0[0].abs() })],
    .relu: [GradCase(make: { [awayFromZero(&$0, [3, 4])] }, f: { $0[0].relu() })],
    .sigmoid: [GradCase(make: { [$0.normal([3, 4])] }, f: { $0[0].sigmoid() })],
    .tanh: [GradCase(make: { [$0.normal([3, 4])] }, f: { $0[0].tanh() })],
    .quickGELU: [GradCase(make: { [$0.normal([3, 4])] }, f: { $0[0].quickGELU() })],
    .swish: [GradCase(make: { [$0.normal([3, 7], std: 2)] }, f: { $0[0].swish() })],
    .geluTanh: [GradCase(make: { [$0.normal([5, 7], std: 2)] }, f: { $0[0].geluTanh() })],
    .sum: [GradCase(make: { [$0.normal([3, 4])] }, f: { $0[0].sum() })],
    .sumAxis: [GradCase(make: { [$0.normal([2, 3, 4])] }, f: { $0[0].sum(axis: 1) }),
               GradCase(make: { [$0.normal([2, 3, 4])] }, f: { $0[0].sum(axis: -1, keepingDimension: true) })],
    .mean: [GradCase(make: { [$0.normal([3, 4])] }, f: { $0[0].mean() })],
    .meanAxis: [GradCase(make: { [$0.normal([2, 3, 4])] }, f: { $0[0].mean(axis: 0) })],
    .reshape: [GradCase(make: { [$0.normal([2, 3, 4])] }, f: { $0[0].reshaped([4, -1]) * $0[0].reshaped([4, 6]) })],
    .transpose: [GradCase(make: { [$0.normal([2, 3, 4])] }, f: { $0[0].transposed(0, 2) }),
                 GradCase(make: { [$0.normal([2, 3, 4, 5])] }, f: { $0[0].transposed(1, 2) })],
    .slice: [GradCase(make: { [$0.normal([2, 5, 3])] }, f: { $0[0].slice(axis: 1, 1..<4) })],
    .concat: [GradCase(make: { [$0.normal([2, 2, 3]), $0.normal([2, 4, 3])] },
                       f: { Tensor.concatenate([$0[0], $0[1], $0[0]], axis: 1) })],
    .padZero: [GradCase(make: { [$0.normal([2, 5, 3])] }, f: { $0[0].padded(axis: 1, before: 2, after: 3) })],
    .padReflect: [GradCase(make: { [$0.normal([2, 5, 3])] }, f: { $0[0].padded(axis: 1, before: 3, after: 4, mode: .reflect) })],
    .matmul: [GradCase(make: { [$0.normal([2, 3, 4]), $0.normal([4, 5])] }, f: { Tensor.matmul($0[0], $0[1]) }),
              GradCase(make: { [$0.normal([3, 4]), $0.normal([5, 4])] }, f: { Tensor.matmul($0[0], $0[1], transposeB: true) })],
    .batchedMatmul: [
        GradCase(make: { [$0.normal([2, 3, 4]), $0.normal([2, 4, 5])] }, f: { Tensor.matmul($0[0], $0[1]) }),
        GradCase(make: { [$0.normal([2, 4, 3]), $0.normal([2, 5, 4])] },
                 f: { Tensor.matmul($0[0], $0[1], transposeA: true, transposeB: true) }),
        GradCase(make: { [$0.normal([2, 4, 3]), $0.normal([4, 5])] }, f: { Tensor.matmul($0[0], $0[1], transposeA: true) }),
    ],
    .linear: [GradCase(make: { [$0.normal([2, 3, 4]), $0.normal([4, 5]), $0.normal([5])] },
                       f: { Tensor.linear($0[0], weight: $0[1], bias: $0[2]) })],
    .conv1d: [
        GradCase(make: { [$0.normal([2, 9, 3]), $0.normal([3, 3, 4]), $0.normal([4])] },
                 f: { Tensor.conv1d($0[0], weight: $0[1], bias: $0[2], stride: 1, padding: 1, dilation: 1) }),
        GradCase(make: { [$0.normal([2, 11, 3]), $0.normal([3, 3, 2]), $0.normal([2])] },
                 f: { Tensor.conv1d($0[0], weight: $0[1], bias: $0[2], stride: 1, padding: 3, dilation: 3) }),
        GradCase(make: { [$0.normal([2, 10, 3]), $0.normal([4, 3, 2]), $0.normal([2])] },
                 f: { Tensor.conv1d($0[0], weight: $0[1], bias: $0[2], stride: 2, padding: 1, dilation: 1) }),
        // Relu applied to the input inside the op, and a residual added to the output.
        GradCase(make: { [awayFromZero(&$0, [2, 11, 3]), $0.normal([3, 3, 2]), $0.normal([2]), $0.normal([2, 11, 2])] },
                 f: { Tensor.conv1d($0[0], weight: $0[1], bias: $0[2], padding: 3, dilation: 3,
                                    inputActivation: .relu, residual: $0[3]) }),
        GradCase(make: { [awayFromZero(&$0, [2, 10, 3]), $0.normal([4, 3, 2]), $0.normal([2])] },
                 f: { Tensor.conv1d($0[0], weight: $0[1], bias: $0[2], stride: 2, padding: 1, inputActivation: .relu) }),
        // The same tensor as input and residual: both gradients must add up.
        GradCase(make: { [awayFromZero(&$0, [1, 6, 3]), $0.normal([1, 3, 3]), $0.normal([3])] },
                 f: { Tensor.conv1d($0[0], weight: $0[1], bias: $0[2], inputActivation: .relu, residual: $0[0]) }),
    ],
    .convTranspose1d: [
        GradCase(make: { [$0.normal([2, 5, 3]), $0.normal([4, 3, 2]), $0.normal([2])] },
                 f: { Tensor.convTranspose1d($0[0], weight: $0[1], bias: $0[2], stride: 2, padding: 1) }),
        GradCase(make: { [$0.normal([1, 4, 2]), $0.normal([3, 2, 3]), $0.normal([3])] },
                 f: { Tensor.convTranspose1d($0[0], weight: $0[1], bias: $0[2], stride: 3, padding: 2, dilation: 2) }),
    ],
    .layerNorm: [GradCase(make: { [$0.normal([3, 6]), $0.normal([6]), $0.normal([6])] },
                          f: { Tensor.layerNorm($0[0], gamma: $0[1], beta: $0[2]) })],
    .softmax: [GradCase(make: { [$0.normal([3, 5])] }, f: { $0[0].softmax() })],
    .logSoftmax: [GradCase(make: { [$0.normal([3, 5])] }, f: { $0[0].logSoftmax() })],
    .crossEntropy: [GradCase(make: { [$0.normal([4, 6])] }, f: { Tensor.crossEntropy(logits: $0[0], targets: [0, 5, 2, 2]) })],
    .embedding: [GradCase(make: { [$0.normal([7, 3])] },
                          f: { Tensor.embedding($0[0], indices: [1, 6, 1, 0, 3, 1], indexShape: [2, 3]) })],
    .attention: [
        GradCase(make: { [$0.normal([2, 5, 6]), $0.normal([2, 5, 6]), $0.normal([2, 5, 6])] },
                 f: { Tensor.attention(query: $0[0], key: $0[1], value: $0[2], heads: 2, causal: true) }),
        GradCase(make: { [$0.normal([1, 3, 4]), $0.normal([1, 6, 4]), $0.normal([1, 6, 4])] },
                 f: { Tensor.attention(query: $0[0], key: $0[1], value: $0[2], heads: 1, causal: false) }),
        GradCase(make: { [$0.normal([1, 2, 4]), $0.normal([1, 5, 4]), $0.normal([1, 5, 4])] },
                 f: { Tensor.attention(query: $0[0], key: $0[1], value: $0[2], heads: 2, causal: true) }),
    ],
    // Inputs x, weight, bias, then h0 and c0 when given. Every result is checked: the output
    // sequence, the final hidden and the final cell state side by side.
    .lstm: [
        GradCase(make: { [$0.normal([2, 3, 3]), $0.normal([5, 8], std: 0.5), $0.normal([8], std: 0.5),
                          $0.normal([2, 2]), $0.normal([2, 2])] },
                 f: { lstmResults(Tensor.lstm($0[0], initialHidden: $0[3], initialCell: $0[4], weight: $0[1], bias: $0[2])) }),
        GradCase(make: { [$0.normal([2, 4, 3]), $0.normal([5, 8], std: 0.5), $0.normal([8], std: 0.5),
                          $0.normal([2, 2]), $0.normal([2, 2])] },
                 f: { lstmResults(Tensor.lstm($0[0], initialHidden: $0[3], initialCell: $0[4], weight: $0[1], bias: $0[2],
                                              reverse: true)) }),
        // Zero initial state; 17 units run the cell kernel's 16 lanes and a tail of one.
        GradCase(make: { [$0.normal([2, 3, 2]), $0.normal([19, 68], std: 0.3), $0.normal([68], std: 0.5)] },
                 f: { lstmResults(Tensor.lstm($0[0], weight: $0[1], bias: $0[2], reverse: true)) }),
    ],
]

/// An LSTM call's three results as one tensor `(B, T·H + 2H)`: output, final hidden, final cell.
func lstmResults(_ r: LSTMOutput) -> Tensor {
    let (B, T, H) = (r.output.shape[0], r.output.shape[1], r.output.shape[2])
    return Tensor.concatenate([r.output.reshaped([B, T * H]), r.finalHidden, r.finalCell], axis: 1)
}

final class GradientTableTests: XCTestCase {
    func testEveryOpHasAGradientCheck() {
        for op in Op.allCases {
            XCTAssertFalse(gradCases[op, default: []].isEmpty, "op \(op) has no gradient check in gradCases")
        }
    }

    func testGradientsAgainstFiniteDifferences() {
        var data = TestData(seed: 1)
        for op in Op.allCases {
            for (n, c) in gradCases[op, default: []].enumerated() {
                let inputs = c.make(&data)
                checkGradients("\(op)#\(n)", inputs: inputs, step: c.step, tolerance: c.tolerance, c.f)
            }
        }
    }

    /// Attention at a length that spans several query chunks, against the same composition of
    /// primitive ops (matmul, mask, softmax) whose gradients are checked above.
    func testChunkedAttentionGradientMatchesComposedOps() {
        var data = TestData(seed: 3)
        let (T, D) = (300, 8)
        let q = data.normal([1, T, D], std: 0.5), k = data.normal([1, T, D], std: 0.5), v = data.normal([1, T, D])
        let w = data.normal([1, T, D], grad: false)
        (Tensor.attention(query: q, key: k, value: v, heads: 1, causal: true) * w).sum().backward()
        let fused = [q.grad!.array, k.grad!.array, v.grad!.array]
        q.grad = nil; k.grad = nil; v.grad = nil
        var mask = [Float](repeating: 0, count: T * T)
        for i in 0..<T { for j in (i + 1)..<T where j < T { mask[i * T + j] = -1e9 } }
        let scores = Tensor.matmul(q, k, transposeB: true) * (1 / Float(D).squareRoot()) + Tensor(mask, shape: [T, T])
        (Tensor.matmul(scores.softmax(), v) * w).sum().backward()
        let composed = [q.grad!.array, k.grad!.array, v.grad!.array]
        for (a, b) in zip(fused, composed) { XCTAssertLessThan(maxAbsDiff(a, b), 1e-4) }
    }
}
