// Eager reverse-mode automatic differentiation.
//
// Every differentiable operation computes its result at once and, when gradient recording is on
// and an input requires a gradient, attaches a GradNode to the result: the inputs plus a closure
// that, given the result and the gradient flowing into it, adds the gradients of the inputs.
// `backward()` orders the recorded graph topologically and runs the closures from the loss back
// to the leaves. The graph is released as it is walked, as PyTorch does without `retain_graph`.

import Foundation

/// Every differentiable operation of TensorCore. The gradient-check test walks all cases, so an
/// operation cannot be added here without a finite-difference check of its backward.
public enum Op: String, CaseIterable, Sendable {
    case add, sub, mul, div
    case addScalar, mulScalar, powScalar
    case neg, exp, log, sqrt, square, abs, relu, sigmoid, tanh, quickGELU, swish, geluTanh
    case sum, sumAxis, mean, meanAxis
    case reshape, transpose, slice, concat, padZero, padReflect
    case matmul, batchedMatmul, linear
    case conv1d, convTranspose1d
    case layerNorm, softmax, logSoftmax, crossEntropy
    case embedding, attention
    case lstm
}

/// The recorded operation that produced a tensor.
final class GradNode {
    /// Op name, for messages (`Op.rawValue`, or a custom name from another module).
    let name: String
    let inputs: [Tensor]
    /// Adds the gradients of `inputs` given the result and the gradient of the result.
    let backward: (_ output: Tensor, _ gradOutput: Tensor) -> Void

    init(name: String, inputs: [Tensor], backward: @escaping (Tensor, Tensor) -> Void) {
        self.name = name
        self.inputs = inputs
        self.backward = backward
    }
}

/// Whether operations record history for `backward()`.
public enum GradMode {
    /// True unless inside ``Tensor/withoutGrad(_:)``. Process-wide: training and sampling run
    /// their tensor work on one thread.
    public internal(set) static var isEnabled = true
}

extension Tensor {
    /// Runs `body` with recording off: no graph is kept, so intermediates are freed as soon as
    /// they go out of scope (inference and sampling depend on this for memory).
    public static func withoutGrad<R>(_ body: () throws -> R) rethrows -> R {
        let previous = GradMode.isEnabled
        GradMode.isEnabled = false
        defer { GradMode.isEnabled = previous }
        return try body()
    }

    /// True when an operation over `inputs` must record itself.
    @inline(__always)
    static func shouldRecord(_ inputs: [Tensor]) -> Bool {
        guard GradMode.isEnabled else { return false }
        for t in inputs where t.requiresGrad { return true }
        return false
    }

    /// Attaches a backward rule to `output` when recording is needed; returns `output`.
    ///
    /// Other modules use this for their fused operations (STFT magnitude, vector quantisation).
    /// `backward` receives the output and its gradient and must add each input's gradient with
    /// ``accumulateGrad(_:)`` or ``gradAccumulator()``, only for inputs with `requiresGrad`.
    @discardableResult
    public static func record(_ name: String, output: Tensor, inputs: [Tensor],
                              backward: @escaping (_ output: Tensor, _ gradOutput: Tensor) -> Void) -> Tensor {
        if shouldRecord(inputs) {
            output.requiresGrad = true
            output.node = GradNode(name: name, inputs: inputs, backward: backward)
        }
        return output
    }

    static func record(_ op: Op, output: Tensor, inputs: [Tensor],
                       backward: @escaping (Tensor, Tensor) -> Void) -> Tensor {
        record(op.rawValue, output: output, inputs: inputs, backward: backward)
    }

    /// Adds `g` to this tensor's gradient. `g` may be kept without a copy, so the caller must
    /// not modify it afterwards.
    public func accumulateGrad(_ g: Tensor) {
        precondition(g.shape == shape,
                     "backward: gradient of shape \(g.shape) for a tensor of shape \(shape)")
        guard let existing = grad else {
            // Leaves keep their gradient after backward (optimizers scale it in place), so they
            // get their own copy; intermediates may alias, as they are consumed and released.
            if node == nil {
                grad = g.copy()
                gradIsShared = false
            } else {
                grad = g
                gradIsShared = true
            }
            return
        }
        if gradIsShared {
            let sum = existing.copy()
            grad = sum
            gradIsShared = false
        }
        Kernels.addInPlace(grad!.data, g.data, count: count)
    }

    /// A gradient buffer owned by this tensor, zero-filled when new, for kernels that add their
    /// result into it directly (sgemm with beta = 1).
    public func gradAccumulator() -> UnsafeMutablePointer<Float> {
        if let existing = grad {
            if gradIsShared {
                grad = existing.copy()
                gradIsShared = false
            }
        } else {
            grad = Tensor.zeros(shape)
            gradIsShared = false
        }
        return grad!.data
    }

    /// Whether this tensor was produced by a recorded operation (it is not a leaf).
    public var hasHistory: Bool { node != nil }

    /// Back-propagates from this tensor, which must hold one element unless `gradient` is given.
    ///
    /// Fills `grad` of every leaf tensor with `requiresGrad` that this tensor depends on, summing
    /// over every path. Gradients of intermediate results are released once used, and so is the
    /// recorded graph.
    public func backward(gradient: Tensor? = nil) {
        if let gradient {
            precondition(gradient.shape == shape,
                         "backward: seed gradient \(gradient.shape) for a tensor of shape \(shape)")
        } else {
            precondition(count == 1, "backward: called on a tensor of shape \(shape) without a seed gradient")
        }
        guard requiresGrad else { return }
        let order = topologicalOrder()
        Tensor.withoutGrad {
            accumulateGrad(gradient ?? Tensor(repeating: 1, shape: shape))
            for t in order.reversed() {
                guard let node = t.node else { continue }
                t.node = nil
                guard let g = t.grad else { continue }
                node.backward(t, g)
                t.grad = nil
                for input in node.inputs where input.requiresGrad {
                    if let ig = input.grad {
                        precondition(ig.shape == input.shape,
                                     "backward: \(node.name) produced a gradient of shape \(ig.shape) for an input of shape \(input.shape)")
                    }
                }
            }
        }
    }

    /// Tensors reachable through recorded nodes, each after all of its inputs.
    private func topologicalOrder() -> [Tensor] {
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        // Iterative post-order walk: deep models would overflow the stack with recursion.
        var stack: [(tensor: Tensor, next: Int)] = [(self, 0)]
        visited.insert(ObjectIdentifier(self))
        while !stack.isEmpty {
            let (t, next) = stack[stack.count - 1]
            let inputs = t.node?.inputs ?? []
            if next < inputs.count {
                stack[stack.count - 1].next += 1
                let child = inputs[next]
                if child.requiresGrad && visited.insert(ObjectIdentifier(child)).inserted {
                    stack.append((child, 0))
                }
            } else {
                order.append(t)
                stack.removeLast()
            }
        }
        return order
    }
}
