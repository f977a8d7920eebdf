// Parity with OpenAI's code: micro models with the official key structure, made and run by
// OpenAI's Jukebox (scripts/make-openai-fixtures.py; Fixtures/openai), imported from both torch
// formats and run by ours. Codes must be identical; reconstructions and teacher-forced logits
// within 1e-4 (float32 on both sides, sums in different orders).

import XCTest
import Foundation
import TensorCore
import JukeboxKit
import ModelKit

final class OpenAIImportTests: XCTestCase {
    static let fixtures = repoPath("Tests/JukeboxKitTests/Fixtures/openai")
    static let formats = ["legacy", "zip"]

    func reference(_ name: String) throws -> SafetensorsFile { try Safetensors.read(path: "\(Self.fixtures)/\(name).ref.safetensors") }

    func floats(_ file: SafetensorsFile, _ name: String) throws -> Tensor {
        guard case .float(let t)? = file.tensors[name] else { throw OpenAIImportError.testFixture(name) }
        return t
    }

    func ints(_ file: SafetensorsFile, _ name: String) throws -> [Int32] {
        guard case .int64(let v, _)? = file.tensors[name] else { throw OpenAIImportError.testFixture(name) }
        return v.map { Int32($0) }
    }

    func maxDifference(_ a: Tensor, _ b: Tensor) -> Float {
        XCTAssertEqual(a.count, b.count)
        return (0..<min(a.count, b.count)).reduce(0) { Swift.max($0, abs(a.data[$1] - b.data[$1])) }
    }

    func testVQVAECodesAndReconstructionsMatchOpenAI() throws {
        let ref = try reference("vqvae")
        let input = try floats(ref, "input")                                        // (1, T)
        for format in Self.formats {
            let vqvae = try OpenAIImport.vqvae(OpenAICheckpoint(path: "\(Self.fixtures)/\(format)/5b/vqvae.pth.tar"))
            for level in 0..<3 {
                let codes = vqvae.encode(input, level: level)
                XCTAssertEqual(codes, try ints(ref, "codes.\(level)"), "\(format) level \(level) codes")
                let recon = vqvae.decode(try ints(ref, "codes.\(level)"), batch: 1, level: level)
                let difference = maxDifference(recon, try floats(ref, "recon.\(level)"))
                print("openai parity: vqvae \(format) level \(level) reconstruction max |Δ| \(difference)")
                XCTAssertLessThan(difference, 1e-4, "\(format) level \(level) reconstruction")
            }
        }
    }

    func testPriorLogitsMatchOpenAI() throws {
        let scratch = temporaryDirectory("openai-prior")
        for format in Self.formats {
            let vqvae = try OpenAIImport.vqvae(OpenAICheckpoint(path: "\(Self.fixtures)/\(format)/5b/vqvae.pth.tar"))
            for level in [0, 1, 2] {
                let ref = try reference("prior_level_\(level)")
                let path = "\(scratch)/\(format)-\(level).safetensors"
                try OpenAIImport.writePrior(OpenAICheckpoint(path: "\(Self.fixtures)/\(format)/5b/prior_level_\(level).pth.tar"),
                                            level: level, model: .fiveB, vqvae: vqvae, to: path)
                let (prior, digest) = try Prior.load(path)
                XCTAssertEqual(digest, vqvae.identity)
                let y = try ints(ref, "y")                       // [total, offset, length, artist, genres...]
                var conditioning = PriorConditioning(artists: [y[3]], genres: [Array(y[4...])])
                if level == 2 {
                    conditioning.timing = [TimingInfo(total: Int(y[0]), offset: Int(y[1]), length: Int(y[2]))]
                } else {
                    conditioning.upperCodes = try ints(ref, "z_cond")
                }
                let logits = Tensor.withoutGrad { prior.logits(try! ints(ref, "z"), batch: 1, conditioning: conditioning) }
                let difference = maxDifference(logits, try floats(ref, "preds"))
                print("openai parity: prior level \(level) \(format) logits max |Δ| \(difference)")
                XCTAssertLessThan(difference, 1e-4, "\(format) level \(level) logits")
            }
        }
    }

    func testLegacyAndZipImportToIdenticalBundles() throws {
        let scratch = temporaryDirectory("openai-bundles")
        for format in Self.formats {
            try OpenAIImport.importBundle(from: "\(Self.fixtures)/\(format)", model: .fiveB, into: "\(scratch)/\(format)")
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: "\(scratch)/legacy").sorted()
        XCTAssertEqual(files, ["bundle.json", "prior-level2.safetensors", "upsampler-level0.safetensors",
                               "upsampler-level1.safetensors", "vqvae.safetensors"])
        for file in files where file.hasSuffix(".safetensors") {
            let (a, b) = (try Safetensors.readHeader(path: "\(scratch)/legacy/\(file)"), try Safetensors.readHeader(path: "\(scratch)/zip/\(file)"))
            for key in Set(a.metadata.keys).union(b.metadata.keys) where a.metadata[key] != b.metadata[key] {
                XCTFail("\(file): metadata '\(key)' differs: \(a.metadata[key] ?? "-") vs \(b.metadata[key] ?? "-")")
            }
        }
        for file in files {
            XCTAssertEqual(FileManager.default.contents(atPath: "\(scratch)/legacy/\(file)"),
                           FileManager.default.contents(atPath: "\(scratch)/zip/\(file)"), file)
        }
        // The bundle loads as any other.
        let bundle = try ModelBundle(path: "\(scratch)/legacy")
        XCTAssertEqual(bundle.priors.keys.sorted(), [0, 1, 2])
    }

    /// A file that is not the model asked for: a one-line error naming the file and what is wrong.
    func testWrongFileIsNamed() throws {
        let path = "\(Self.fixtures)/zip/5b/vqvae.pth.tar"
        let vqvae = try OpenAIImport.vqvae(OpenAICheckpoint(path: path))
        XCTAssertThrowsError(try OpenAIImport.writePrior(OpenAICheckpoint(path: path), level: 0, model: .fiveB, vqvae: vqvae,
                                                         to: temporaryDirectory("openai-wrong") + "/up.safetensors")) { error in
            XCTAssertEqual("\(error)", path + ": hps 'y_bins' is the int 0, not a list of integers")
        }
    }
}

extension OpenAIImportError {
    static func testFixture(_ name: String) -> Error { ConfigError("fixture tensor '\(name)' is missing or of another type") }
}
