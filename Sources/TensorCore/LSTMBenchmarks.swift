// The TensorCore cases of `jukebox bench melody`: the LSTM layers of MusicVAE-sized melody
// models, next to raw sgemm on the layer's whole product measured in the same run.

import Foundation

/// The LSTM cases of `jukebox bench melody`, in order. `repeats` runs per case (median reported).
public func lstmBenchmarks(repeats: Int = 5) -> [BenchmarkResult] {
    var rng = RandomGenerator(seed: 1)

    // lstm-fwd-bwd: two stacked layers, batch 64, 32 steps, 346 inputs (a melody one-hot and
    // its conditioning), 256 units; forward and backward of the output sequence, as a training
    // step runs them. The input is data (no gradient), as in a model's first layer.
    let (B, T, In, H, layers) = (64, 32, 346, 256, 2)
    let x = Tensor.randomNormal([B, T, In], generator: &rng)
    let weights = (0..<layers).map { l in LSTMWeights(inputSize: l == 0 ? In : H, hiddenSize: H, generator: &rng) }
    let dY = Tensor.randomNormal([B, T, H], generator: &rng)
    func step() {
        for w in weights { w.kernel.grad = nil; w.bias.grad = nil }
        Tensor.stackedLSTM(x, layers: weights).output.backward(gradient: dY)
    }
    // Useful work of the products: each layer's forward is (B·T × (In_l + H)) @ ((In_l + H) × 4H);
    // its backward twice that, less the input gradient of the first layer, which is not wanted.
    let rows = Double(B * T), G = Double(4 * H)
    let forward = (0..<layers).reduce(0.0) { $0 + 2 * rows * Double((($1 == 0) ? In : H) + H) * G }
    let flop = 3 * forward - 2 * rows * Double(In) * G
    // The reference: raw sgemm on the first layer's whole product, run in turns with the step.
    let times = Benchmark.interleavedMedians(repeats: repeats, [step, Benchmark.rawSgemm(m: B * T, n: 4 * H, k: In + H)])
    let sgemmFlop = 2 * rows * Double(In + H) * G
    return [BenchmarkResult(name: "lstm-fwd-bwd", milliseconds: times[0] * 1e3, gflops: flop / times[0] / 1e9,
                            sgemmGflops: sgemmFlop / times[1] / 1e9)]
}
