// The prior's transformer built from its config: `depth` blocks cycling the patterns of
// `attn_order`.

import TensorCore
import ModelKit

extension Transformer {
    convenience init(config c: PriorConfig, generator: inout RandomGenerator) {
        let patterns = AttentionPattern.layout(order: c.attnOrder, depth: c.depth)!
        self.init(blocks: patterns.map {
            ResAttnBlock(width: c.width, stateWidth: c.attentionWidth, heads: c.heads, hidden: Int(c.mlpFactor * Float(c.width)),
                         pattern: $0, blockLength: c.blockLength, initScale: c.initScale, generator: &generator)
        })
    }
}
