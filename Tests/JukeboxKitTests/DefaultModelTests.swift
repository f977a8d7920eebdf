// The shipped model bundle (models/default): it loads, its pieces fit, and a few hundred
// top-level tokens sampled with a fixed seed are valid codes and the same on every run.

import XCTest
import Foundation
import TensorCore
import JukeboxKit
import ModelKit

final class DefaultModelTests: XCTestCase {
    func testShippedBundleLoadsAndSamplesDeterministically() throws {
        let path = repoPath("models/default")
        let bundle = try ModelBundle(path: path)          // checks digests, levels, codebook sizes
        XCTAssertEqual(bundle.manifest.vqvaeDigest, bundle.vqvae.identity)
        for (level, prior) in bundle.priors {
            XCTAssertEqual(prior.config.level, level)
            XCTAssertEqual(prior.config.bins, bundle.vqvae.config.lBins)
        }
        let prior = bundle.priors[bundle.topLevel]!
        let artist = try prior.vocabulary.artistID(bundle.manifest.defaultArtist)
        func draw(_ precision: SamplingPrecision) -> [Int32] {
            let sampler = PriorSampler(prior: prior, batch: 1, precision: precision)
            var cond = PriorConditioning(artists: [artist], genres: [[]])
            cond.timing = [TimingInfo(total: 60 * bundle.vqvae.config.sampleRate, offset: 0,
                                      length: prior.config.nCtx * bundle.vqvae.hops[bundle.topLevel])]
            var g = RandomGenerator(seed: 1)
            let order = UnsafeMutablePointer<Int32>.allocate(capacity: prior.config.bins)
            defer { order.deallocate() }
            var tokens: [Int32] = []
            var previous: Int32 = 0
            sampler.withThreading {
                sampler.reset(conditioning: cond)
                for _ in 0..<300 {
                    let logits = sampler.step(previous: [previous])
                    previous = TokenFilter(temperature: 0.99).draw(logits, count: prior.config.bins, order: order, generator: &g)
                    tokens.append(previous)
                }
            }
            return tokens
        }
        let first = draw(.float32), second = draw(.float32)
        XCTAssertEqual(first, second, "same seed, same tokens")
        XCTAssertTrue(first.allSatisfy { $0 >= 0 && Int($0) < prior.config.bins })
        XCTAssertGreaterThan(Set(first).count, 10, "a trained prior does not repeat one code")
        if SamplingPrecision.halfKernelsAvailable {
            XCTAssertEqual(draw(.float16), draw(.float16), "float16 sampling is deterministic too")
        }
    }
}
