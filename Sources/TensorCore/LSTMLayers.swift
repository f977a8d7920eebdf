// Stacked and bidirectional LSTMs from the fused layer op, as MusicVAE uses them: a stack of
// unidirectional layers for the decoder, and for the encoder Magenta's
// `stack_bidirectional_dynamic_rnn`, whose every layer runs both directions over the previous
// layer's concatenated outputs and whose summary is [forward final h, backward final h].
//
// Shapes: x (B, T, In); H hidden units per direction; outputs (B, T, H), or (B, T, 2H) for a
// bidirectional layer; states (B, H).

import Foundation

/// The parameters of one LSTM layer in one direction.
public struct LSTMWeights {
    /// `(In + H, 4H)`: the kernel on `[x, h_prev]`, gate columns in the order `[i, ci, f, o]`.
    public let kernel: Tensor
    /// `(4H)`; the forget gate adds 1 to it at run time.
    public let bias: Tensor

    /// Weights from existing tensors (a checkpoint's `kernel` and `bias`).
    public init(kernel: Tensor, bias: Tensor) {
        precondition(kernel.rank == 2 && kernel.shape[1] % 4 == 0 && bias.shape == [kernel.shape[1]],
                     "LSTMWeights: kernel \(kernel.shape) and bias \(bias.shape) are not (In + H, 4H) and (4H)")
        self.kernel = kernel
        self.bias = bias
    }

    /// New trainable weights as TensorFlow makes them for LSTMBlockCell: a Glorot-uniform
    /// kernel (limit √(6 / (fan in + fan out))) and a zero bias.
    public init(inputSize: Int, hiddenSize: Int, generator: inout RandomGenerator) {
        let rows = inputSize + hiddenSize, columns = 4 * hiddenSize
        let limit = (6 / Float(rows + columns)).squareRoot()
        kernel = Tensor.randomUniform([rows, columns], low: -limit, high: limit, generator: &generator)
        kernel.requiresGrad = true
        bias = Tensor.zeros([columns], requiresGrad: true)
    }

    /// Hidden units.
    public var hiddenSize: Int { kernel.shape[1] / 4 }
    /// Input features.
    public var inputSize: Int { kernel.shape[0] - hiddenSize }
}

/// The state of one LSTM layer: hidden and cell, `(B, H)` each.
public struct LSTMState {
    public let hidden: Tensor
    public let cell: Tensor

    public init(hidden: Tensor, cell: Tensor) {
        self.hidden = hidden
        self.cell = cell
    }
}

extension Tensor {
    /// Unidirectional layers, each reading the previous layer's output sequence.
    /// `x (B, T, In)`; `initialStates` one per layer or nil for zeros. Returns the last layer's
    /// output `(B, T, H)` and every layer's final state.
    public static func stackedLSTM(_ x: Tensor, layers: [LSTMWeights], initialStates: [LSTMState]? = nil)
        -> (output: Tensor, finalStates: [LSTMState]) {
        precondition(!layers.isEmpty, "stackedLSTM: no layers")
        if let initialStates {
            precondition(initialStates.count == layers.count,
                         "stackedLSTM: \(initialStates.count) initial states for \(layers.count) layers")
        }
        var h = x
        var finalStates: [LSTMState] = []
        for (l, layer) in layers.enumerated() {
            let initial = initialStates?[l]
            let r = lstm(h, initialHidden: initial?.hidden, initialCell: initial?.cell,
                         weight: layer.kernel, bias: layer.bias)
            h = r.output
            finalStates.append(LSTMState(hidden: r.finalHidden, cell: r.finalCell))
        }
        return (h, finalStates)
    }

    /// Bidirectional layers (`stack_bidirectional_dynamic_rnn`): layer l runs `forward[l]` from
    /// time 0 and `backward[l]` from time T−1 over the previous layer's output, zero initial
    /// states. `x (B, T, In)`. Returns the last layer's output `(B, T, 2H)`, forward half first,
    /// and `finalHidden (B, 2H)`: the forward direction's h after time T−1 next to the backward
    /// direction's h after time 0, MusicVAE's encoder summary.
    public static func bidirectionalLSTM(_ x: Tensor, forward: [LSTMWeights], backward: [LSTMWeights])
        -> (output: Tensor, finalHidden: Tensor) {
        precondition(!forward.isEmpty && forward.count == backward.count,
                     "bidirectionalLSTM: \(forward.count) forward and \(backward.count) backward layers")
        var h = x
        var finalHidden = x
        for (fw, bw) in zip(forward, backward) {
            let f = lstm(h, weight: fw.kernel, bias: fw.bias)
            let b = lstm(h, weight: bw.kernel, bias: bw.bias, reverse: true)
            h = concatenate([f.output, b.output], axis: 2)
            finalHidden = concatenate([f.finalHidden, b.finalHidden], axis: 1)
        }
        return (h, finalHidden)
    }
}
