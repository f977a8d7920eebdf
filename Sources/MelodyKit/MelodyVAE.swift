// MusicVAE's 2-bar melody model (reference: Magenta's lstm_models.py and base_model.py).
//
// Encoder: bidirectional LSTM layers over the one-hot events; its summary is [forward final h,
// backward final h]. μ = Dense(summary), σ = softplus(Dense(summary)), both kernels N(0, 0.001²);
// z = μ + σ·ε. Decoder: initial states tanh(Dense(z)) split in the order [c1, h1, c2, h2, …];
// each step's input is [one-hot of the previous event (zeros at step 0), z]; output Dense(90).
//
// Shapes: events (B, T) with T = 32; one-hot (B, T, 90); z (B, Z); logits (B, T, 90).

import Foundation
import TensorCore
import ModelKit

/// The melody VAE.
public final class MelodyVAE: Module {
    public let config: MelodyVAEConfig
    public let encoderForward: [LSTMWeights]
    public let encoderBackward: [LSTMWeights]
    public let mu: Linear
    public let sigma: Linear
    public let initialState: Linear
    public let decoder: [LSTMWeights]
    public let output: Linear

    public init(config: MelodyVAEConfig, seed: UInt64) {
        self.config = config
        var g = RandomGenerator(seed: seed)
        var forward: [LSTMWeights] = [], backward: [LSTMWeights] = []
        var input = config.classes
        for units in config.encoderUnits {
            forward.append(LSTMWeights(inputSize: input, hiddenSize: units, generator: &g))
            backward.append(LSTMWeights(inputSize: input, hiddenSize: units, generator: &g))
            input = 2 * units
        }
        encoderForward = forward
        encoderBackward = backward
        mu = Linear(inputSize: input, outputSize: config.zSize, std: 0.001, generator: &g)
        sigma = Linear(inputSize: input, outputSize: config.zSize, std: 0.001, generator: &g)
        initialState = Linear(inputSize: config.zSize, outputSize: 2 * config.decoderUnits.reduce(0, +), std: 0.001, generator: &g)
        var layers: [LSTMWeights] = []
        input = config.classes + config.zSize
        for units in config.decoderUnits {
            layers.append(LSTMWeights(inputSize: input, hiddenSize: units, generator: &g))
            input = units
        }
        decoder = layers
        output = MelodyVAE.glorotLinear(inputSize: input, outputSize: config.classes, generator: &g)
    }

    /// A dense layer as TensorFlow makes it: Glorot-uniform kernel, zero bias.
    static func glorotLinear(inputSize: Int, outputSize: Int, generator: inout RandomGenerator) -> Linear {
        let layer = Linear(inputSize: inputSize, outputSize: outputSize, std: 0, generator: &generator)
        let limit = (6 / Float(inputSize + outputSize)).squareRoot()
        for i in 0..<layer.weight.count { layer.weight.data[i] = generator.uniform() * 2 * limit - limit }
        return layer
    }

    public func namedParameters() -> [NamedParameter] {
        var p: [NamedParameter] = []
        for (l, (f, b)) in zip(encoderForward, encoderBackward).enumerated() {
            p += [("encoder.\(l).forward.kernel", f.kernel), ("encoder.\(l).forward.bias", f.bias),
                  ("encoder.\(l).backward.kernel", b.kernel), ("encoder.\(l).backward.bias", b.bias)]
        }
        p += parameters(of: mu, prefix: "mu") + parameters(of: sigma, prefix: "sigma")
            + parameters(of: initialState, prefix: "decoder.initial_state")
        for (l, w) in decoder.enumerated() { p += [("decoder.\(l).kernel", w.kernel), ("decoder.\(l).bias", w.bias)] }
        return p + parameters(of: output, prefix: "output")
    }

    /// `events (B·T)` as one-hot `(B, T, classes)`; with `shifted`, each step holds the previous
    /// event and step 0 zeros (the decoder's teacher-forced input).
    func oneHot(_ events: [Int32], batch: Int, shifted: Bool = false) -> Tensor {
        let T = events.count / batch, V = config.classes
        let x = Tensor.zeros([batch, T, V])
        for b in 0..<batch {
            for t in 0..<T {
                let source = shifted ? t - 1 : t
                if source >= 0 { x.data[(b * T + t) * V + Int(events[b * T + source])] = 1 }
            }
        }
        return x
    }

    /// The posterior of `events (B·T)`: μ and σ, `(B, Z)` each.
    public func encode(_ events: [Int32], batch: Int) -> (mu: Tensor, sigma: Tensor) {
        let summary = Tensor.bidirectionalLSTM(oneHot(events, batch: batch), forward: encoderForward,
                                               backward: encoderBackward).finalHidden
        return (mu(summary), softplus(sigma(summary)))
    }

    /// log(1 + eˣ), stable for any x: relu(x) + log(1 + e^−|x|).
    func softplus(_ x: Tensor) -> Tensor { x.relu() + ((-x.abs()).exp() + 1).log() }

    /// The decoder's initial states from `z (B, Z)`.
    func initialStates(_ z: Tensor) -> [LSTMState] {
        let s = initialState(z).tanh()
        var offset = 0
        return config.decoderUnits.map { units in
            defer { offset += 2 * units }
            return LSTMState(hidden: s.slice(axis: 1, (offset + units)..<(offset + 2 * units)),
                             cell: s.slice(axis: 1, offset..<(offset + units)))
        }
    }

    /// Logits `(B, T, classes)` of the decoder given `z (B, Z)` and the input events of every
    /// step: the truth, except where `fed` (B·T) holds another event (scheduled sampling),
    /// which `choose(b, t, logits)` picks from the step's own output. With no choices the whole
    /// sequence runs at once; otherwise step by step.
    public func decode(_ z: Tensor, targets: [Int32], batch: Int,
                       choose: ((_ item: Int, _ step: Int, _ logits: UnsafePointer<Float>) -> Int32?)? = nil) -> Tensor {
        let T = targets.count / batch, Z = config.zSize
        let zSteps = z.reshaped([batch, 1, Z]) + Tensor.zeros([1, T, 1])      // (B, T, Z), broadcast
        guard let choose else {
            let x = Tensor.concatenate([oneHot(targets, batch: batch, shifted: true), zSteps], axis: 2)
            let h = Tensor.stackedLSTM(x, layers: decoder, initialStates: initialStates(z)).output
            return output(h)
        }
        var states = initialStates(z)
        var previous = [Int32](repeating: -1, count: batch)                    // −1: no event yet
        var steps: [Tensor] = []
        let z1 = z.reshaped([batch, 1, Z])
        for t in 0..<T {
            let input = Tensor.zeros([batch, 1, config.classes])
            for b in 0..<batch where previous[b] >= 0 { input.data[b * config.classes + Int(previous[b])] = 1 }
            var h = Tensor.concatenate([input, z1], axis: 2)
            for (l, layer) in decoder.enumerated() {
                let r = Tensor.lstm(h, initialHidden: states[l].hidden, initialCell: states[l].cell,
                                    weight: layer.kernel, bias: layer.bias)
                states[l] = LSTMState(hidden: r.finalHidden, cell: r.finalCell)
                h = r.output
            }
            let logits = output(h)                                             // (B, 1, classes)
            steps.append(logits)
            for b in 0..<batch {
                previous[b] = choose(b, t, logits.data + b * config.classes) ?? targets[b * T + t]
            }
        }
        return Tensor.concatenate(steps, axis: 1)
    }

    /// KL(q(z|x) ‖ N(0, I)) per item in nats, `(B)`.
    public func klDivergence(mu: Tensor, sigma: Tensor) -> Tensor {
        ((sigma.square() + mu.square()) * 0.5 - sigma.log() - 0.5).sum(axis: 1)
    }

    /// Greedy (argmax) decoding of `z (B, Z)` into `steps` events per item, without gradients.
    public func greedyDecode(_ z: Tensor, steps T: Int) -> [Int32] {
        Tensor.withoutGrad {
            let batch = z.shape[0], V = config.classes
            var events = [Int32](repeating: 0, count: batch * T)
            let placeholder = [Int32](repeating: 0, count: batch * T)
            _ = decode(z, targets: placeholder, batch: batch) { b, t, logits in
                var best = 0
                for i in 1..<V where logits[i] > logits[best] { best = i }
                events[b * T + t] = Int32(best)
                return Int32(best)
            }
            return events
        }
    }
}
