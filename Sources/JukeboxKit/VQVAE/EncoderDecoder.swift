// The VQ-VAE's convolutional stacks (reference §1.2): residual blocks of dilated convolutions,
// encoder blocks that halve the time axis with kernel-4 stride-2 convolutions, and decoder
// blocks that mirror them with transposed convolutions and reversed dilations.
//
// Shapes: audio (B, T, 1); latents (B, T / hop, emb_width); block activations (B, T', width).

import TensorCore
import ModelKit

/// `x + scale · conv1x1(relu(conv3(relu(x), dilation)))`.
public final class ResConvBlock: Module {
    let conv3: Conv1d
    let conv1: Conv1d
    let resScale: Float

    init(width: Int, innerWidth: Int, dilation: Int, resScale: Float, generator: inout RandomGenerator) {
        conv3 = Conv1d(inputChannels: width, outputChannels: innerWidth, kernelSize: 3, padding: dilation,
                       dilation: dilation, generator: &generator)
        conv1 = Conv1d(inputChannels: innerWidth, outputChannels: width, kernelSize: 1, generator: &generator)
        self.resScale = resScale
    }

    /// `x (B, T, width)` → same shape.
    ///
    /// Both relus run inside the convolutions and the residual add inside the second, so the
    /// graph keeps two tensors per block (the inner activation and the result) instead of five;
    /// without a graph the inner activation never leaves the cache (`Tensor.residualBlock`).
    /// `origin` is x's position in a longer signal run in windows (see `Tensor.conv1d`).
    public func callAsFunction(_ x: Tensor, origin: Int = 0) -> Tensor {
        guard resScale == 1 else {
            // h (B, T, innerWidth)
            let h = Tensor.conv1d(x, weight: conv3.weight, bias: conv3.bias, padding: conv3.padding,
                                  dilation: conv3.dilation, inputActivation: .relu, origin: origin)
            return x + Tensor.conv1d(h, weight: conv1.weight, bias: conv1.bias, inputActivation: .relu, origin: origin) * resScale
        }
        return Tensor.residualBlock(x, innerWeight: conv3.weight, innerBias: conv3.bias, dilation: conv3.dilation,
                                    outerWeight: conv1.weight, outerBias: conv1.bias, origin: origin)
    }

    public func namedParameters() -> [NamedParameter] {
        parameters(of: conv3, prefix: "conv3") + parameters(of: conv1, prefix: "conv1")
    }
}

/// A stack of residual blocks with dilations growth^d (d mod cycle when cycled).
public final class Resnet1D: Module {
    let blocks: [ResConvBlock]

    init(width: Int, depth: Int, mConv: Float, growth: Int, cycle: Int, reverseDilation: Bool, resScale: Float = 1,
         generator: inout RandomGenerator) {
        var dilations = (0..<depth).map { d -> Int in
            var p = 1
            for _ in 0..<(cycle > 0 ? d % cycle : d) { p *= growth }
            return p
        }
        if reverseDilation { dilations.reverse() }
        let inner = Swift.max(1, Int(mConv * Float(width)))
        blocks = dilations.map {
            ResConvBlock(width: width, innerWidth: inner, dilation: $0, resScale: resScale, generator: &generator)
        }
    }

    public func callAsFunction(_ x: Tensor, origin: Int = 0) -> Tensor {
        blocks.reduce(x) { h, block in block(h, origin: origin) }
    }

    public func namedParameters() -> [NamedParameter] {
        blocks.enumerated().flatMap { parameters(of: $0.element, prefix: "blocks.\($0.offset)") }
    }

    /// Dilations in the order applied.
    var dilations: [Int] { blocks.map { $0.conv3.dilation } }
}

/// `down_t` × [strided conv, residual stack], then a k3 conv to the latent width.
public final class EncoderConvBlock: Module {
    let downs: [(conv: Conv1d, resnet: Resnet1D)]
    let out: Conv1d

    init(inputChannels: Int, config c: VQVAEConfig, level: Int, width: Int, depth: Int, generator: inout RandomGenerator) {
        let stride = c.stridesT[level]
        var downs: [(Conv1d, Resnet1D)] = []
        for i in 0..<c.downsT[level] {
            let conv = Conv1d(inputChannels: i == 0 ? inputChannels : width, outputChannels: width,
                              kernelSize: 2 * stride, stride: stride, padding: stride / 2, generator: &generator)
            let resnet = Resnet1D(width: width, depth: depth, mConv: c.mConv, growth: c.dilationGrowthRate,
                                  cycle: c.dilationCycle, reverseDilation: false, generator: &generator)
            downs.append((conv, resnet))
        }
        self.downs = downs
        out = Conv1d(inputChannels: width, outputChannels: c.embWidth, kernelSize: 3, padding: 1, generator: &generator)
    }

    /// `x (B, T, C)` at position `origin` of a longer signal (a multiple of the block's total
    /// stride) → `(B, T / stride^down_t, emb_width)`.
    public func callAsFunction(_ x: Tensor, origin: Int = 0) -> Tensor {
        var (h, position) = (x, origin)
        for d in downs {
            h = d.conv(h, origin: position)
            position /= d.conv.stride
            h = d.resnet(h, origin: position)
        }
        return out(h, origin: position)
    }

    /// The block's total stride.
    var stride: Int { downs.reduce(1) { $0 * $1.conv.stride } }

    public func namedParameters() -> [NamedParameter] {
        var p: [NamedParameter] = []
        for (i, d) in downs.enumerated() {
            p += parameters(of: d.conv, prefix: "downs.\(i).conv") + parameters(of: d.resnet, prefix: "downs.\(i).resnet")
        }
        return p + parameters(of: out, prefix: "out")
    }
}

/// A k3 conv from the latent width, then `down_t` × [residual stack with reversed dilations,
/// transposed conv]; the last transposed conv returns to the latent width.
public final class DecoderConvBlock: Module {
    let input: Conv1d
    let ups: [(resnet: Resnet1D, conv: ConvTranspose1d)]

    init(config c: VQVAEConfig, level: Int, width: Int, depth: Int, generator: inout RandomGenerator) {
        let stride = c.stridesT[level], count = c.downsT[level]
        input = Conv1d(inputChannels: c.embWidth, outputChannels: width, kernelSize: 3, padding: 1, generator: &generator)
        var ups: [(Resnet1D, ConvTranspose1d)] = []
        for i in 0..<count {
            let resnet = Resnet1D(width: width, depth: depth, mConv: c.mConv, growth: c.dilationGrowthRate,
                                  cycle: c.dilationCycle, reverseDilation: true, generator: &generator)
            let conv = ConvTranspose1d(inputChannels: width, outputChannels: i == count - 1 ? c.embWidth : width,
                                       kernelSize: 2 * stride, stride: stride, padding: stride / 2, generator: &generator)
            ups.append((resnet, conv))
        }
        self.ups = ups
    }

    /// `x (B, T, emb_width)` at position `origin` of a longer signal → `(B, T · stride^down_t, ·)`.
    public func callAsFunction(_ x: Tensor, origin: Int = 0) -> Tensor {
        var (h, position) = (input(x, origin: origin), origin)
        for u in ups {
            h = u.conv(u.resnet(h, origin: position), origin: position)
            position *= u.conv.stride
        }
        return h
    }

    /// The block's total stride.
    var stride: Int { ups.reduce(1) { $0 * $1.conv.stride } }

    public func namedParameters() -> [NamedParameter] {
        var p = parameters(of: input, prefix: "input")
        for (i, u) in ups.enumerated() {
            p += parameters(of: u.resnet, prefix: "ups.\(i).resnet") + parameters(of: u.conv, prefix: "ups.\(i).conv")
        }
        return p
    }
}

/// The encoder of level L: the blocks of levels 0...L applied in turn to the raw waveform.
public final class Encoder: Module {
    let blocks: [EncoderConvBlock]

    init(config c: VQVAEConfig, level: Int, generator: inout RandomGenerator) {
        let width = c.width * c.hvqvaeMultipliers[level], depth = c.depth * c.hvqvaeMultipliers[level]
        blocks = (0...level).map { l in
            EncoderConvBlock(inputChannels: l == 0 ? 1 : c.embWidth, config: c, level: l, width: width, depth: depth,
                             generator: &generator)
        }
    }

    /// `audio (B, T, 1)` → `latents (B, T / hop, emb_width)`. `origin` is the audio's first
    /// sample in a longer signal encoded in windows, a multiple of the hop: each latent is then
    /// computed exactly as in a pass over the whole signal.
    public func callAsFunction(_ audio: Tensor, origin: Int = 0) -> Tensor {
        var (h, position) = (audio, origin)
        for block in blocks {
            h = block(h, origin: position)
            position /= block.stride
        }
        return h
    }

    public func namedParameters() -> [NamedParameter] {
        blocks.enumerated().flatMap { parameters(of: $0.element, prefix: "blocks.\($0.offset)") }
    }

    /// How many input samples, left and right, one latent's value depends on beyond its own
    /// hop-long span: the margin a chunked encode needs to match a whole-file encode.
    var receptiveReach: Int {
        var resolution = 1, reach = 0
        for block in blocks {
            for d in block.downs {
                reach += Swift.max(d.conv.reach.left, d.conv.reach.right) * resolution
                resolution *= d.conv.stride
                reach += d.resnet.dilations.reduce(0, +) * resolution
            }
            reach += block.out.reach.left * resolution
        }
        return reach
    }
}

/// The decoder of level L: the blocks of levels L...0, then a k3 conv to one channel.
public final class Decoder: Module {
    let blocks: [DecoderConvBlock]
    let out: Conv1d

    init(config c: VQVAEConfig, level: Int, generator: inout RandomGenerator) {
        let width = c.width * c.hvqvaeMultipliers[level], depth = c.depth * c.hvqvaeMultipliers[level]
        blocks = (0...level).reversed().map { l in
            DecoderConvBlock(config: c, level: l, width: width, depth: depth, generator: &generator)
        }
        out = Conv1d(inputChannels: c.embWidth, outputChannels: 1, kernelSize: 3, padding: 1, generator: &generator)
    }

    /// `latents (B, T / hop, emb_width)` → `audio (B, T, 1)`. `origin` is the first latent's
    /// position in a longer code sequence decoded in windows: each sample is then computed
    /// exactly as in a pass over the whole sequence.
    public func callAsFunction(_ latents: Tensor, origin: Int = 0) -> Tensor {
        var (h, position) = (latents, origin)
        for block in blocks {
            h = block(h, origin: position)
            position *= block.stride
        }
        return out(h, origin: position)
    }

    public func namedParameters() -> [NamedParameter] {
        blocks.enumerated().flatMap { parameters(of: $0.element, prefix: "blocks.\($0.offset)") }
            + parameters(of: out, prefix: "out")
    }

    /// How many latent positions, left and right, one output sample depends on beyond the
    /// latent it falls in: the margin (in codes) a chunked decode needs.
    var receptiveReach: Int {
        // Walk from the latents up; `scale` is latents per position at the current layer.
        var scale = 1.0, reach = 0.0
        for block in blocks {
            reach += Double(block.input.reach.left) * scale
            for u in block.ups {
                reach += Double(u.resnet.dilations.reduce(0, +)) * scale
                reach += 2 * scale     // a transposed k4 s2 conv reads two inputs on each side at most
                scale /= Double(u.conv.stride)
            }
        }
        reach += Double(out.reach.left) * scale
        return Int(reach.rounded(.up)) + 1
    }
}
