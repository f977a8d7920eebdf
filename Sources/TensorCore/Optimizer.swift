// Adam / AdamW with linear warm-up, gradient clipping by global norm, and an exponential moving
// average of the parameters. Defaults are Jukebox's: lr 3e-4, betas (0.9, 0.999), eps 1e-8.

import Foundation

/// A parameter with its dotted name (`encoders.0.blocks.3.conv1.weight`).
public typealias NamedParameter = (name: String, tensor: Tensor)

/// Adam (or AdamW when `weightDecay` > 0: decay decoupled from the gradient) with bias
/// correction and a linear learning-rate warm-up.
public final class Adam {
    public var learningRate: Float
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float
    /// Decoupled weight decay per step, scaled by the learning rate (AdamW). 0 is plain Adam.
    public var weightDecay: Float
    /// Steps over which the learning rate rises linearly to `learningRate`.
    public var warmupSteps: Int
    /// Updates taken so far.
    public private(set) var step: Int = 0

    public let parameters: [NamedParameter]
    private let firstMoments: [Tensor]
    private let secondMoments: [Tensor]

    public init(parameters: [NamedParameter], learningRate: Float = 3e-4, beta1: Float = 0.9, beta2: Float = 0.999,
                epsilon: Float = 1e-8, weightDecay: Float = 0, warmupSteps: Int = 0) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.warmupSteps = warmupSteps
        firstMoments = parameters.map { Tensor.zeros($0.tensor.shape) }
        secondMoments = parameters.map { Tensor.zeros($0.tensor.shape) }
    }

    /// Learning rate of the next update: `learningRate · min(1, (step + 1) / warmupSteps)`.
    public var currentLearningRate: Float {
        guard warmupSteps > 0 else { return learningRate }
        return learningRate * Swift.min(1, Float(step + 1) / Float(warmupSteps))
    }

    /// Applies one update from the parameters' `grad` (parameters without one are left alone).
    public func update() {
        let lr = currentLearningRate
        step += 1
        let correction1 = 1 - Foundation.pow(beta1, Float(step))
        let correction2 = 1 - Foundation.pow(beta2, Float(step))
        let stepSize = lr / correction1
        let (b1, b2, eps, decay) = (beta1, beta2, epsilon, weightDecay * lr)
        for (i, p) in parameters.enumerated() {
            guard let g = p.tensor.grad else { continue }
            let w = p.tensor.data, gd = g.data, m = firstMoments[i].data, v = secondMoments[i].data
            let invSqrtC2 = 1 / correction2.squareRoot()
            Parallel.forRanges(p.tensor.count, grain: 1 << 16) { r in
                for j in r {
                    m[j] = b1 * m[j] + (1 - b1) * gd[j]
                    v[j] = b2 * v[j] + (1 - b2) * gd[j] * gd[j]
                    if decay != 0 { w[j] -= decay * w[j] }
                    w[j] -= stepSize * m[j] / (v[j].squareRoot() * invSqrtC2 + eps)
                }
            }
        }
    }

    /// Drops every parameter's gradient, ready for the next backward pass.
    public func zeroGrad() {
        for p in parameters { p.tensor.grad = nil }
    }

    /// Moment tensors under `optim.m.NAME` / `optim.v.NAME`, for checkpoints.
    public func stateTensors() -> [(String, Tensor)] {
        var out: [(String, Tensor)] = []
        for (i, p) in parameters.enumerated() {
            out.append(("optim.m." + p.name, firstMoments[i]))
            out.append(("optim.v." + p.name, secondMoments[i]))
        }
        return out
    }

    /// Restores moments saved by ``stateTensors()`` and the step count.
    public func loadState(_ tensors: [String: Tensor], step: Int) throws {
        for (i, p) in parameters.enumerated() {
            for (prefix, dst) in [("optim.m.", firstMoments[i]), ("optim.v.", secondMoments[i])] {
                guard let t = tensors[prefix + p.name] else {
                    throw TensorError.missingTensor(prefix + p.name)
                }
                guard t.shape == dst.shape else {
                    throw TensorError.shapeMismatch(name: prefix + p.name, expected: dst.shape, found: t.shape)
                }
                dst.data.update(from: t.data, count: t.count)
            }
        }
        self.step = step
    }
}

/// Scales all gradients so their global L2 norm is at most `maxNorm`; returns the norm before
/// scaling (infinite or NaN if a gradient is).
@discardableResult
public func clipGradientNorm(_ parameters: [NamedParameter], maxNorm: Float) -> Float {
    var total: Double = 0
    for p in parameters {
        if let g = p.tensor.grad { total += Kernels.sumOfSquares(g.data, count: g.count) }
    }
    let norm = Float(total.squareRoot())
    if norm.isFinite && norm > maxNorm && maxNorm > 0 {
        let scale = maxNorm / (norm + 1e-6)
        for p in parameters {
            if let g = p.tensor.grad { Kernels.scaleInPlace(g.data, scale, count: g.count) }
        }
    }
    return norm
}

/// Exponential moving average of parameters: `shadow ← decay · shadow + (1 − decay) · param`.
public final class ParameterAverage {
    public let decay: Float
    public let shadows: [NamedParameter]
    private let parameters: [NamedParameter]

    public init(parameters: [NamedParameter], decay: Float = 0.999) {
        self.parameters = parameters
        self.decay = decay
        shadows = parameters.map { ($0.name, $0.tensor.copy()) }
    }

    /// Moves every shadow towards its parameter.
    public func update() {
        for (p, s) in zip(parameters, shadows) {
            let w = p.tensor.data, a = s.tensor.data, d = decay
            for j in 0..<p.tensor.count { a[j] = d * a[j] + (1 - d) * w[j] }
        }
    }
}
