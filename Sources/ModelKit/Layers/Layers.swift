// Basic layers: convolutions, linear (Jukebox's Conv1D), layer norm and embedding. Each holds
// its parameters as tensors that require gradients and lists them under fixed names.
//
// Shapes: x (B, T, C) channels-last throughout.

import TensorCore

/// 1-D convolution, `weight (K, Cin, Cout)`, `bias (Cout)`.
public final class Conv1d: Module {
    public let weight: Tensor
    public let bias: Tensor
    public let stride: Int, padding: Int, dilation: Int

    /// PyTorch's default initialisation, which Jukebox's VQ-VAE keeps: weight and bias uniform
    /// in ±1/√(Cin·K).
    public init(inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                dilation: Int = 1, generator: inout RandomGenerator) {
        let bound = 1 / Float(inputChannels * kernelSize).squareRoot()
        weight = Tensor.randomUniform([kernelSize, inputChannels, outputChannels], low: -bound, high: bound, generator: &generator)
        bias = Tensor.randomUniform([outputChannels], low: -bound, high: bound, generator: &generator)
        weight.requiresGrad = true
        bias.requiresGrad = true
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
    }

    /// `x (B, T, Cin)` → `(B, Tout, Cout)`. `origin` is x's position in a longer signal that
    /// is run in windows (a multiple of the stride); the output's is `origin / stride`.
    public func callAsFunction(_ x: Tensor, origin: Int = 0) -> Tensor {
        Tensor.conv1d(x, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, origin: origin)
    }

    public func namedParameters() -> [NamedParameter] { [("weight", weight), ("bias", bias)] }

    /// How far one output position reaches into the input, in input positions, left and right.
    public var reach: (left: Int, right: Int) {
        (padding, dilation * (weight.shape[0] - 1) - padding)
    }
}

/// Transposed 1-D convolution, `weight (K, Cin, Cout)`, `bias (Cout)`.
public final class ConvTranspose1d: Module {
    public let weight: Tensor
    public let bias: Tensor
    public let stride: Int, padding: Int

    /// PyTorch's default for ConvTranspose1d: bound 1/√(Cout·K) (its fan-in is computed from the
    /// (Cin, Cout, K) weight's second dimension).
    public init(inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int, padding: Int,
                generator: inout RandomGenerator) {
        let bound = 1 / Float(outputChannels * kernelSize).squareRoot()
        weight = Tensor.randomUniform([kernelSize, inputChannels, outputChannels], low: -bound, high: bound, generator: &generator)
        bias = Tensor.randomUniform([outputChannels], low: -bound, high: bound, generator: &generator)
        weight.requiresGrad = true
        bias.requiresGrad = true
        self.stride = stride
        self.padding = padding
    }

    /// `x (B, T, Cin)` → `(B, (T−1)·stride − 2·padding + K, Cout)`. `origin` is x's position in
    /// a longer signal that is run in windows; the output's is `origin · stride`.
    public func callAsFunction(_ x: Tensor, origin: Int = 0) -> Tensor {
        Tensor.convTranspose1d(x, weight: weight, bias: bias, stride: stride, padding: padding, origin: origin)
    }

    public func namedParameters() -> [NamedParameter] { [("weight", weight), ("bias", bias)] }
}

/// Jukebox's `Conv1D`: `x @ weight + bias` with `weight (In, Out)`, initialised N(0, std²)
/// (std = 0.02 · init_scale) or zeros, and a zero bias.
public final class Linear: Module {
    public let weight: Tensor
    public let bias: Tensor?

    public init(inputSize: Int, outputSize: Int, std: Float, bias: Bool = true, generator: inout RandomGenerator) {
        weight = std == 0 ? Tensor.zeros([inputSize, outputSize])
            : Tensor.randomNormal([inputSize, outputSize], std: std, generator: &generator)
        weight.requiresGrad = true
        self.bias = bias ? Tensor.zeros([outputSize], requiresGrad: true) : nil
    }

    /// `x (..., In)` → `(..., Out)`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.linear(x, weight: weight, bias: bias)
    }

    public func namedParameters() -> [NamedParameter] {
        bias.map { [("weight", weight), ("bias", $0)] } ?? [("weight", weight)]
    }
}

/// Layer normalisation over the last axis, eps 1e-5 (PyTorch's; flax uses 1e-6), gamma 1 and
/// beta 0 at start.
public final class LayerNorm: Module {
    public let weight: Tensor
    public let bias: Tensor
    public let eps: Float

    public init(size: Int, eps: Float = 1e-5) {
        weight = Tensor(repeating: 1, shape: [size], requiresGrad: true)
        bias = Tensor.zeros([size], requiresGrad: true)
        self.eps = eps
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.layerNorm(x, gamma: weight, beta: bias, eps: eps)
    }

    public func namedParameters() -> [NamedParameter] { [("weight", weight), ("bias", bias)] }
}

/// A table of learned vectors, `weight (V, C)`, initialised N(0, std²).
public final class Embedding: Module {
    public let weight: Tensor

    public init(count: Int, size: Int, std: Float, generator: inout RandomGenerator) {
        weight = Tensor.randomNormal([count, size], std: std, generator: &generator)
        weight.requiresGrad = true
    }

    /// Rows for `indices` laid out as `indexShape + [C]`.
    public func callAsFunction(_ indices: [Int32], shape indexShape: [Int]) -> Tensor {
        Tensor.embedding(weight, indices: indices, indexShape: indexShape)
    }

    public func namedParameters() -> [NamedParameter] { [("weight", weight)] }
}
