// Conditioning of the priors (reference §2.3–2.4): the upsampler's conditioner over the upper
// level's codes, and the label conditioner (artist and genre start token, plus the timing
// signal of the top level).
//
// Shapes: upper codes (N, T / 2^down_t); x_cond (N, T, width); start (N, 1, width).

import Foundation
import TensorCore
import ModelKit

/// Upper-level codes → `(N, T, width)`: embedding, a conv stack that upsamples ×2^down_t with
/// transposed convolutions and forward-order dilations, and a layer norm.
public final class UpsamplerConditioner: Module {
    public let xEmb: Embedding
    let input: Conv1d
    let ups: [(resnet: Resnet1D, conv: ConvTranspose1d)]
    public let ln: LayerNorm

    init(config c: PriorConfig, generator: inout RandomGenerator) {
        let cc = c.conditioner
        xEmb = Embedding(count: c.bins, size: c.width, std: 0.02 * c.initScale, generator: &generator)
        input = Conv1d(inputChannels: c.width, outputChannels: cc.width, kernelSize: 3, padding: 1, generator: &generator)
        var ups: [(Resnet1D, ConvTranspose1d)] = []
        for i in 0..<cc.downT {
            let resnet = Resnet1D(width: cc.width, depth: cc.depth, mConv: 1, growth: 3, cycle: cc.dilationCycle,
                                  reverseDilation: false, resScale: cc.resScale, generator: &generator)
            let conv = ConvTranspose1d(inputChannels: cc.width, outputChannels: i == cc.downT - 1 ? c.width : cc.width,
                                       kernelSize: 4, stride: 2, padding: 1, generator: &generator)
            ups.append((resnet, conv))
        }
        self.ups = ups
        ln = LayerNorm(size: c.width)
    }

    /// `upper (N, n)` codes → `(N, n · 2^down_t, width)`.
    public func callAsFunction(_ upper: [Int32], batch: Int) -> Tensor {
        let n = upper.count / batch
        let h = ups.reduce(input(xEmb(upper, shape: [batch, n]))) { h, u in u.conv(u.resnet(h)) }
        return ln(h)
    }

    public func namedParameters() -> [NamedParameter] {
        var p = parameters(of: xEmb, prefix: "x_emb") + parameters(of: input, prefix: "input")
        for (i, u) in ups.enumerated() {
            p += parameters(of: u.resnet, prefix: "ups.\(i).resnet") + parameters(of: u.conv, prefix: "ups.\(i).conv")
        }
        return p + parameters(of: ln, prefix: "ln")
    }
}

/// An embedding of a position in a range, cut into `bins` equal bins (Jukebox's
/// RangeEmbedding). Positions are computed in Float32 as the reference does.
public final class RangeEmbedding: Module {
    public let emb: Embedding
    public let bins: Int
    public let low: Float, high: Float
    /// Positions per call: 1 for a single value, n_ctx for a position interpolated per token.
    public let count: Int

    init(count: Int, bins: Int, low: Float, high: Float, width: Int, std: Float, generator: inout RandomGenerator) {
        emb = Embedding(count: bins, size: width, std: std, generator: &generator)
        self.bins = bins
        self.low = low
        self.high = high
        self.count = count
    }

    /// Bin of each of `count` positions from `start` to `end` (exclusive), interpolated.
    /// Out-of-range positions are clamped to the first or last bin.
    public func binIndices(start: Float, end: Float) -> [Int32] {
        (0..<count).map { i in
            let position = count == 1 ? start : start + (end - start) * (Float(i) / Float(count))
            // Normalised first, then scaled, in this order as Jukebox does: the bin at a boundary
            // depends on it.
            let bin = (Float(bins) * ((position - low) / (high - low))).rounded(.down)
            return Int32(Swift.max(0, Swift.min(Float(bins - 1), bin)))
        }
    }

    /// `(N, count, width)` for one (start, end) per item.
    public func callAsFunction(_ ranges: [(start: Float, end: Float)]) -> Tensor {
        emb(ranges.flatMap { binIndices(start: $0.start, end: $0.end) }, shape: [ranges.count, count])
    }

    public func namedParameters() -> [NamedParameter] { parameters(of: emb, prefix: "emb") }
}

/// Where a window sits in its song, for the timing signal: all in samples.
public struct TimingInfo: Sendable, Equatable {
    public var total: Int
    public var offset: Int
    public var length: Int

    public init(total: Int, offset: Int, length: Int) {
        self.total = total
        self.offset = offset
        self.length = length
    }
}

/// Artist and genre start token; for the top level also the timing signal.
public final class LabelConditioner: Module {
    public let artistEmb: Embedding
    public let genreEmb: Embedding
    public let totalLength: RangeEmbedding?
    public let absolutePosition: RangeEmbedding?
    public let relativePosition: RangeEmbedding?

    /// Tables sized by the label vocabularies of the data (`artists`, `genres` entries).
    init(config c: PriorConfig, artists: Int, genres: Int, sampleRate: Int, includeTime: Bool,
         generator: inout RandomGenerator) {
        let std = 0.01 * c.initScale
        artistEmb = Embedding(count: artists, size: c.width, std: std, generator: &generator)
        genreEmb = Embedding(count: genres, size: c.width, std: std, generator: &generator)
        if includeTime {
            let sr = Float(sampleRate)
            totalLength = RangeEmbedding(count: 1, bins: c.tBins, low: c.minDuration * sr, high: c.maxDuration * sr,
                                         width: c.width, std: std, generator: &generator)
            absolutePosition = RangeEmbedding(count: c.nCtx, bins: c.tBins, low: 0, high: c.maxDuration * sr,
                                              width: c.width, std: std, generator: &generator)
            relativePosition = RangeEmbedding(count: c.nCtx, bins: c.tBins, low: 0, high: 1, width: c.width, std: std,
                                              generator: &generator)
        } else {
            totalLength = nil
            absolutePosition = nil
            relativePosition = nil
        }
    }

    /// `(N, 1, width)`: artist embedding plus the sum of the genre embeddings (genre lists
    /// padded with −1, which contribute nothing).
    public func start(artists: [Int32], genres: [[Int32]]) -> Tensor {
        let N = artists.count
        let bow = Swift.max(1, genres.map(\.count).max() ?? 1)
        var indices: [Int32] = [], mask: [Float] = []
        for g in genres {
            for j in 0..<bow {
                let id = j < g.count ? g[j] : -1
                indices.append(Swift.max(0, id))
                mask.append(id >= 0 ? 1 : 0)
            }
        }
        let genre = (genreEmb(indices, shape: [N, bow]) * Tensor(mask, shape: [N, bow, 1])).sum(axis: 1, keepingDimension: true)
        return artistEmb(artists, shape: [N, 1]) + genre
    }

    /// `(N, n_ctx, width)` timing signal of each item's window, or nil below the top level.
    public func timing(_ items: [TimingInfo]) -> Tensor? {
        guard let totalLength, let absolutePosition, let relativePosition else { return nil }
        let total = totalLength(items.map { (Float($0.total), Float($0.total)) })                         // (N, 1, w)
        let absolute = absolutePosition(items.map { (Float($0.offset), Float($0.offset + $0.length)) })   // (N, n_ctx, w)
        let relative = relativePosition(items.map {
            (Float($0.offset) / Float($0.total), Swift.min(1, Float($0.offset + $0.length) / Float($0.total)))
        })
        return absolute + relative + total
    }

    public func namedParameters() -> [NamedParameter] {
        var p = parameters(of: artistEmb, prefix: "artist_emb") + parameters(of: genreEmb, prefix: "genre_emb")
        if let totalLength, let absolutePosition, let relativePosition {
            p += parameters(of: totalLength, prefix: "total_length_emb") + parameters(of: absolutePosition, prefix: "absolute_pos_emb")
                + parameters(of: relativePosition, prefix: "relative_pos_emb")
        }
        return p
    }
}
