// Window bookkeeping of ancestral sampling (reference §2.5): each level is sampled in windows of
// n_ctx tokens that start every hop = hop_fraction · n_ctx tokens; the last window snaps to the
// end (start = total − n_ctx), and each window primes on the tokens already there.

/// Start positions of the windows over `total` tokens, as Jukebox's `get_starts`:
/// 0, hop, 2·hop, … while a window fits, with the first start whose window would reach the end
/// replaced by `total − nCtx`. Requires total ≥ nCtx.
public func windowStarts(total: Int, nCtx: Int, hop: Int) -> [Int] {
    precondition(total >= nCtx && hop >= 1, "windowStarts: total \(total) must be at least n_ctx \(nCtx)")
    var starts: [Int] = []
    for start in stride(from: 0, to: total - nCtx + hop, by: hop) {
        if start + nCtx >= total {
            starts.append(total - nCtx)
            break
        }
        starts.append(start)
    }
    return starts
}

/// Hop in tokens for a level: hop_fraction · n_ctx, rounded down to a multiple of `alignment`
/// (upsampler windows must start on a multiple of the hop ratio to the level above), at least
/// `alignment`.
public func windowHop(nCtx: Int, fraction: Float, alignment: Int) -> Int {
    let raw = Int(fraction * Float(nCtx))
    return Swift.max(alignment, raw / alignment * alignment)
}
