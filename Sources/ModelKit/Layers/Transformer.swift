// The sparse transformer of the Jukebox priors (reference §2.2), usable by any model: pre-LayerNorm residual blocks whose
// attention is factorised over blocks of n_ctx / blocks positions.
//
// Shapes: x (N, T, width); q, k, v (N, T, n_state) with n_state = attn_width_factor · width;
// T a multiple of the block length L (callers pad; causality keeps padding invisible).
//
// The four patterns, each computed block-sparse with the dense fused attention kernel:
//   dense         every earlier position                         (N, T, ·)         causal
//   row           own block up to itself                         (N·T/L, L, ·)     causal
//   column        same offset in this and every earlier block    (N·L, T/L, ·)     causal
//   previous row  the whole previous block (zeros for block 0)   (N·T/L, L, ·)     unmasked
// Row and previous-row layers cost O(T·L), column layers O(T·T/L), not O(T²).

import TensorCore

/// The attention function of a layer (Jukebox's `attn_func` 0–3).
public enum AttentionPattern: Int, Sendable, CaseIterable {
    case dense = 0, row = 1, column = 2, previousRow = 3

    /// The pattern of each of `depth` layers for Jukebox's `attn_order`, or nil when the
    /// order uses a pattern this port does not implement (summary, lyric cross-attention).
    public static func layout(order: Int, depth: Int) -> [AttentionPattern]? {
        let cycle: [AttentionPattern]
        switch order {
        case 0: cycle = [.dense]
        case 1: cycle = [.row, .column]
        case 2: cycle = [.row, .column, .previousRow]
        case 9: cycle = [.row, .column, .previousRow, .dense]
        default: return nil
        }
        return (0..<depth).map { cycle[$0 % cycle.count] }
    }
}

/// Multi-head attention with a fused q|k|v projection and an output projection.
public final class FactoredAttention: Module {
    public let pattern: AttentionPattern
    public let heads: Int
    public let blockLength: Int
    public let stateWidth: Int
    /// `width → 3 · n_state`, columns q | k | v.
    public let cAttn: Linear
    /// `n_state → width`.
    public let cProj: Linear

    public init(width: Int, stateWidth: Int, heads: Int, pattern: AttentionPattern, blockLength: Int, initScale: Float,
         generator: inout RandomGenerator) {
        self.pattern = pattern
        self.heads = heads
        self.blockLength = blockLength
        self.stateWidth = stateWidth
        cAttn = Linear(inputSize: width, outputSize: 3 * stateWidth, std: 0.02 * initScale, generator: &generator)
        cProj = Linear(inputSize: stateWidth, outputSize: width, std: 0.02 * initScale, generator: &generator)
    }

    public func namedParameters() -> [NamedParameter] {
        parameters(of: cAttn, prefix: "c_attn") + parameters(of: cProj, prefix: "c_proj")
    }

    /// `x (N, T, width)` → `(N, T, width)`. `capture` receives this layer's keys and values
    /// `(N, T, n_state)` (used to fill a sampling cache from a prime).
    public func callAsFunction(_ x: Tensor, capture: ((Tensor, Tensor) -> Void)? = nil) -> Tensor {
        let qkv = cAttn(x)                                        // (N, T, 3·S)
        let S = stateWidth
        let q = qkv.slice(axis: 2, 0..<S), k = qkv.slice(axis: 2, S..<(2 * S)), v = qkv.slice(axis: 2, (2 * S)..<(3 * S))
        capture?(k, v)
        return cProj(attend(q, k, v))
    }

    /// The pattern's attention over `q, k, v (N, T, S)`.
    public func attend(_ q: Tensor, _ k: Tensor, _ v: Tensor) -> Tensor {
        let (N, T, S) = (q.shape[0], q.shape[1], q.shape[2])
        let L = blockLength
        precondition(pattern == .dense || T % L == 0, "attention: length \(T) is not a multiple of the block length \(L)")
        switch pattern {
        case .dense:
            return Tensor.attention(query: q, key: k, value: v, heads: heads, causal: true)
        case .row:
            let blocks = [N * T / L, L, S]
            return Tensor.attention(query: q.reshaped(blocks), key: k.reshaped(blocks), value: v.reshaped(blocks),
                                    heads: heads, causal: true).reshaped([N, T, S])
        case .column:
            func columns(_ t: Tensor) -> Tensor { t.reshaped([N, T / L, L, S]).transposed(1, 2).reshaped([N * L, T / L, S]) }
            let out = Tensor.attention(query: columns(q), key: columns(k), value: columns(v), heads: heads, causal: true)
            return out.reshaped([N, L, T / L, S]).transposed(1, 2).reshaped([N, T, S])
        case .previousRow:
            // Keys and values moved one block later: block b sees block b − 1, block 0 zeros.
            func previous(_ t: Tensor) -> Tensor {
                t.padded(axis: 1, before: L, after: 0).slice(axis: 1, 0..<T).reshaped([N * T / L, L, S])
            }
            return Tensor.attention(query: q.reshaped([N * T / L, L, S]), key: previous(k), value: previous(v),
                                    heads: heads, causal: false).reshaped([N, T, S])
        }
    }
}

/// `c_proj(quick_gelu(c_fc(x)))`.
public final class MLP: Module {
    public let cFc: Linear
    public let cProj: Linear

    public init(width: Int, hidden: Int, initScale: Float, generator: inout RandomGenerator) {
        cFc = Linear(inputSize: width, outputSize: hidden, std: 0.02 * initScale, generator: &generator)
        cProj = Linear(inputSize: hidden, outputSize: width, std: 0.02 * initScale, generator: &generator)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { cProj(cFc(x).quickGELU()) }

    public func namedParameters() -> [NamedParameter] {
        parameters(of: cFc, prefix: "c_fc") + parameters(of: cProj, prefix: "c_proj")
    }
}

/// Pre-LayerNorm block: `a = attn(ln_0(x))`, `m = mlp(ln_1(x + a))`, `x + a + m`.
public final class ResAttnBlock: Module {
    public let ln0: LayerNorm
    public let attn: FactoredAttention
    public let ln1: LayerNorm
    public let mlp: MLP

    /// A block of `width` with attention of inner width `stateWidth` in `heads` heads over
    /// `pattern` (blocks of `blockLength`), an MLP of `hidden`, weights N(0, (0.02·initScale)²).
    public init(width: Int, stateWidth: Int, heads: Int, hidden: Int, pattern: AttentionPattern, blockLength: Int,
                initScale: Float, generator: inout RandomGenerator) {
        ln0 = LayerNorm(size: width)
        attn = FactoredAttention(width: width, stateWidth: stateWidth, heads: heads, pattern: pattern,
                                 blockLength: blockLength, initScale: initScale, generator: &generator)
        ln1 = LayerNorm(size: width)
        mlp = MLP(width: width, hidden: hidden, initScale: initScale, generator: &generator)
    }

    public func callAsFunction(_ x: Tensor, capture: ((Tensor, Tensor) -> Void)? = nil) -> Tensor {
        let a = attn(ln0(x), capture: capture)
        let h = x + a
        return h + mlp(ln1(h))
    }

    public func namedParameters() -> [NamedParameter] {
        parameters(of: ln0, prefix: "ln_0") + parameters(of: attn, prefix: "attn")
            + parameters(of: ln1, prefix: "ln_1") + parameters(of: mlp, prefix: "mlp")
    }
}

/// The stack of residual attention blocks.
public final class Transformer: Module {
    public let blocks: [ResAttnBlock]

    /// A stack of `blocks`.
    public init(blocks: [ResAttnBlock]) {
        self.blocks = blocks
    }

    /// `x (N, T, width)` → same shape. `capture(layer, k, v)` sees every layer's keys and values.
    public func callAsFunction(_ x: Tensor, capture: ((Int, Tensor, Tensor) -> Void)? = nil) -> Tensor {
        var h = x
        for (i, block) in blocks.enumerated() {
            h = block(h, capture: capture.map { c in { k, v in c(i, k, v) } })
        }
        return h
    }

    public func namedParameters() -> [NamedParameter] {
        blocks.enumerated().flatMap { parameters(of: $0.element, prefix: "blocks.\($0.offset)") }
    }
}
