// `jukebox bench ops`: the tensor core's kernels at the shapes the models use, each next to raw
// sgemm on the equivalent product measured in the same run.

import Foundation

/// The cases of `jukebox bench ops`, in order. `repeats` runs per case (median reported).
public func opBenchmarks(repeats: Int = 5) -> [BenchmarkResult] {
    var rng = RandomGenerator(seed: 1)
    var results: [BenchmarkResult] = []

    // matmul-1024 through the Tensor API (its own split of the product over the cores), timed
    // in turns with raw OpenBLAS threaded on the cores.
    do {
        let n = 1024
        let a = Tensor.randomNormal([n, n], generator: &rng), b = Tensor.randomNormal([n, n], generator: &rng)
        let times = Tensor.withoutGrad {
            Benchmark.interleavedMedians(repeats: 3 * repeats, [{ _ = Tensor.matmul(a, b) }, Benchmark.rawSgemm(m: n, n: n, k: n)])
        }
        let flop = 2 * pow(Double(n), 3)
        results.append(BenchmarkResult(name: "matmul-1024", milliseconds: times[0] * 1e3, gflops: flop / times[0] / 1e9,
                                       sgemmGflops: flop / times[1] / 1e9))
    }

    // Convolutions at the VQ-VAE's residual-block shapes. The sgemm reference is the im2col
    // product with the same arithmetic: (B·T × K·Cin) @ (K·Cin × Cout).
    func convCase(_ name: String, B: Int, T: Int, C: Int, K: Int, dilation: Int, backward: Bool) -> BenchmarkResult {
        let x = Tensor.randomNormal([B, T, C], generator: &rng)
        let w = Tensor.randomNormal([K, C, C], std: 0.1, generator: &rng), bias = Tensor.zeros([C])
        let flop = 2 * Double(B * T) * Double(K * C * C)
        let seconds: Double
        if backward {
            x.requiresGrad = true; w.requiresGrad = true; bias.requiresGrad = true
            let g = Tensor.randomNormal([B, T, C], generator: &rng)
            seconds = Benchmark.medianOfTimedPart(repeats: repeats) { time in
                x.grad = nil; w.grad = nil; bias.grad = nil
                let y = Tensor.conv1d(x, weight: w, bias: bias, padding: dilation * (K - 1) / 2, dilation: dilation)
                time { y.backward(gradient: g) }
            }
        } else {
            seconds = Tensor.withoutGrad {
                Benchmark.median(repeats: repeats) {
                    _ = Tensor.conv1d(x, weight: w, bias: bias, padding: dilation * (K - 1) / 2, dilation: dilation)
                }
            }
        }
        // Backward computes dX and dW: twice the forward's products.
        let work = backward ? 2 * flop : flop
        return BenchmarkResult(name: name, milliseconds: seconds * 1e3, gflops: work / seconds / 1e9,
                               sgemmGflops: Benchmark.sgemmGflops(m: B * T, n: C, k: K * C, repeats: repeats))
    }
    results.append(convCase("conv1d-fwd", B: 4, T: 16384, C: 64, K: 3, dilation: 1, backward: false))
    results.append(convCase("conv1d-bwd", B: 4, T: 16384, C: 64, K: 3, dilation: 1, backward: true))
    results.append(convCase("conv1d-dil27-fwd", B: 4, T: 16384, C: 64, K: 3, dilation: 27, backward: false))

    // Transposed convolution of the decoder: kernel 4, stride 2, padding 1.
    do {
        let (B, T, C, K) = (4, 8192, 64, 4)
        let x = Tensor.randomNormal([B, T, C], generator: &rng)
        let w = Tensor.randomNormal([K, C, C], std: 0.1, generator: &rng), bias = Tensor.zeros([C])
        let t = Tensor.withoutGrad {
            Benchmark.median(repeats: repeats) { _ = Tensor.convTranspose1d(x, weight: w, bias: bias, stride: 2, padding: 1) }
        }
        let flop = 2 * Double(B * T) * Double(K * C * C)
        results.append(BenchmarkResult(name: "convT1d-fwd", milliseconds: t * 1e3, gflops: flop / t / 1e9,
                                       sgemmGflops: Benchmark.sgemmGflops(m: B * T, n: C, k: K * C, repeats: repeats)))
    }

    // Causal attention. Useful work: the two products over the causal half of each score matrix
    // (forward), and five of them in the backward (the scores are recomputed).
    func attentionCases(_ name: String, B: Int, T: Int, H: Int, D: Int, sgemm: Double) -> [BenchmarkResult] {
        let q = Tensor.randomNormal([B, T, H * D], generator: &rng), k = Tensor.randomNormal([B, T, H * D], generator: &rng)
        let v = Tensor.randomNormal([B, T, H * D], generator: &rng)
        let half = Double(T) * Double(T + 1) / 2
        let fwdFlop = 2 * 2 * half * Double(D) * Double(B * H)
        let tf = Tensor.withoutGrad {
            Benchmark.median(repeats: repeats) { _ = Tensor.attention(query: q, key: k, value: v, heads: H, causal: true) }
        }
        q.requiresGrad = true; k.requiresGrad = true; v.requiresGrad = true
        let g = Tensor.randomNormal([B, T, H * D], generator: &rng)
        let tb = Benchmark.medianOfTimedPart(repeats: repeats) { time in
            q.grad = nil; k.grad = nil; v.grad = nil
            let out = Tensor.attention(query: q, key: k, value: v, heads: H, causal: true)
            time { out.backward(gradient: g) }
        }
        return [BenchmarkResult(name: name + "-fwd", milliseconds: tf * 1e3, gflops: fwdFlop / tf / 1e9, sgemmGflops: sgemm),
                BenchmarkResult(name: name + "-bwd", milliseconds: tb * 1e3, gflops: 2.5 * fwdFlop / tb / 1e9,
                                sgemmGflops: sgemm)]
    }
    // One head's score product, B=1, 4 heads, T=2048, head size 64.
    results += attentionCases("attention", B: 1, T: 2048, H: 4, D: 64,
                              sgemm: Benchmark.sgemmGflops(m: 2048, n: 2048, k: 64, repeats: repeats))
    // The prior's block-sparse layers: many independent blocks of 64 positions (here 32 blocks,
    // 2 heads of 40). A 64 × 64 × 40 product alone says little about sgemm, so the reference is
    // the scores of all 64 (block, head) pairs stacked into one (4096 × 40) @ (40 × 64) product.
    results += attentionCases("attention-blocks", B: 32, T: 64, H: 2, D: 40,
                              sgemm: Benchmark.sgemmGflops(m: 32 * 2 * 64, n: 64, k: 40, repeats: repeats))

    // Layer norm, memory-bound: reported as GB/s of input read plus output written.
    do {
        let (R, C) = (16384, 512)
        let x = Tensor.randomNormal([R, C], generator: &rng)
        let gamma = Tensor(repeating: 1, shape: [C]), beta = Tensor.zeros([C])
        let t = Tensor.withoutGrad { Benchmark.median(repeats: repeats) { _ = Tensor.layerNorm(x, gamma: gamma, beta: beta) } }
        let bytes = 2 * Double(R * C) * 4
        results.append(BenchmarkResult(name: "layernorm-fwd", milliseconds: t * 1e3, extra: [("gb_per_s", bytes / t / 1e9)]))
    }
    return results
}

extension Benchmark {
    /// Median seconds of the part of each run that `body` passes to its `time` function, so
    /// set-up (such as the forward pass before a backward) is left out.
    public static func medianOfTimedPart(repeats: Int = 5, warmup: Int = 1,
                                         _ body: (_ time: (() -> Void) -> Void) -> Void) -> Double {
        var times: [Double] = []
        for run in 0..<(warmup + Swift.max(1, repeats)) {
            var elapsed = 0.0
            body { part in
                let t0 = now()
                part()
                elapsed += now() - t0
            }
            if run >= warmup { times.append(elapsed) }
        }
        times.sort()
        return times[times.count / 2]
    }
}
