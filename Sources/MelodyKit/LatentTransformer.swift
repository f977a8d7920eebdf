// The pieces both latent priors are built from (reference: magenta/symbolic-music-diffusion,
// `models/ncsn.py::TransformerDDPM`, `models/autoregressive.py::TransformerMDN`,
// `models/shared.py`): sinusoidal positions, the pre-LN transformer layer (unmasked in the
// denoiser, causal in the MDN) and the plain dense residual block the MDN puts after the layers
// (the denoiser's blocks are the same with FiLM after each LN: `FiLMBlock` in Diffusion.swift).
// flax defaults throughout: LN ε 1e-6, GELU's tanh approximation, LeCun-normal kernels (here
// untruncated N(0, 1/fan_in)), zero biases.
//
// Shapes: x (B, L, W), L positions of width W; dense features (B, L, Dw).

import Foundation
import TensorCore
import ModelKit

/// A dense layer with flax's default initialisation: LeCun-normal kernel, zero bias.
func lecunLinear(_ input: Int, _ output: Int, _ generator: inout RandomGenerator) -> Linear {
    Linear(inputSize: input, outputSize: output, std: (1 / Float(input)).squareRoot(), generator: &generator)
}

/// `[sin(p·ω_i), cos(p·ω_i)]` with ω_i = exp(−i·ln(10000)/(half − 1)), i < half = size/2, for each
/// position `p`: `(positions.count, size)`.
func sinusoidalFeatures(_ positions: [Float], size: Int) -> Tensor {
    let half = size / 2
    let out = Tensor.zeros([positions.count, size])
    let step = log(10000.0) / Double(Swift.max(half - 1, 1))
    for (r, p) in positions.enumerated() {
        for i in 0..<half {
            let angle = Double(p) * exp(-Double(i) * step)
            out.data[r * size + i] = Float(sin(angle))
            out.data[r * size + half + i] = Float(cos(angle))
        }
    }
    return out
}

/// Pre-LN transformer layer: `y = x + out(attention(qkv(ln_0(x))))`, `y + proj(gelu(fc(ln_1(y))))`,
/// with a causal mask or none.
final class TransformerLayer: Module {
    let ln0: LayerNorm, qkv: Linear, out: Linear, ln1: LayerNorm, fc: Linear, proj: Linear
    let heads: Int
    let causal: Bool

    init(width: Int, heads: Int, mlpWidth: Int, causal: Bool, generator g: inout RandomGenerator) {
        ln0 = LayerNorm(size: width, eps: 1e-6)
        qkv = lecunLinear(width, 3 * width, &g)
        out = lecunLinear(width, width, &g)
        ln1 = LayerNorm(size: width, eps: 1e-6)
        fc = lecunLinear(width, mlpWidth, &g)
        proj = lecunLinear(mlpWidth, width, &g)
        self.heads = heads
        self.causal = causal
    }

    /// `x (B, L, W)` → `(B, L, W)`; with `causal`, position i sees positions ≤ i only.
    func callAsFunction(_ x: Tensor) -> Tensor {
        let W = x.shape[2]
        let h = qkv(ln0(x))                                       // (B, L, 3W), q | k | v
        let a = Tensor.attention(query: h.slice(axis: 2, 0..<W), key: h.slice(axis: 2, W..<(2 * W)),
                                 value: h.slice(axis: 2, (2 * W)..<(3 * W)), heads: heads, causal: causal)
        let y = x + out(a)
        return y + proj(fc(ln1(y)).geluTanh())
    }

    func namedParameters() -> [NamedParameter] {
        parameters(of: ln0, prefix: "ln_0") + parameters(of: qkv, prefix: "attention.qkv") + parameters(of: out, prefix: "attention.out")
            + parameters(of: ln1, prefix: "ln_1") + parameters(of: fc, prefix: "mlp.fc") + parameters(of: proj, prefix: "mlp.proj")
    }
}

/// The reference's `DenseResBlock` without FiLM (scale 1, shift 0):
/// `x + dense_1(swish(ln_1(dense_0(swish(ln_0(x))))))`.
final class DenseResBlock: Module {
    let ln0: LayerNorm, dense0: Linear, ln1: LayerNorm, dense1: Linear

    init(width: Int, generator g: inout RandomGenerator) {
        ln0 = LayerNorm(size: width, eps: 1e-6)
        dense0 = lecunLinear(width, width, &g)
        ln1 = LayerNorm(size: width, eps: 1e-6)
        dense1 = lecunLinear(width, width, &g)
    }

    /// `x (B, L, Dw)` → `(B, L, Dw)`.
    func callAsFunction(_ x: Tensor) -> Tensor {
        x + dense1(ln1(dense0(ln0(x).swish())).swish())
    }

    func namedParameters() -> [NamedParameter] {
        parameters(of: ln0, prefix: "ln_0") + parameters(of: dense0, prefix: "dense_0")
            + parameters(of: ln1, prefix: "ln_1") + parameters(of: dense1, prefix: "dense_1")
    }
}
