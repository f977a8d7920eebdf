// The names and layouts of OpenAI's Jukebox checkpoints next to ours (reference
// jukebox-checkpoints.md §2 and §8.2): one list per model family, generated from our config,
// of (official key, official shape, our parameter name, layout change).
//
// Layouts: torch nn.Conv1d weights are (C_out, C_in, K), nn.ConvTranspose1d (C_in, C_out, K),
// nn.Linear (out, in); ours are (K, C_in, C_out) for both convolutions and (in, out) for
// linear layers. Jukebox's own Conv1D is already (in, out).

import TensorCore

/// How an official tensor becomes ours.
public enum OpenAILayout: Sendable, Equatable {
    /// Same shape, same order.
    case same
    /// nn.Conv1d (C_out, C_in, K) → (K, C_in, C_out).
    case conv
    /// nn.ConvTranspose1d (C_in, C_out, K) → (K, C_in, C_out).
    case convTranspose
    /// nn.Linear (out, in) → (in, out).
    case linear
    /// Present in the file, checked, not imported: the upsamplers' `x_out` is tied to `x_emb`.
    case tied

    /// Our shape for an official shape `s`.
    func shape(_ s: [Int]) -> [Int] {
        switch self {
        case .same, .tied: s
        case .conv: [s[2], s[1], s[0]]
        case .convTranspose: [s[2], s[0], s[1]]
        case .linear: [s[1], s[0]]
        }
    }

    /// `values` (row-major in the official shape `s`) in our layout.
    func convert(_ values: [Float], shape s: [Int]) -> [Float] {
        var out = values
        switch self {
        case .same, .tied:
            break
        case .conv:     // (O, I, K) → (K, I, O)
            let (O, I, K) = (s[0], s[1], s[2])
            for o in 0..<O { for i in 0..<I { for k in 0..<K { out[(k * I + i) * O + o] = values[(o * I + i) * K + k] } } }
        case .convTranspose:     // (I, O, K) → (K, I, O)
            let (I, O, K) = (s[0], s[1], s[2])
            for i in 0..<I { for o in 0..<O { for k in 0..<K { out[(k * I + i) * O + o] = values[(i * O + o) * K + k] } } }
        case .linear:     // (O, I) → (I, O)
            let (O, I) = (s[0], s[1])
            for o in 0..<O { for i in 0..<I { out[i * O + o] = values[o * I + i] } }
        }
        return out
    }
}

/// One official tensor and where it goes.
public struct OpenAITensorMapping: Sendable, Equatable {
    /// The key in the checkpoint's `model` state dict.
    public var officialName: String
    /// Its shape there.
    public var officialShape: [Int]
    /// Our parameter name.
    public var name: String
    public var layout: OpenAILayout
}

enum OpenAIMapping {
    /// A Resnet1D's blocks: Jukebox's `<prefix>.<d>.model.{1,3}` (k3 dilated conv, then k1),
    /// ours `<ours>.blocks.<d>.{conv3,conv1}`. Both sides list blocks in the order applied.
    static func resnet(_ prefix: String, _ ours: String, width: Int, inner: Int, depth: Int) -> [OpenAITensorMapping] {
        (0..<depth).flatMap { d in
            conv("\(prefix).\(d).model.1", "\(ours).blocks.\(d).conv3", out: inner, in: width, k: 3)
                + conv("\(prefix).\(d).model.3", "\(ours).blocks.\(d).conv1", out: width, in: inner, k: 1)
        }
    }

    static func conv(_ official: String, _ ours: String, out: Int, in: Int, k: Int) -> [OpenAITensorMapping] {
        [OpenAITensorMapping(officialName: official + ".weight", officialShape: [out, `in`, k], name: ours + ".weight", layout: .conv),
         OpenAITensorMapping(officialName: official + ".bias", officialShape: [out], name: ours + ".bias", layout: .same)]
    }

    static func convTranspose(_ official: String, _ ours: String, in: Int, out: Int, k: Int) -> [OpenAITensorMapping] {
        [OpenAITensorMapping(officialName: official + ".weight", officialShape: [`in`, out, k], name: ours + ".weight",
                             layout: .convTranspose),
         OpenAITensorMapping(officialName: official + ".bias", officialShape: [out], name: ours + ".bias", layout: .same)]
    }

    static func same(_ official: String, _ shape: [Int], _ ours: String) -> OpenAITensorMapping {
        OpenAITensorMapping(officialName: official, officialShape: shape, name: ours, layout: .same)
    }

    /// Jukebox's `Conv1D` (`w` (in, out), `b`) → our Linear.
    static func linear(_ official: String, _ ours: String, in: Int, out: Int) -> [OpenAITensorMapping] {
        [same(official + ".w", [`in`, out], ours + ".weight"), same(official + ".b", [out], ours + ".bias")]
    }

    static func layerNorm(_ official: String, _ ours: String, width: Int) -> [OpenAITensorMapping] {
        [same(official + ".weight", [width], ours + ".weight"), same(official + ".bias", [width], ours + ".bias")]
    }

    /// The VQ-VAE (`vqvae` preset structure; encdec.py, resnet.py, bottleneck.py).
    static func vqvae(_ c: VQVAEConfig) -> [OpenAITensorMapping] {
        var m: [OpenAITensorMapping] = []
        for L in 0..<c.levels {
            let w = c.width * c.hvqvaeMultipliers[L], depth = c.depth * c.hvqvaeMultipliers[L]
            let inner = Swift.max(1, Int(c.mConv * Float(w)))
            for j in 0...L {
                let k = 2 * c.stridesT[j]
                for i in 0..<c.downsT[j] {
                    let input = i > 0 ? w : (j == 0 ? 1 : c.embWidth)
                    let p = "encoders.\(L).level_blocks.\(j).model.\(i)", ours = "encoders.\(L).blocks.\(j).downs.\(i)"
                    m += conv(p + ".0", ours + ".conv", out: w, in: input, k: k)
                    m += resnet(p + ".1.model", ours + ".resnet", width: w, inner: inner, depth: depth)
                }
                m += conv("encoders.\(L).level_blocks.\(j).model.\(c.downsT[j])", "encoders.\(L).blocks.\(j).out",
                          out: c.embWidth, in: w, k: 3)
            }
        }
        for L in 0..<c.levels {
            let w = c.width * c.hvqvaeMultipliers[L], depth = c.depth * c.hvqvaeMultipliers[L]
            let inner = Swift.max(1, Int(c.mConv * Float(w)))
            for j in 0...L {
                // Jukebox lists the decoder's level blocks bottom-up and runs them top-down; ours
                // are listed in the order they run.
                let p = "decoders.\(L).level_blocks.\(j).model", ours = "decoders.\(L).blocks.\(L - j)"
                m += conv(p + ".0", ours + ".input", out: w, in: c.embWidth, k: 3)
                for i in 0..<c.downsT[j] {
                    m += resnet("\(p).\(i + 1).0.model", "\(ours).ups.\(i).resnet", width: w, inner: inner, depth: depth)
                    m += convTranspose("\(p).\(i + 1).1", "\(ours).ups.\(i).conv", in: w,
                                       out: i == c.downsT[j] - 1 ? c.embWidth : w, k: 2 * c.stridesT[j])
                }
            }
            m += conv("decoders.\(L).out", "decoders.\(L).out", out: 1, in: c.embWidth, k: 3)
        }
        for L in 0..<c.levels {
            m.append(same("bottleneck.level_blocks.\(L).k", [c.lBins, c.embWidth], "bottlenecks.\(L).codebook"))
        }
        return m
    }

    /// A prior or upsampler without lyrics (`prior_5b`, `upsampler_level_{0,1}` structure;
    /// prior.py, autoregressive.py, conditioners.py, transformer.py) of a model with
    /// `artists` and `genres` label entries.
    static func prior(_ c: PriorConfig, levels: Int, artists: Int, genres: Int) -> [OpenAITensorMapping] {
        let w = c.width, s = c.attentionWidth, hidden = Int(c.mlpFactor * Float(c.width))
        var m: [OpenAITensorMapping] = []
        if c.isUpsampler(levels: levels) {
            let cc = c.conditioner, p = "conditioner_blocks.0"
            m.append(same(p + ".x_emb.weight", [c.bins, w], "conditioner.x_emb.weight"))
            m += conv(p + ".cond.model.0", "conditioner.input", out: cc.width, in: w, k: 3)
            for i in 0..<cc.downT {
                // `.blocks.`, not `.model.`: the conditioner's Resnet1D is built with checkpoint_res=1.
                m += resnet("\(p).cond.model.\(i + 1).0.blocks", "conditioner.ups.\(i).resnet", width: cc.width, inner: cc.width,
                            depth: cc.depth)
                m += convTranspose("\(p).cond.model.\(i + 1).1", "conditioner.ups.\(i).conv", in: cc.width,
                                   out: i == cc.downT - 1 ? w : cc.width, k: 4)
            }
            m += layerNorm(p + ".ln", "conditioner.ln", width: w)
        }
        m.append(same("y_emb.bow_genre_emb.emb.weight", [genres, w], "y_emb.genre_emb.weight"))
        m.append(same("y_emb.artist_emb.emb.weight", [artists, w], "y_emb.artist_emb.weight"))
        if !c.isUpsampler(levels: levels) {
            for name in ["total_length", "absolute_pos", "relative_pos"] {
                m.append(same("y_emb.\(name)_emb.emb.weight", [c.tBins, w], "y_emb.\(name)_emb.emb.weight"))
            }
        }
        m.append(same("prior.x_emb.weight", [c.bins, w], "x_emb.weight"))
        m.append(same("prior.pos_emb.pos_emb", [c.nCtx, w], "pos_emb"))
        for d in 0..<c.depth {
            let p = "prior.transformer._attn_mods.\(d)", ours = "transformer.blocks.\(d)"
            m += linear(p + ".attn.c_attn", ours + ".attn.c_attn", in: w, out: 3 * s)
            m += linear(p + ".attn.c_proj", ours + ".attn.c_proj", in: s, out: w)
            m += layerNorm(p + ".ln_0", ours + ".ln_0", width: w)
            m += linear(p + ".mlp.c_fc", ours + ".mlp.c_fc", in: w, out: hidden)
            m += linear(p + ".mlp.c_proj", ours + ".mlp.c_proj", in: hidden, out: w)
            m += layerNorm(p + ".ln_1", ours + ".ln_1", width: w)
        }
        m.append(OpenAITensorMapping(officialName: "prior.x_out.weight", officialShape: [c.bins, w], name: "x_out.weight",
                                     layout: c.mergedDecoder ? .linear : .tied))
        return m
    }
}
