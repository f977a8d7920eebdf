// Embedding lookup (gather rows of a table) with a scatter-add backward.
//
// Shapes: table (V, C), indices (...) as Int32, result (..., C).

import Foundation

extension Tensor {
    /// Rows of `table (V, C)` picked by `indices` (each in `0..<V`), laid out as
    /// `indexShape + [C]`. The gradient adds each row's gradient into the table row it came from.
    public static func embedding(_ table: Tensor, indices: [Int32], indexShape: [Int]) -> Tensor {
        precondition(table.rank == 2, "embedding: table must be (V, C), got \(table.shape)")
        precondition(Tensor.elementCount(indexShape) == indices.count,
                     "embedding: \(indices.count) indices do not fill shape \(indexShape)")
        let (V, C) = (table.shape[0], table.shape[1])
        let out = Tensor(uninitializedShape: indexShape + [C])
        let src = table.data, dst = out.data
        indices.withUnsafeBufferPointer { idx in
            for (n, i) in idx.enumerated() {
                precondition(i >= 0 && Int(i) < V, "embedding: index \(i) is outside 0..<\(V)")
                (dst + n * C).update(from: src + Int(i) * C, count: C)
            }
        }
        return record(.embedding, output: out, inputs: [table]) { _, g in
            let dT = table.gradAccumulator(), dy = g.data
            indices.withUnsafeBufferPointer { idx in
                for (n, i) in idx.enumerated() {
                    let row = dT + Int(i) * C, gr = dy + n * C
                    for c in 0..<C { row[c] += gr[c] }
                }
            }
        }
    }
}
