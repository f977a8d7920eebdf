// The model case of `jukebox bench melody`: one training step of the melody VAE.

import Foundation
import TensorCore
import ModelKit

/// `melody-vae-train-step`: a teacher-forced training step (forward, backward, clipping, Adam)
/// of `configs/melody-vae-small.json`'s shapes at batch 64 on random events, next to raw sgemm
/// on the encoder layer's whole input product measured in the same run.
public func melodyVAEBenchmarks(repeats: Int = 5) -> [BenchmarkResult] {
    var config = MelodyVAEConfig()
    config.encoderUnits = [256]
    config.decoderUnits = [256, 256]
    config.zSize = 256
    let model = MelodyVAE(config: config, seed: 1)
    let optimizer = Adam(parameters: model.namedParameters(), learningRate: 1e-4, warmupSteps: 0)
    var g = RandomGenerator(seed: 2)
    let (B, T, V) = (64, config.steps, config.classes)
    let events = (0..<(B * T)).map { _ in Int32(g.int(below: V)) }
    let epsilon = Tensor.randomNormal([B, config.zSize], std: 1, generator: &g)
    func step() {
        optimizer.zeroGrad()
        let (mu, sigma) = model.encode(events, batch: B)
        let z = mu + sigma * epsilon
        let logits = model.decode(z, targets: events, batch: B)
        let loss = Tensor.crossEntropy(logits: logits, targets: events) * Float(T)
            + model.klDivergence(mu: mu, sigma: sigma).mean() * 0.2
        loss.backward()
        _ = clipGradientNorm(optimizer.parameters, maxNorm: 1)
        optimizer.update()
    }
    // Useful work of the products: each LSTM layer (B·T × (In + H)) @ ((In + H) × 4H) forward
    // and about twice that backward; the output layer likewise.
    let rows = Double(B * T)
    func lstm(_ input: Int, _ units: Int) -> Double { 2 * rows * Double(input + units) * 4 * Double(units) }
    var forward = 2 * lstm(V, 256)                                    // both encoder directions
    forward += lstm(V + config.zSize, 256) + lstm(256, 256)           // decoder layers
    forward += 2 * rows * 256 * Double(V)                              // output layer
    let flop = 3 * forward
    let times = Benchmark.interleavedMedians(repeats: repeats, [step, Benchmark.rawSgemm(m: B * T, n: 4 * 256, k: V + 256)])
    let sgemmFlop = lstm(V, 256)
    return [BenchmarkResult(name: "melody-vae-train-step", milliseconds: times[0] * 1e3, gflops: flop / times[0] / 1e9,
                            sgemmGflops: sgemmFlop / times[1] / 1e9)]
}
