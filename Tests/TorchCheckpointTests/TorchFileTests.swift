// Reading checkpoints that torch itself wrote (scripts/make-torch-fixtures.py): both formats
// decode to the same tensors, equal to what torch reported, with views, ties, F16 and
// optimizer state; and the zip container's variants (any folder name, zip64, big files).

import XCTest
import Foundation
@testable import TorchCheckpoint

/// What the fixture script recorded of each tensor.
struct ExpectedTensor: Decodable {
    let name: String, dtype: String
    let shape: [Int], strides: [Int]
    let storage_offset: Int
    let values: [Double]
}

struct ExpectedFixture: Decodable {
    let step: Int
    let tensors: [ExpectedTensor]
}

final class TorchFileTests: XCTestCase {
    let expected: ExpectedFixture = {
        let data = FileManager.default.contents(atPath: fixturePath("tiny.json"))!
        return try! JSONDecoder().decode(ExpectedFixture.self, from: data)
    }()

    func testBothFormatsReadToTheTensorsTorchReported() throws {
        for (name, format) in [("tiny.legacy.pth.tar", TorchFile.Format.legacy), ("tiny.zip.pth.tar", .zip)] {
            let checkpoint = try TorchFile(path: fixturePath(name))
            XCTAssertEqual(checkpoint.format, format)
            XCTAssertEqual(checkpoint.step, expected.step)
            XCTAssertEqual(checkpoint.tensors.map(\.name), expected.tensors.map(\.name), name)
            for ((tensorName, tensor), want) in zip(checkpoint.tensors, expected.tensors) {
                XCTAssertEqual(tensor.dtype.rawValue, want.dtype, tensorName)
                XCTAssertEqual(tensor.shape, want.shape, tensorName)
                XCTAssertEqual(tensor.strides, want.strides, tensorName)
                XCTAssertEqual(tensor.storageOffset, want.storage_offset, tensorName)
                // Exact: every F32 and F16 value is exact in a Double, and JSON carries it exactly.
                XCTAssertEqual(tensor.floatValues()?.map(Double.init), want.values, "\(name): \(tensorName)")
            }
        }
    }

    func testLegacyAndZipAgreeOnEveryValueAndOnHps() throws {
        let legacy = try TorchFile(path: fixturePath("tiny.legacy.pth.tar"))
        let zipped = try TorchFile(path: fixturePath("tiny.zip.pth.tar"))
        XCTAssertEqual(legacy.tensors.count, zipped.tensors.count)
        for (a, b) in zip(legacy.tensors, zipped.tensors) {
            XCTAssertEqual(a.name, b.name)
            XCTAssertEqual(a.tensor.floatValues()?.map(\.bitPattern), b.tensor.floatValues()?.map(\.bitPattern), a.name)
        }
        for checkpoint in [legacy, zipped] {
            let hps = try XCTUnwrap(checkpoint.root["hps"])
            guard case .string("tiny")? = hps["name"], case .int(44100)? = hps["sr"], case .float(0.0003)? = hps["lr"],
                  case .int(1 << 40)? = hps["large_int"], case .int(-7)? = hps["negative"], case .bool(true)? = hps["fp16_params"],
                  case .none? = hps["alignment_head"], case .bigInt(let huge)? = hps["huge_int"],
                  case .tuple(let downs)? = hps["downs_t"], case .list(let multipliers)? = hps["multipliers"],
                  case .float(1e-8)? = hps["nested"]?["eps"] else {
                return XCTFail("hps of the \(checkpoint.format) file reads wrong")
            }
            XCTAssertEqual(huge, [0, 0, 0, 0, 0, 0, 0, 0, 64])  // 2^70, little-endian
            XCTAssertEqual(downs.items.count, 3)
            XCTAssertEqual(multipliers.items.count, 3)
            guard case .none? = checkpoint.root["opt"] else { return XCTFail("opt is not None") }
        }
    }

    func testTiesAndViewsShareOneStorageInTheMapping() throws {
        let checkpoint = try TorchFile(path: fixturePath("tiny.legacy.pth.tar"))
        let byName = Dictionary(uniqueKeysWithValues: checkpoint.tensors.map { ($0.name, $0.tensor) })
        let emb = try XCTUnwrap(byName["model.prior.x_emb.weight"]), out = try XCTUnwrap(byName["model.prior.x_out.weight"])
        XCTAssertTrue(emb.storage === out.storage)
        let proj = try XCTUnwrap(byName["model.prior.transformer._attn_mods.0.attn.c_proj.w"])
        let bias = try XCTUnwrap(byName["model.prior.transformer._attn_mods.0.attn.c_proj.b"])
        XCTAssertTrue(proj.storage === bias.storage)
        XCTAssertFalse(proj.isContiguous)
        XCTAssertNil(proj.contiguousBytes)
        XCTAssertTrue(bias.isContiguous)
        // Twelve storages for fifteen tensors, laid out back to back in the file.
        XCTAssertEqual(checkpoint.storages.count, 12)
    }

    func testF16TensorsAreUsedStraightFromTheMapping() throws {
        for name in ["tiny.legacy.pth.tar", "tiny.zip.pth.tar"] {
            let checkpoint = try TorchFile(path: fixturePath(name))
            let mapping = checkpoint.file.bytes
            let (_, weight) = try XCTUnwrap(checkpoint.tensors.first { $0.name.hasSuffix("c_attn.w") })
            XCTAssertEqual(weight.dtype, .f16)
            let bytes = try XCTUnwrap(weight.contiguousBytes)
            XCTAssertEqual(bytes.count, 6 * 9 * 2)
            // The bytes lie inside the mapped file: no copy was made.
            XCTAssertGreaterThanOrEqual(bytes.baseAddress!, mapping.baseAddress!)
            XCTAssertLessThanOrEqual(bytes.baseAddress! + bytes.count, mapping.baseAddress! + mapping.count)
            let widened = bytes.withMemoryRebound(to: UInt8.self) { raw in
                (0 ..< 54).map { Float(Float16(bitPattern: UInt16(raw[2 * $0]) | UInt16(raw[2 * $0 + 1]) << 8)) }
            }
            XCTAssertEqual(widened, weight.floatValues())
        }
    }

    func testOptimizerStateReadsAsInertValuesAndTensors() throws {
        let checkpoint = try TorchFile(path: fixturePath("opt.legacy.pth.tar"))
        XCTAssertEqual(checkpoint.step, expected.step)
        let names = checkpoint.tensors.map(\.name)
        XCTAssertEqual(Array(names.prefix(expected.tensors.count)), expected.tensors.map(\.name))
        XCTAssertTrue(names.contains("opt.state.0.exp_avg"), "\(names)")
        guard case .list(let groups)? = checkpoint.root["opt"]?["param_groups"], case .dict(let group) = groups.items.first,
              case .list(let params)? = group[.string("params")] else {
            return XCTFail("opt.param_groups reads wrong")
        }
        XCTAssertEqual(params.items.count, 3)
    }

    func testInfoListsNamesDtypesShapesStepAndTotals() throws {
        let lines = try TorchFile(path: fixturePath("tiny.zip.pth.tar")).descriptionLines()
        XCTAssertEqual(lines.first, "PyTorch checkpoint, zip format (torch ≥ 1.6), step 123456")
        XCTAssertTrue(lines.contains("model.prior.transformer._attn_mods.0.attn.c_attn.w: F16 [6, 9]"), "\(lines)")
        XCTAssertEqual(lines.last, "15 tensors, 443 values (F32 353, F16 90); 12 storages, 1348 bytes of data")
    }

    // MARK: The zip container

    /// The pickle of a checkpoint with one F32 tensor `w` of `values` (zip's persistent ids).
    func zipCheckpoint(folder: String, values: [Float], zip64: Bool = false, method: UInt16 = 0) -> [UInt8] {
        let pickle = Pickle.checkpoint(legacy: false) {
            $0.string("w")
            $0.tensor(key: "0", count: values.count, shape: [values.count], strides: [1], legacy: false)
        }
        return zipFile([(folder + "/data.pkl", pickle.bytes), (folder + "/byteorder", Array("little".utf8)),
                        (folder + "/data/0", floatBytes(values))], zip64: zip64, method: method)
    }

    func testAnyTopFolderNameAndZip64ExtraFields() throws {
        for folder in ["archive", "my model.pth", "x"] {
            for zip64 in [false, true] {
                let checkpoint = try read(zipCheckpoint(folder: folder, values: [1, 2, 3], zip64: zip64))
                XCTAssertEqual(checkpoint.tensors.map(\.name), ["model.w"])
                XCTAssertEqual(checkpoint.tensors[0].tensor.floatValues(), [1, 2, 3])
                XCTAssertEqual(checkpoint.step, 7)
            }
        }
    }

    func testZipVariantsThatAreRefused() {
        let compressed = readingError(zipCheckpoint(folder: "archive", values: [1], method: 8))
        XCTAssertTrue(compressed?.reason.contains("is compressed (method 8)") ?? false, "\(String(describing: compressed))")

        let noPickle = readingError(zipFile([("archive/data/0", [0, 0, 0, 0])]))
        XCTAssertTrue(noPickle?.reason.contains("no <folder>/data.pkl") ?? false, "\(String(describing: noPickle))")

        let pickle = Pickle.checkpoint { _ in }.bytes
        let two = readingError(zipFile([("a/data.pkl", pickle), ("b/data.pkl", pickle)]))
        XCTAssertTrue(two?.reason.contains("2 <folder>/data.pkl") ?? false, "\(String(describing: two))")

        let bigEndian = readingError(zipFile([("a/data.pkl", pickle), ("a/byteorder", Array("big".utf8))]))
        XCTAssertTrue(bigEndian?.reason.contains("big-endian") ?? false, "\(String(describing: bigEndian))")

        // A storage entry shorter than its persistent id says.
        let four = Pickle.checkpoint(legacy: false) {
            $0.string("w")
            $0.tensor(key: "0", count: 4, shape: [4], strides: [1], legacy: false)
        }
        let short = zipFile([("archive/data.pkl", four.bytes), ("archive/data/0", floatBytes([1, 2, 3]))])
        let mismatch = readingError(short)
        XCTAssertTrue(mismatch?.reason.contains("is 12 bytes, but storage '0' is 4 × F32") ?? false, "\(String(describing: mismatch))")
    }

    /// A zip64 file past 4 GB, as the 5B priors are: an F16 storage of 2.2 billion elements,
    /// written sparse so that it takes a few pages of disk; the last value is 1.0.
    func testZip64FileLargerThan4GB() throws {
        let count = 2_200_000_000
        let pickle = Pickle.checkpoint(legacy: false) {
            $0.string("big")
            $0.tensor(storageClass: "HalfStorage", key: "0", count: count, shape: [count], strides: [1], legacy: false)
        }.bytes
        // Lay out the entries by hand: data.pkl, then data/0's local header and its 4.4 GB.
        let head = zipFile([("big/data.pkl", pickle)])  // cut before its directory below
        let pickleEnd = 30 + "big/data.pkl".utf8.count + pickle.count
        var prefix = Array(head[..<pickleEnd])
        let dataHeader = prefix.count
        let name = Array("big/data/0".utf8)
        prefix += le(UInt32(0x0403_4b50)) + le(UInt16(45)) + le(UInt16(0)) + le(UInt16(0)) + [0, 0, 0, 0] + le(UInt32(0))
        prefix += le(UInt32.max) + le(UInt32.max) + le(UInt16(name.count)) + le(UInt16(0)) + name
        let dataStart = prefix.count
        let dataEnd = dataStart + 2 * count

        var tail: [UInt8] = []
        func centralEntry(_ name: [UInt8], size: Int, offset: Int) -> [UInt8] {
            let extra = le(UInt16(1)) + le(UInt16(24)) + le(UInt64(size)) + le(UInt64(size)) + le(UInt64(offset))
            return le(UInt32(0x0201_4b50)) + le(UInt16(45)) + le(UInt16(45)) + le(UInt16(0)) + le(UInt16(0)) + [0, 0, 0, 0]
                + le(UInt32(0)) + le(UInt32.max) + le(UInt32.max) + le(UInt16(name.count)) + le(UInt16(extra.count))
                + le(UInt16(0)) + le(UInt16(0)) + le(UInt16(0)) + le(UInt32(0)) + le(UInt32.max) + name + extra
        }
        tail += centralEntry(Array("big/data.pkl".utf8), size: pickle.count, offset: 0)
        tail += centralEntry(name, size: 2 * count, offset: dataHeader)
        let directorySize = tail.count
        let record = dataEnd + tail.count
        tail += le(UInt32(0x0606_4b50)) + le(UInt64(44)) + le(UInt16(45)) + le(UInt16(45)) + le(UInt32(0)) + le(UInt32(0))
        tail += le(UInt64(2)) + le(UInt64(2)) + le(UInt64(directorySize)) + le(UInt64(dataEnd))
        tail += le(UInt32(0x0706_4b50)) + le(UInt32(0)) + le(UInt64(record)) + le(UInt32(1))
        tail += le(UInt32(0x0605_4b50)) + le(UInt16(0)) + le(UInt16(0)) + le(UInt16(0xffff)) + le(UInt16(0xffff))
        tail += le(UInt32.max) + le(UInt32.max) + le(UInt16(0))

        let path = NSTemporaryDirectory() + "/jukebox-zip64-\(getpid()).pth"
        defer { unlink(path) }
        FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.write(contentsOf: Data(prefix))
        try handle.seek(toOffset: UInt64(dataEnd - 2))
        try handle.write(contentsOf: Data([0x00, 0x3c]))  // 1.0 in F16
        try handle.write(contentsOf: Data(tail))
        try handle.close()

        let checkpoint = try TorchFile(path: path)
        let tensor = checkpoint.tensors[0].tensor
        XCTAssertEqual(tensor.shape, [count])
        let bytes = try XCTUnwrap(tensor.contiguousBytes)
        XCTAssertEqual(bytes.count, 2 * count)
        XCTAssertEqual(bytes.loadUnaligned(fromByteOffset: 2 * count - 2, as: UInt16.self), 0x3c00)
        XCTAssertEqual(bytes.loadUnaligned(fromByteOffset: 0, as: UInt16.self), 0)
    }
}
