import XCTest
import TensorCore
import JukeboxKit
import ModelKit

/// The whole prior's backward against finite differences: every attention pattern of the tiny
/// prior (row, column, previous-row over blocks of 8), the embeddings, the conditioning and the
/// tied or separate output layer all sit between the loss and these parameters.
final class PriorGradientTests: XCTestCase {
    func testPriorLossGradientMatchesFiniteDifferences() throws {
        let config = try PriorConfig.load(path: repoPath("configs/prior-tiny.json"))
        let prior = Prior(config: config, levels: 3, vocabulary: LabelVocabulary(), sampleRate: 8000, seed: 2)
        var g = RandomGenerator(seed: 4)
        let (N, T) = (2, config.nCtx)
        let tokens = (0..<(N * T)).map { _ in Int32(g.int(below: config.bins)) }
        var cond = PriorConditioning.unlabelled(N)
        cond.timing = [TimingInfo](repeating: TimingInfo(total: 80_000, offset: 0, length: T * 128), count: N)
        let parameters = prior.namedParameters()
        prior.loss(tokens, batch: N, conditioning: cond).backward()
        func loss() -> Double { Double(Tensor.withoutGrad { prior.loss(tokens, batch: N, conditioning: cond) }.item) }
        var checked = 0
        for p in parameters where p.name.contains("attn") || p.name.contains("x_emb") || p.name.contains("mlp.c_fc") {
            let t = p.tensor
            for i in stride(from: 0, to: t.count, by: max(1, t.count / 3)) {
                let old = t.data[i], h: Float = 1e-2
                t.data[i] = old + h; let plus = loss()
                t.data[i] = old - h; let minus = loss()
                t.data[i] = old
                let numeric = (plus - minus) / Double(2 * h), analytic = Double(t.grad!.data[i])
                XCTAssertLessThan(abs(numeric - analytic), 2e-3 + 0.03 * abs(numeric), "\(p.name)[\(i)]")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 30)
    }
}
