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
// The cores share the work themselves: the forward hands out (batch, head, query chunk) items,
// the backward whole (batch, head) items, whose gradients fill disjoint columns of dq, dk, dv.
// Each item runs OpenBLAS single-threaded on its own scratch. This matters most for the prior's
// block-sparse layers, thousands of (64 × 64) problems far too small to split one by one.
// Exponentials go sixteen at a time through `Kernels.exp` (FastMath.swift).
//
// With `causal`, query i may see key j when j ≤ i + (Tk − Tq): the queries are the last Tq
// positions of the key sequence, which covers both training (Tq = Tk) and a cached decoder step.
//   S = q kᵀ / √D (masked),  P = softmax(S),  out = P v
//   dv = Pᵀ dout,  dP = dout vᵀ,  dS = P ∘ (dP − rowsum(dout ∘ out)),  dq = dS k / √D,  dk = dSᵀ q / √D

import Foundation
import CBLAS
import Synchronization

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
        let plan = AttentionPlan(B: q.shape[0], Tq: q.shape[1], Tk: k.shape[1], H: H, D: q.shape[2] / H, causal: causal)
        let out = Tensor(uninitializedShape: [plan.B, plan.Tq, plan.HD])
        let lse = Tensor(uninitializedShape: [plan.B, H, plan.Tq])
        // Work items are (query chunk, batch, head), last chunks first: under a causal mask they
        // see the most keys, and handing out the big items first leaves small ones to even out
        // the threads at the end.
        let chunks = (plan.Tq + queryChunk - 1) / queryChunk, heads = plan.B * H
        let rows = Swift.min(queryChunk, plan.Tq)
        plan.forEachItem(count: chunks * heads, scratchCount: rows * Swift.max(plan.Tk, 1) + rows) { item, scratch in
            let chunk = chunks - 1 - item / heads, bh = item % heads
            attentionForward(q: q.data, k: k.data, v: v.data, out: out.data, lse: lse.data, plan: plan,
                             b: bh / H, h: bh % H, firstRow: chunk * queryChunk, scratch: scratch)
        }
        return record(.attention, output: out, inputs: [q, k, v]) { out, g in
            attentionBackward(q: q, k: k, v: v, out: out, lse: lse, gradOut: g, plan: plan)
        }
    }

    /// One (batch b, head h, query chunk) of the forward pass: up to `queryChunk` rows of `out`
    /// and their log-sum-exp. `scratch` holds rows × Tk scores and rows reciprocal sums.
    private static func attentionForward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                         out: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>,
                                         plan: AttentionPlan, b: Int, h: Int, firstRow i0: Int,
                                         scratch: UnsafeMutablePointer<Float>) {
        let (Tq, Tk, HD, D) = (plan.Tq, plan.Tk, plan.HD, plan.D)
        let qh = q + b * Tq * HD + h * D, kh = k + b * Tk * HD + h * D, vh = v + b * Tk * HD + h * D
        let oh = out + b * Tq * HD + h * D                    // (Tq, D) with row stride HD
        let lseh = lse + (b * plan.H + h) * Tq
        let rows = Swift.min(queryChunk, Tq - i0)
        let keys = plan.keyCount(lastRow: i0 + rows - 1)
        guard keys > 0 else {
            for r in 0..<rows { (oh + (i0 + r) * HD).update(repeating: 0, count: D); lseh[i0 + r] = 0 }
            return
        }
        let scores = scratch                                  // (rows, keys)
        let inverseSums = scratch + rows * keys               // (rows)
        let blocks = plan.visibleBlocks(firstRow: i0, rows: rows, keys: keys)
        blockScores(blocks, plan: plan, q: qh, k: kh, firstRow: i0, into: scores, keys: keys)
        for r in 0..<rows {
            let row = scores + r * keys, visible = plan.visible(row: i0 + r, keys: keys)
            (row + visible).update(repeating: 0, count: keys - visible)
            guard visible > 0 else { inverseSums[r] = 0; lseh[i0 + r] = 0; continue }
            let m = Kernels.maximum(row, count: visible)
            let sum = Kernels.exponentiate(row, count: visible, subtracting: m)
            inverseSums[r] = 1 / sum
            lseh[i0 + r] = m + Foundation.log(sum)
        }
        // out = e^(S − m) v, then each row scaled by 1 / its sum: rows × D products, not rows × keys.
        // The first block of a row sets its output, later ones add; rows no block covers see no key.
        for (index, (r0, n, j0, width)) in blocks.enumerated() {
            gemm(m: n, n: D, k: width, a: scores + r0 * keys + j0, lda: keys, b: vh + j0 * HD, ldb: HD,
                 beta: index > 0 && j0 > 0 ? 1 : 0, c: oh + (i0 + r0) * HD, ldc: HD)
        }
        for r in 0..<rows {
            let o = oh + (i0 + r) * HD, s = inverseSums[r]
            if s == 0 { o.update(repeating: 0, count: D) } else { for d in 0..<D { o[d] *= s } }
        }
    }

    /// The backward pass, one (batch, head) per work item: each owns the columns h·D..<(h+1)·D
    /// of batch b in dq, dk and dv, so items on different threads never add into the same place.
    private static func attentionBackward(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, gradOut: Tensor,
                                          plan: AttentionPlan) {
        let dq = q.requiresGrad ? q.gradAccumulator() : nil
        let dk = k.requiresGrad ? k.gradAccumulator() : nil
        let dv = v.requiresGrad ? v.gradAccumulator() : nil
        let rows = Swift.min(queryChunk, plan.Tq)
        plan.forEachItem(count: plan.B * plan.H, scratchCount: 2 * rows * Swift.max(plan.Tk, 1)) { bh, scratch in
            let b = bh / plan.H, h = bh % plan.H
            let (Tq, Tk, HD, D) = (plan.Tq, plan.Tk, plan.HD, plan.D)
            let off = b * Tq * HD + h * D, koff = b * Tk * HD + h * D
            let qh = q.data + off, kh = k.data + koff, vh = v.data + koff
            let oh = out.data + off, doh = gradOut.data + off
            let lseh = lse.data + (b * plan.H + h) * Tq
            let p = scratch, dp = scratch + rows * Swift.max(Tk, 1)   // (rows, keys) each
            for i0 in stride(from: 0, to: Tq, by: queryChunk) {
                let rows = Swift.min(queryChunk, Tq - i0)
                let keys = plan.keyCount(lastRow: i0 + rows - 1)
                guard keys > 0 else { continue }
                // Every product below runs over the visible blocks only; what lies outside them
                // in p and dp is never read.
                let blocks = plan.visibleBlocks(firstRow: i0, rows: rows, keys: keys)
                // Recompute P from the saved log-sum-exp.
                blockScores(blocks, plan: plan, q: qh, k: kh, firstRow: i0, into: p, keys: keys)
                for r in 0..<rows {
                    let row = p + r * keys, visible = plan.visible(row: i0 + r, keys: keys)
                    _ = Kernels.exponentiate(row, count: visible, subtracting: lseh[i0 + r])
                    (row + visible).update(repeating: 0, count: keys - visible)
                }
                if let dv {   // dv += Pᵀ dout
                    for (r0, n, j0, width) in blocks {
                        gemm(transA: true, m: width, n: D, k: n, a: p + r0 * keys + j0, lda: keys,
                             b: doh + (i0 + r0) * HD, ldb: HD, beta: 1, c: dv + koff + j0 * HD, ldc: HD)
                    }
                }
                guard dq != nil || dk != nil else { continue }
                // dP = dout vᵀ, then dS = P ∘ (dP − rowsum(dout ∘ out)) in place.
                for (r0, n, j0, width) in blocks {
                    gemm(transB: true, m: n, n: width, k: D, a: doh + (i0 + r0) * HD, lda: HD, b: vh + j0 * HD, ldb: HD,
                         c: dp + r0 * keys + j0, ldc: keys)
                }
                for r in 0..<rows {
                    let o = oh + (i0 + r) * HD, dO = doh + (i0 + r) * HD
                    var delta: Float = 0
                    for d in 0..<D { delta += o[d] * dO[d] }
                    let pr = p + r * keys, dpr = dp + r * keys, visible = plan.visible(row: i0 + r, keys: keys)
                    for j in 0..<visible { dpr[j] = pr[j] * (dpr[j] - delta) }
                    (dpr + visible).update(repeating: 0, count: keys - visible)
                }
                // dq += dS k · scale,  dk += dSᵀ q · scale
                for (r0, n, j0, width) in blocks {
                    if let dq {
                        gemm(m: n, n: D, k: width, alpha: plan.scale, a: dp + r0 * keys + j0, lda: keys, b: kh + j0 * HD,
                             ldb: HD, beta: 1, c: dq + off + (i0 + r0) * HD, ldc: HD)
                    }
                    if let dk {
                        gemm(transA: true, m: width, n: D, k: n, alpha: plan.scale, a: dp + r0 * keys + j0, lda: keys,
                             b: qh + (i0 + r0) * HD, ldb: HD, beta: 1, c: dk + koff + j0 * HD, ldc: HD)
                    }
                }
            }
        }
    }

    /// Scores `scale · q kᵀ` of query rows `i0 + r` against the keys of the visible `blocks`,
    /// into `scores` (rows, keys); entries outside the blocks are left as they were.
    @inline(__always)
    private static func blockScores(_ blocks: [(row: Int, rows: Int, key: Int, keys: Int)], plan: AttentionPlan,
                                    q: UnsafePointer<Float>, k: UnsafePointer<Float>, firstRow i0: Int,
                                    into scores: UnsafeMutablePointer<Float>, keys: Int) {
        for (r0, n, j0, width) in blocks {
            gemm(transB: true, m: n, n: width, k: plan.D, alpha: plan.scale, a: q + (i0 + r0) * plan.HD, lda: plan.HD,
                 b: k + j0 * plan.HD, ldb: plan.HD, c: scores + r0 * keys + j0, ldc: keys)
        }
    }

    /// Row-major `C = alpha · op(A) op(B) + beta · C` straight through OpenBLAS on the calling
    /// thread. Attention splits its work over cores by (batch, head, chunk) itself, so it does
    /// not go through `Kernels.sgemm`, which would split each product again.
    @inline(__always)
    private static func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
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

    /// Naive gradients of ``referenceAttention(q:k:v:B:Tq:Tk:heads:D:allowed:)`` in Double, the
    /// reference for tests of the fused backward: given `gradOut (B, Tq, H·D)`, returns
    /// `dq (B, Tq, H·D)`, `dk` and `dv (B, Tk, H·D)`.
    public static func referenceAttentionGradients(q: [Float], k: [Float], v: [Float], gradOut: [Float], B: Int, Tq: Int,
                                                   Tk: Int, heads H: Int, D: Int, allowed: (Int, Int) -> Bool)
        -> (dq: [Float], dk: [Float], dv: [Float]) {
        let HD = H * D, scale = 1 / Double(D).squareRoot()
        var dq = [Double](repeating: 0, count: B * Tq * HD)
        var dk = [Double](repeating: 0, count: B * Tk * HD), dv = dk
        for b in 0..<B {
            for h in 0..<H {
                func qa(_ i: Int) -> Int { (b * Tq + i) * HD + h * D }   // row i of this head in q, out
                func ka(_ j: Int) -> Int { (b * Tk + j) * HD + h * D }   // row j of this head in k, v
                for i in 0..<Tq {
                    var p = [Double](repeating: 0, count: Tk)
                    var m = -Double.infinity
                    for j in 0..<Tk where allowed(i, j) {
                        var acc = 0.0
                        for d in 0..<D { acc += Double(q[qa(i) + d]) * Double(k[ka(j) + d]) }
                        p[j] = acc * scale
                        m = Swift.max(m, p[j])
                    }
                    guard m > -.infinity else { continue }
                    var z = 0.0
                    for j in 0..<Tk where allowed(i, j) { p[j] = Foundation.exp(p[j] - m); z += p[j] }
                    for j in 0..<Tk { p[j] /= z }
                    // dP_ij = dout_i · v_j;  dS_ij = P_ij (dP_ij − Σ_l P_il dP_il)
                    var dp = [Double](repeating: 0, count: Tk)
                    var delta = 0.0
                    for j in 0..<Tk where p[j] != 0 {
                        for d in 0..<D {
                            dp[j] += Double(gradOut[qa(i) + d]) * Double(v[ka(j) + d])
                            dv[ka(j) + d] += p[j] * Double(gradOut[qa(i) + d])
                        }
                        delta += p[j] * dp[j]
                    }
                    for j in 0..<Tk where p[j] != 0 {
                        let ds = p[j] * (dp[j] - delta) * scale
                        for d in 0..<D {
                            dq[qa(i) + d] += ds * Double(k[ka(j) + d])
                            dk[ka(j) + d] += ds * Double(q[qa(i) + d])
                        }
                    }
                }
            }
        }
        return (dq.map(Float.init), dk.map(Float.init), dv.map(Float.init))
    }
}

/// The sizes of one attention call, which keys each query row sees, and how its work items
/// are spread over the cores.
struct AttentionPlan {
    let B: Int, Tq: Int, Tk: Int, H: Int, D: Int, causal: Bool
    var HD: Int { H * D }
    var scale: Float { 1 / Float(D).squareRoot() }

    /// Keys needed by rows up to `lastRow`: the prefix every row of a chunk reads from.
    func keyCount(lastRow: Int) -> Int {
        causal ? Swift.max(0, Swift.min(Tk, lastRow + (Tk - Tq) + 1)) : Tk
    }

    /// Visible keys of query `row` within a chunk that computed `keys` columns.
    func visible(row: Int, keys: Int) -> Int {
        causal ? Swift.max(0, Swift.min(keys, row + (Tk - Tq) + 1)) : keys
    }

    /// Rows in a strip of the diagonal block that get their own products. Thinner strips skip
    /// more of the masked triangle but make more, smaller sgemm calls; 16 did best at T = 64.
    static let diagonalStrip = 16

    /// The parts of a chunk's (rows × keys) score matrix, rows from `firstRow`, that some row
    /// sees, as (row offset, rows, key offset, keys): without `causal` the whole matrix; with it,
    /// every row × the keys all rows see, then the rest (the diagonal block) in strips of
    /// `diagonalStrip` rows × the further keys the strip's last row sees. That skips three
    /// quarters of the masked triangle: 37% of the products of a 64-position block.
    func visibleBlocks(firstRow i0: Int, rows: Int, keys: Int) -> [(row: Int, rows: Int, key: Int, keys: Int)] {
        guard causal else { return [(row: 0, rows: rows, key: 0, keys: keys)] }
        let shared = Swift.max(0, visible(row: i0, keys: keys) - 1)
        var blocks = shared > 0 ? [(row: 0, rows: rows, key: 0, keys: shared)] : []
        for r0 in stride(from: 0, to: rows, by: Self.diagonalStrip) {
            let n = Swift.min(Self.diagonalStrip, rows - r0)
            let end = visible(row: i0 + r0 + n - 1, keys: keys)
            if end > shared { blocks.append((row: r0, rows: n, key: shared, keys: end - shared)) }
        }
        return blocks
    }

    /// Calls `body(item, scratch)` for every item in `0..<count`, on one thread per core when
    /// the call is big enough to pay for the hand-off (a few microseconds). Each thread owns a
    /// `scratchCount`-float buffer and takes the next item as soon as it is free, so items of
    /// uneven size (causal chunks) still share out evenly. Inside
    /// ``Threading/withNativeBLASThreading(_:)`` everything runs on the calling thread and
    /// OpenBLAS threads each product instead.
    func forEachItem(count: Int, scratchCount: Int, _ body: (Int, UnsafeMutablePointer<Float>) -> Void) {
        Threading.configure()
        let work = Double(B * H) * Double(Tq) * Double(Tk) * Double(D)   // multiply-adds of one product, at most
        let threads = Threading.nativeBLAS || work < Double(1 << 20) ? 1 : Swift.min(Parallel.coreCount, count)
        let next = Atomic<Int>(0)
        func worker() {
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: scratchCount)
            defer { scratch.deallocate() }
            while true {
                let item = next.add(1, ordering: .relaxed).oldValue
                guard item < count else { return }
                body(item, scratch)
            }
        }
        if threads <= 1 {
            worker()
        } else {
            DispatchQueue.concurrentPerform(iterations: threads) { _ in worker() }
        }
    }
}
