// Scaled dot-product attention, fused forward and backward, over channels-last activations.
//
// Shapes: q (B, Tq, H·D); k, v (B, Tk, H·D); out (B, Tq, H·D); lse (B, H, Tq) saved.
//
// Heads are never transposed out: head h of a (B, T, H·D) activation is the (T × D) matrix at
// column offset h·D with leading dimension H·D, which sgemm takes as it is. Queries go through in
// chunks of `queryChunk` rows, so the score matrix held at once is (chunk × Tk), not (Tq × Tk),
// and the backward pass recomputes the probabilities from the saved log-sum-exp of each row
// (the FlashAttention recipe) instead of keeping Tq × Tk probabilities per head.
//
// With `causal`, query i may see key j when j ≤ i + (Tk − Tq): the queries are the last Tq
// positions of the key sequence, which covers both training (Tq = Tk) and a cached decoder step.
//   S = q kᵀ / √D (masked),  P = softmax(S),  out = P v
//   dv = Pᵀ dout,  dP = dout vᵀ,  dS = P ∘ (dP − rowsum(dout ∘ out)),  dq = dS k / √D,  dk = dSᵀ q / √D

import Foundation

extension Tensor {
    /// Query rows processed together; bounds the scratch score matrix to 128 × Tk.
    static let queryChunk = 128

    /// Multi-head scaled dot-product attention. `query (B, Tq, H·D)`, `key` and `value
    /// (B, Tk, H·D)`, `heads` = H. With `causal`, query i sees keys `0...i + Tk − Tq`.
    /// Result `(B, Tq, H·D)`.
    public static func attention(query q: Tensor, key k: Tensor, value v: Tensor, heads H: Int,
                                 causal: Bool) -> Tensor {
        precondition(q.rank == 3 && k.rank == 3 && v.rank == 3 && k.shape == v.shape
                     && q.shape[0] == k.shape[0] && q.shape[2] == k.shape[2] && H > 0 && q.shape[2] % H == 0,
                     "attention: query \(q.shape), key \(k.shape), value \(v.shape) with \(H) heads do not fit")
        let (B, Tq, HD) = (q.shape[0], q.shape[1], q.shape[2])
        let Tk = k.shape[1], D = HD / H
        let scale = 1 / Float(D).squareRoot()
        let out = Tensor(uninitializedShape: [B, Tq, HD])
        let lse = Tensor(uninitializedShape: [B, H, Tq])
        let plan = AttentionPlan(Tq: Tq, Tk: Tk, causal: causal)
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: queryChunk * Swift.max(Tk, 1))
        defer { scores.deallocate() }
        for b in 0..<B {
            for h in 0..<H {
                let qh = q.data + b * Tq * HD + h * D, kh = k.data + b * Tk * HD + h * D
                let vh = v.data + b * Tk * HD + h * D, oh = out.data + b * Tq * HD + h * D
                let lseh = lse.data + (b * H + h) * Tq
                for i0 in stride(from: 0, to: Tq, by: queryChunk) {
                    let rows = Swift.min(queryChunk, Tq - i0)
                    let keys = plan.keyCount(lastRow: i0 + rows - 1)
                    guard keys > 0 else {
                        for r in 0..<rows { (oh + (i0 + r) * HD).update(repeating: 0, count: D); lseh[i0 + r] = 0 }
                        continue
                    }
                    Kernels.sgemm(transB: true, m: rows, n: keys, k: D, alpha: scale,
                                  a: qh + i0 * HD, lda: HD, b: kh, ldb: HD, c: scores, ldc: keys)
                    for r in 0..<rows {
                        lseh[i0 + r] = Kernels.softmaxRow(scores + r * keys, visible: plan.visible(row: i0 + r, keys: keys),
                                                          count: keys)
                    }
                    Kernels.sgemm(m: rows, n: D, k: keys, a: scores, lda: keys, b: vh, ldb: HD,
                                  c: oh + i0 * HD, ldc: HD)
                }
            }
        }
        return record(.attention, output: out, inputs: [q, k, v]) { out, g in
            attentionBackward(q: q, k: k, v: v, out: out, lse: lse, gradOut: g, heads: H, plan: plan, scale: scale)
        }
    }

    private static func attentionBackward(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, gradOut: Tensor,
                                          heads H: Int, plan: AttentionPlan, scale: Float) {
        let (B, Tq, HD) = (q.shape[0], q.shape[1], q.shape[2])
        let Tk = k.shape[1], D = HD / H
        let dq = q.requiresGrad ? q.gradAccumulator() : nil
        let dk = k.requiresGrad ? k.gradAccumulator() : nil
        let dv = v.requiresGrad ? v.gradAccumulator() : nil
        let p = UnsafeMutablePointer<Float>.allocate(capacity: queryChunk * Swift.max(Tk, 1))
        let dp = UnsafeMutablePointer<Float>.allocate(capacity: queryChunk * Swift.max(Tk, 1))
        defer { p.deallocate(); dp.deallocate() }
        for b in 0..<B {
            for h in 0..<H {
                let off = b * Tq * HD + h * D, koff = b * Tk * HD + h * D
                let qh = q.data + off, kh = k.data + koff, vh = v.data + koff
                let oh = out.data + off, doh = gradOut.data + off
                let lseh = lse.data + (b * H + h) * Tq
                for i0 in stride(from: 0, to: Tq, by: queryChunk) {
                    let rows = Swift.min(queryChunk, Tq - i0)
                    let keys = plan.keyCount(lastRow: i0 + rows - 1)
                    guard keys > 0 else { continue }
                    // Recompute P from the saved log-sum-exp.
                    Kernels.sgemm(transB: true, m: rows, n: keys, k: D, alpha: scale,
                                  a: qh + i0 * HD, lda: HD, b: kh, ldb: HD, c: p, ldc: keys)
                    for r in 0..<rows {
                        let row = p + r * keys, visible = plan.visible(row: i0 + r, keys: keys), m = lseh[i0 + r]
                        for j in 0..<visible { row[j] = Foundation.exp(row[j] - m) }
                        for j in visible..<keys { row[j] = 0 }
                    }
                    if let dv {   // dv += Pᵀ dout
                        Kernels.sgemm(transA: true, m: keys, n: D, k: rows, a: p, lda: keys, b: doh + i0 * HD, ldb: HD,
                                      beta: 1, c: dv + koff, ldc: HD)
                    }
                    // dP = dout vᵀ
                    Kernels.sgemm(transB: true, m: rows, n: keys, k: D, a: doh + i0 * HD, lda: HD, b: vh, ldb: HD,
                                  c: dp, ldc: keys)
                    for r in 0..<rows {
                        let o = oh + (i0 + r) * HD, dO = doh + (i0 + r) * HD
                        var delta: Float = 0
                        for d in 0..<D { delta += o[d] * dO[d] }
                        let pr = p + r * keys, dpr = dp + r * keys
                        for j in 0..<keys { dpr[j] = pr[j] * (dpr[j] - delta) }
                    }
                    // dq += dS k · scale,  dk += dSᵀ q · scale
                    if let dq {
                        Kernels.sgemm(m: rows, n: D, k: keys, alpha: scale, a: dp, lda: keys, b: kh, ldb: HD,
                                      beta: 1, c: dq + off + i0 * HD, ldc: HD)
                    }
                    if let dk {
                        Kernels.sgemm(transA: true, m: keys, n: D, k: rows, alpha: scale, a: dp, lda: keys,
                                      b: qh + i0 * HD, ldb: HD, beta: 1, c: dk + koff, ldc: HD)
                    }
                }
            }
        }
    }

    /// Naive attention in Double with an explicit mask, the reference for tests:
    /// `allowed(i, j)` says whether query i may see key j. Rows with no visible key give zeros.
    public static func referenceAttention(q: [Float], k: [Float], v: [Float], B: Int, Tq: Int, Tk: Int, heads H: Int,
                                          D: Int, allowed: (Int, Int) -> Bool) -> [Float] {
        let HD = H * D
        var out = [Float](repeating: 0, count: B * Tq * HD)
        for b in 0..<B {
            for h in 0..<H {
                for i in 0..<Tq {
                    var s = [Double](repeating: -.infinity, count: Tk)
                    for j in 0..<Tk where allowed(i, j) {
                        var acc = 0.0
                        for d in 0..<D { acc += Double(q[(b * Tq + i) * HD + h * D + d]) * Double(k[(b * Tk + j) * HD + h * D + d]) }
                        s[j] = acc / Double(D).squareRoot()
                    }
                    let m = s.max() ?? -.infinity
                    guard m > -.infinity else { continue }
                    let e = s.map { Foundation.exp($0 - m) }
                    let z = e.reduce(0, +)
                    for d in 0..<D {
                        var acc = 0.0
                        for j in 0..<Tk { acc += e[j] / z * Double(v[(b * Tk + j) * HD + h * D + d]) }
                        out[(b * Tq + i) * HD + h * D + d] = Float(acc)
                    }
                }
            }
        }
        return out
    }
}

/// Which keys each query row sees.
struct AttentionPlan {
    let Tq: Int, Tk: Int, causal: Bool

    /// Keys needed by rows up to `lastRow`: the prefix every row of a chunk reads from.
    func keyCount(lastRow: Int) -> Int {
        causal ? Swift.max(0, Swift.min(Tk, lastRow + (Tk - Tq) + 1)) : Tk
    }

    /// Visible keys of query `row` within a chunk that computed `keys` columns.
    func visible(row: Int, keys: Int) -> Int {
        causal ? Swift.max(0, Swift.min(keys, row + (Tk - Tq) + 1)) : keys
    }
}

extension Kernels {
    /// In-place softmax of the first `visible` entries of a row, zeros after; returns the
    /// log-sum-exp of the visible entries (−∞ when none is visible, leaving the row zero).
    @inline(__always)
    static func softmaxRow(_ row: UnsafeMutablePointer<Float>, visible: Int, count: Int) -> Float {
        var m = -Float.infinity
        for j in 0..<visible { m = Swift.max(m, row[j]) }
        var s: Float = 0
        for j in 0..<visible {
            let e = Foundation.exp(row[j] - m)
            row[j] = e
            s += e
        }
        for j in visible..<count { row[j] = 0 }
        guard visible > 0 else { return 0 }
        let inv = 1 / s
        for j in 0..<visible { row[j] *= inv }
        return m + Foundation.log(s)
    }
}
