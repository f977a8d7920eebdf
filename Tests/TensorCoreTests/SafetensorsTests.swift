// Safetensors reading and writing: round trips for every dtype, byte-identical output, the
// 16-bit float conversions against known bit patterns, and corrupted files, each of which must
// throw an error that names the problem rather than crash.

import Foundation
import TensorCore
import XCTest

final class SafetensorsTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("SafetensorsTests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: Helpers

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// A file made of a length field (the true header length unless `declaredLength` says
    /// otherwise), `header` and `data`, for handcrafting corrupted files.
    private func rawFile(_ header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) throws -> String {
        let headerBytes = Array(header.utf8)
        return try rawFile(bytes: headerBytes, data: data, declaredLength: declaredLength)
    }

    private func rawFile(bytes headerBytes: [UInt8], data: [UInt8] = [], declaredLength: UInt64? = nil) throws -> String {
        var bytes: [UInt8] = []
        withUnsafeBytes(of: (declaredLength ?? UInt64(headerBytes.count)).littleEndian) { bytes += $0 }
        bytes += headerBytes + data
        let file = path("raw-\(UUID().uuidString).safetensors")
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        return file
    }

    /// Asserts that both `read` and `readHeader` reject `file` with an `invalidFile` error whose
    /// text contains every one of `fragments`.
    private func assertInvalid(_ file: String, mentions fragments: String...,
                               line: UInt = #line) {
        for (label, load) in [("read", { _ = try Safetensors.read(path: file) }),
                              ("readHeader", { _ = try Safetensors.readHeader(path: file) })] {
            do {
                try load()
                XCTFail("\(label) accepted a corrupted file; expected an error mentioning \(fragments)", line: line)
            } catch let error as TensorError {
                guard case .invalidFile(let reportedPath, _) = error else {
                    XCTFail("\(label): expected invalidFile, got \(error)", line: line)
                    continue
                }
                XCTAssertEqual(reportedPath, file, line: line)
                for fragment in fragments {
                    XCTAssertTrue(error.description.contains(fragment),
                                  "\(label): '\(error)' does not mention '\(fragment)'", line: line)
                }
            } catch {
                XCTFail("\(label): unexpected error type \(error)", line: line)
            }
        }
    }

    private func bytes(of file: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
    }

    private func sameBits(_ a: [Float], _ b: [Float], line: UInt = #line) {
        XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), line: line)
    }

    // MARK: 16-bit float conversions

    func testFloat16SpecialValuesHaveKnownBitPatterns() {
        let cases: [(Float, UInt16)] = [
            (0, 0x0000), (-0.0, 0x8000), (1, 0x3c00), (-2, 0xc000),
            (0x1p-24, 0x0001),              // smallest subnormal
            (0x1.ff8p-15, 0x03ff),          // largest subnormal
            (0x1p-14, 0x0400),              // smallest normal
            (65504, 0x7bff),                // largest finite
            (.infinity, 0x7c00), (-.infinity, 0xfc00),
        ]
        for (value, bits) in cases {
            XCTAssertEqual(HalfFloat.float16Bits(from: value), bits, "\(value) → F16")
            XCTAssertEqual(HalfFloat.float(fromFloat16Bits: bits).bitPattern, value.bitPattern, "F16 \(bits) → F32")
        }
        // NaN stays NaN both ways, even with a payload only in bits that F16 drops.
        XCTAssertEqual(HalfFloat.float16Bits(from: .nan) & 0x7c00, 0x7c00)
        XCTAssertNotEqual(HalfFloat.float16Bits(from: .nan) & 0x03ff, 0)
        XCTAssertEqual(HalfFloat.float16Bits(from: Float(bitPattern: 0x7f80_0001)) & 0x7fff, 0x7e00)
        XCTAssertTrue(HalfFloat.float(fromFloat16Bits: 0x7e00).isNaN)
        XCTAssertTrue(HalfFloat.float(fromFloat16Bits: 0xfc01).isNaN)
    }

    func testFloat16RoundsToNearestEvenAndOverflowsToInfinity() {
        XCTAssertEqual(HalfFloat.float16Bits(from: 65519), 0x7bff)      // below the midpoint to 65536
        XCTAssertEqual(HalfFloat.float16Bits(from: 65520), 0x7c00)      // midpoint: even is infinity
        XCTAssertEqual(HalfFloat.float16Bits(from: 1e10), 0x7c00)
        XCTAssertEqual(HalfFloat.float16Bits(from: -1e10), 0xfc00)
        XCTAssertEqual(HalfFloat.float16Bits(from: 1 + 0x1p-11), 0x3c00)   // tie → even (down)
        XCTAssertEqual(HalfFloat.float16Bits(from: 1 + 3 * 0x1p-11), 0x3c02) // tie → even (up)
        XCTAssertEqual(HalfFloat.float16Bits(from: 1 + 0x1p-11 + 0x1p-20), 0x3c01)
        XCTAssertEqual(HalfFloat.float16Bits(from: 0x1p-25), 0x0000)        // tie between 0 and 2^-24
        XCTAssertEqual(HalfFloat.float16Bits(from: -0x1p-25), 0x8000)
        XCTAssertEqual(HalfFloat.float16Bits(from: 0x1.000002p-25), 0x0001)
        XCTAssertEqual(HalfFloat.float16Bits(from: 3 * 0x1p-25), 0x0002)    // tie 1.5 units → 2
        XCTAssertEqual(HalfFloat.float16Bits(from: 0x1p-30), 0x0000)
        XCTAssertEqual(HalfFloat.float16Bits(from: .leastNonzeroMagnitude), 0x0000)
        XCTAssertEqual(HalfFloat.float16Bits(from: 0x1.ffcp-15), 0x0400)    // rounds up into the normals
    }

    func testBFloat16SpecialValuesAndRounding() {
        let cases: [(Float, UInt16)] = [
            (0, 0x0000), (-0.0, 0x8000), (1, 0x3f80), (-2, 0xc000),
            (.infinity, 0x7f80), (-.infinity, 0xff80),
            (Float(bitPattern: 0x0001_0000), 0x0001),   // smallest bfloat16 subnormal
        ]
        for (value, bits) in cases {
            XCTAssertEqual(HalfFloat.bfloat16Bits(from: value), bits, "\(value) → BF16")
            XCTAssertEqual(HalfFloat.float(fromBFloat16Bits: bits).bitPattern, value.bitPattern, "BF16 \(bits) → F32")
        }
        XCTAssertEqual(HalfFloat.bfloat16Bits(from: 1 + 0x1p-8), 0x3f80)        // tie → even (down)
        XCTAssertEqual(HalfFloat.bfloat16Bits(from: 1 + 3 * 0x1p-8), 0x3f82)    // tie → even (up)
        XCTAssertEqual(HalfFloat.bfloat16Bits(from: 1 + 0x1p-8 + 0x1p-20), 0x3f81)
        XCTAssertEqual(HalfFloat.bfloat16Bits(from: .greatestFiniteMagnitude), 0x7f80)  // overflows
        XCTAssertEqual(HalfFloat.bfloat16Bits(from: Float(bitPattern: 0x7f80_0001)) & 0x7fc0, 0x7fc0)
        XCTAssertTrue(HalfFloat.float(fromBFloat16Bits: HalfFloat.bfloat16Bits(from: -.nan)).isNaN)
    }

    #if !(os(macOS) && arch(x86_64))
    /// Swift's own `Float16` is an independent reference: every binary16 pattern must widen
    /// identically, and narrowing must agree on all midpoints (the hard cases) and on random
    /// values of every magnitude.
    func testFloat16ConversionsAgreeWithSwiftFloat16() {
        for bits in UInt16.min ... UInt16.max {
            let ours = HalfFloat.float(fromFloat16Bits: bits)
            let reference = Float(Float16(bitPattern: bits))
            if reference.isNaN {
                XCTAssertTrue(ours.isNaN, "F16 \(bits)")
            } else {
                XCTAssertEqual(ours.bitPattern, reference.bitPattern, "F16 \(bits)")
            }
        }
        var probes: [Float] = []
        for bits in UInt16(0) ..< 0x7c00 {
            let low = Float(Float16(bitPattern: bits))
            let high = Float(Float16(bitPattern: bits + 1))
            probes += [low, (low + high) / 2, low.nextUp, ((low + high) / 2).nextDown, ((low + high) / 2).nextUp]
        }
        var generator = SystemRandomNumberGenerator()
        for _ in 0 ..< 100_000 { probes.append(Float(bitPattern: generator.next())) }
        for value in probes + probes.map(-) where !value.isNaN {
            XCTAssertEqual(HalfFloat.float16Bits(from: value), Float16(value).bitPattern, "\(value) → F16")
        }
    }
    #endif

    // MARK: Round trips

    func testFloat32RoundTripIsBitExact() throws {
        let values: [Float] = [0, -0.0, 1, -1.5, .pi, 1e-40, -1e-45, .greatestFiniteMagnitude,
                               .infinity, -.infinity, .nan, 65504, 123456.789]
        let file = path("f32.safetensors")
        try Safetensors.write(path: file, tensors: [("w", .float(Tensor(values, shape: [13])), .f32)])
        let loaded = try Safetensors.read(path: file).float("w")
        XCTAssertEqual(loaded.shape, [13])
        sameBits(loaded.array, values)
    }

    func testFloat16RoundTripIsExactForRepresentableValuesAndCloseOtherwise() throws {
        let representable: [Float] = [0, -0.0, 1, -2.5, 0.099975586, 65504, -65504, 0x1p-24, 0x1.ff8p-15,
                                      .infinity, -.infinity]
        var generator = SystemRandomNumberGenerator()
        let random = (0 ..< 1000).map { _ in Float.random(in: -1000 ... 1000, using: &generator) }
        let file = path("f16.safetensors")
        try Safetensors.write(path: file, tensors: [
            ("exact", .float(Tensor(representable, shape: [11])), .f16),
            ("random", .float(Tensor(random, shape: [10, 100])), .f16),
            ("overflow", .float(Tensor([70000, -1e9], shape: [2])), .f16),
        ])
        let loaded = try Safetensors.read(path: file)
        XCTAssertEqual(loaded.entries.map(\.dtype), [.f16, .f16, .f16])
        sameBits(try loaded.float("exact").array, representable)
        let roundTripped = try loaded.float("random")
        XCTAssertEqual(roundTripped.shape, [10, 100])
        for (original, back) in zip(random, roundTripped.array) {
            // Rounding to 11 significant bits is off by at most half a unit: 2^-11 relative.
            XCTAssertLessThanOrEqual(abs(back - original), abs(original) * 0x1p-11 + 0x1p-25, "\(original)")
        }
        XCTAssertEqual(try loaded.float("overflow").array, [.infinity, -.infinity])
    }

    func testBFloat16RoundTripIsExactForRepresentableValuesAndCloseOtherwise() throws {
        let representable: [Float] = [0, -0.0, 1, -3, 0.5, 1.5e38, 0x1p-130, .infinity, -.infinity]
        var generator = SystemRandomNumberGenerator()
        let random = (0 ..< 1000).map { _ in Float.random(in: -1e6 ... 1e6, using: &generator) }
        let file = path("bf16.safetensors")
        try Safetensors.write(path: file, tensors: [
            ("exact", .float(Tensor(representable.map { HalfFloat.float(fromBFloat16Bits: HalfFloat.bfloat16Bits(from: $0)) },
                                    shape: [9])), .bf16),
            ("random", .float(Tensor(random, shape: [1000])), .bf16),
        ])
        let loaded = try Safetensors.read(path: file)
        XCTAssertEqual(loaded.entries.map(\.dtype), [.bf16, .bf16])
        let expected = representable.map { HalfFloat.float(fromBFloat16Bits: HalfFloat.bfloat16Bits(from: $0)) }
        sameBits(try loaded.float("exact").array, expected)
        XCTAssertEqual(expected[0 ..< 5], [0, -0.0, 1, -3, 0.5])
        for (original, back) in zip(random, try loaded.float("random").array) {
            // 8 significant bits: off by at most 2^-8 relative.
            XCTAssertLessThanOrEqual(abs(back - original), abs(original) * 0x1p-8, "\(original)")
        }
    }

    func testIntegerRoundTripsAreExact() throws {
        let i16: [Int16] = [.min, -1, 0, 1, .max, 1023]
        let i32: [Int32] = [.min, -7, 0, 7, .max, 65536]
        let i64: [Int64] = [.min, -1, 0, 1 << 40, .max, 3]
        let u8: [UInt8] = [0, 1, 127, 128, 254, 255]
        let file = path("ints.safetensors")
        try Safetensors.write(path: file, tensors: [
            ("a", .int16(i16, shape: [2, 3]), .i16),
            ("b", .int32(i32, shape: [3, 2]), .i32),
            ("c", .int64(i64, shape: [6]), .i64),
            ("d", .uint8(u8, shape: [1, 2, 3]), .u8),
        ])
        let loaded = try Safetensors.read(path: file)
        XCTAssertEqual(try loaded.int16("a").values, i16)
        XCTAssertEqual(try loaded.int16("a").shape, [2, 3])
        XCTAssertEqual(try loaded.int32("b").values, i32)
        XCTAssertEqual(try loaded.int32("b").shape, [3, 2])
        XCTAssertEqual(try loaded.int64("c").values, i64)
        XCTAssertEqual(try loaded.uint8("d").values, u8)
        XCTAssertEqual(try loaded.uint8("d").shape, [1, 2, 3])
    }

    func testMetadataAndUnusualNamesRoundTrip() throws {
        let metadata = [
            "format": "jukebox-codes", "version": "1",
            "config": "{\"width\": 64, \"hops\": [8, 32, 128]}",
            "quotes \" and \\ backslash": "line\nbreak\ttab\r\u{01}\u{1f}",
            "ünïcødé ♫": "日本語 🎵", "empty": "",
        ]
        let names = ["level0", "with \"quote\"", "back\\slash", "new\nline", "♫"]
        let file = path("meta.safetensors")
        try Safetensors.write(path: file,
                              tensors: names.enumerated().map { ($1, .int16([Int16($0)], shape: [1]), .i16) },
                              metadata: metadata)
        let loaded = try Safetensors.read(path: file)
        XCTAssertEqual(loaded.metadata, metadata)
        XCTAssertEqual(loaded.entries.map(\.name), names)
        for (i, name) in names.enumerated() { XCTAssertEqual(try loaded.int16(name).values, [Int16(i)]) }
        XCTAssertEqual(try Safetensors.readHeader(path: file).metadata, metadata)
    }

    func testScalarAndEmptyTensors() throws {
        let file = path("edge.safetensors")
        try Safetensors.write(path: file, tensors: [
            ("scalar", .float(Tensor(scalar: 2.5)), .f32),
            ("empty", .float(Tensor(uninitializedShape: [0, 4])), .f16),
            ("noCodes", .int16([], shape: [3, 0]), .i16),
            ("after", .uint8([9], shape: [1]), .u8),
        ])
        let loaded = try Safetensors.read(path: file)
        XCTAssertEqual(try loaded.float("scalar").shape, [])
        XCTAssertEqual(try loaded.float("scalar").item, 2.5)
        XCTAssertEqual(try loaded.float("empty").shape, [0, 4])
        XCTAssertEqual(try loaded.int16("noCodes").values, [])
        XCTAssertEqual(try loaded.int16("noCodes").shape, [3, 0])
        XCTAssertEqual(try loaded.uint8("after").values, [9])
    }

    // MARK: Written bytes

    func testOutputIsDeterministicPaddedAndInTheGivenOrder() throws {
        let tensors: [(name: String, value: StoredTensor, storeAs: SafetensorsDType)] = [
            ("z", .float(Tensor([1, 2], shape: [2])), .f32),
            ("a", .int16([-1], shape: [1]), .i16),
        ]
        let metadata = ["version": "1", "format": "test"]
        let first = path("first.safetensors"), second = path("second.safetensors")
        try Safetensors.write(path: first, tensors: tensors, metadata: metadata)
        try Safetensors.write(path: second, tensors: tensors, metadata: metadata)
        let bytes = try bytes(of: first)
        XCTAssertEqual(bytes, try self.bytes(of: second))

        // Metadata keys sorted, tensors in the given order, padded with spaces to 8 bytes.
        let header = "{\"__metadata__\":{\"format\":\"test\",\"version\":\"1\"},"
            + "\"z\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            + "\"a\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[8,10]}}"
        let padded = header + String(repeating: " ", count: (8 - header.utf8.count % 8) % 8)
        var expected: [UInt8] = []
        withUnsafeBytes(of: UInt64(padded.utf8.count).littleEndian) { expected += $0 }
        expected += Array(padded.utf8)
        expected += [0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40]  // 1.0, 2.0 little-endian
        expected += [0xff, 0xff]                                      // Int16 -1
        XCTAssertEqual(bytes, expected)
        XCTAssertEqual(padded.utf8.count % 8, 0)
    }

    func testReadHeaderDescribesTensorsInDataOrder() throws {
        let file = path("header.safetensors")
        try Safetensors.write(path: file, tensors: [
            ("weight", .float(Tensor(repeating: 1, shape: [4, 3])), .bf16),
            ("codes", .int32([1, 2], shape: [1, 2]), .i32),
        ], metadata: ["kind": "vqvae"])
        let header = try Safetensors.readHeader(path: file)
        XCTAssertEqual(header.metadata, ["kind": "vqvae"])
        XCTAssertEqual(header.entries.map(\.name), ["weight", "codes"])
        XCTAssertEqual(header.entries.map(\.dtype), [.bf16, .i32])
        XCTAssertEqual(header.entries.map(\.shape), [[4, 3], [1, 2]])
        XCTAssertEqual(header.entries.map(\.byteRange), [0 ..< 24, 24 ..< 32])
        XCTAssertEqual(header.dataStart % 8, 0)
        XCTAssertEqual(try bytes(of: file).count, header.dataStart + 32)
    }

    func testAccessorsNameTheMissingOrMistypedTensor() throws {
        let file = path("kinds.safetensors")
        try Safetensors.write(path: file, tensors: [
            ("half", .float(Tensor([1], shape: [1])), .f16),
            ("codes", .int16([1], shape: [1]), .i16),
        ])
        let loaded = try Safetensors.read(path: file)
        XCTAssertThrowsError(try loaded.float("absent")) { XCTAssertEqual($0 as? TensorError, .missingTensor("absent")) }
        XCTAssertThrowsError(try loaded.int16("half")) {
            XCTAssertEqual($0 as? TensorError, .dtypeMismatch(name: "half", expected: "I16", found: "F16"))
        }
        XCTAssertThrowsError(try loaded.float("codes")) {
            XCTAssertEqual($0 as? TensorError, .dtypeMismatch(name: "codes", expected: "F32, F16 or BF16", found: "I16"))
        }
        XCTAssertThrowsError(try loaded.int64("codes"))
    }

    // MARK: Atomic writing

    func testWriteReplacesAtomicallyAndLeavesNoTemporaryFile() throws {
        let file = path("model.safetensors")
        try Safetensors.write(path: file, tensors: [("old", .uint8([1], shape: [1]), .u8)])
        let before = try bytes(of: file)

        // A rejected write leaves the old file exactly as it was.
        XCTAssertThrowsError(try Safetensors.write(path: file, tensors: [
            ("x", .uint8([1], shape: [1]), .u8), ("x", .uint8([2], shape: [1]), .u8),
        ])) { XCTAssertTrue("\($0)".contains("two tensors are named 'x'"), "\($0)") }
        XCTAssertEqual(try bytes(of: file), before)

        try Safetensors.write(path: file, tensors: [("new", .uint8([2], shape: [1]), .u8)])
        XCTAssertEqual(try Safetensors.read(path: file).entries.map(\.name), ["new"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["model.safetensors"])

        // An unwritable destination is an error naming the file, with nothing left behind.
        let missing = path("no-such-folder/model.safetensors")
        XCTAssertThrowsError(try Safetensors.write(path: missing, tensors: [])) {
            guard case .fileAccess(let reported, _)? = $0 as? TensorError else { return XCTFail("\($0)") }
            XCTAssertTrue(reported.contains("no-such-folder"))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["model.safetensors"])
    }

    func testWriteRejectsArgumentsThatCannotBeStored() {
        let file = path("bad.safetensors")
        let cases: [([(name: String, value: StoredTensor, storeAs: SafetensorsDType)], String)] = [
            ([("codes", .int16([1], shape: [1]), .f32)], "holds I16 values, which cannot be stored as F32"),
            ([("w", .float(Tensor([1], shape: [1])), .i32)], "holds F32 values, which cannot be stored as I32"),
            ([("codes", .int32([1, 2, 3], shape: [2, 2]), .i32)], "3 values, which do not fill shape [2, 2]"),
            ([("codes", .int32([], shape: [-1, 0]), .i32)], "do not fill shape [-1, 0]"),
            ([("__metadata__", .uint8([1], shape: [1]), .u8)], "reserved"),
        ]
        for (tensors, message) in cases {
            XCTAssertThrowsError(try Safetensors.write(path: file, tensors: tensors)) {
                XCTAssertTrue("\($0)".contains(message), "'\($0)' does not mention '\(message)'")
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: file))
    }

    // MARK: Corrupted files

    func testTruncatedFilesAreRejected() throws {
        assertInvalid(try rawFile(bytes: []), mentions: "header (0 bytes) is not valid JSON")
        let short = path("short.safetensors")
        try Data([1, 2, 3, 4, 5]).write(to: URL(fileURLWithPath: short))
        assertInvalid(short, mentions: "5 bytes", "shorter than the 8-byte header length")
        let empty = path("empty.safetensors")
        try Data().write(to: URL(fileURLWithPath: empty))
        assertInvalid(empty, mentions: "0 bytes")

        // A valid file cut inside its data section.
        let file = path("cut.safetensors")
        try Safetensors.write(path: file, tensors: [("w", .float(Tensor([1, 2, 3], shape: [3])), .f32)])
        let bytes = try bytes(of: file)
        try Data(bytes.dropLast(4)).write(to: URL(fileURLWithPath: file))
        assertInvalid(file, mentions: "tensor 'w'", "past the end of the data section")
    }

    func testHeaderLengthBeyondTheFileOrTheLimitIsRejected() throws {
        assertInvalid(try rawFile("{}", declaredLength: 50), mentions: "header length 50", "truncated")
        assertInvalid(try rawFile("{}", declaredLength: 1 << 40), mentions: "exceeds the 100000000-byte limit")
        assertInvalid(try rawFile("{}", declaredLength: .max), mentions: "\(UInt64.max)", "limit")
    }

    func testMalformedHeadersAreRejected() throws {
        assertInvalid(try rawFile("{\"w\": {\"dtype\": \"F32\""), mentions: "not valid JSON")
        assertInvalid(try rawFile(""), mentions: "not valid JSON")
        assertInvalid(try rawFile("[1, 2]"), mentions: "not a JSON object")
        assertInvalid(try rawFile("\"text\""), mentions: "not a JSON object")
        assertInvalid(try rawFile(bytes: [0x7b, 0xff, 0xfe, 0x7d]), mentions: "not valid UTF-8")
        assertInvalid(try rawFile("{\"__metadata__\": {\"step\": 5}}"), mentions: "'step'", "not a string")
        assertInvalid(try rawFile("{\"__metadata__\": [\"a\"]}"), mentions: "__metadata__", "not a JSON object")
        assertInvalid(try rawFile("{\"w\": 3}"), mentions: "tensor 'w'", "not a JSON object")
        // Nesting deep enough to exhaust the stack of a naive recursive parser.
        let depth = 100_000
        assertInvalid(try rawFile("{\"w\":" + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}"),
                      mentions: "not valid JSON")
    }

    func testUnknownDTypeIsRejected() throws {
        assertInvalid(try rawFile("{\"w\": {\"dtype\": \"F64\", \"shape\": [1], \"data_offsets\": [0, 8]}}",
                                  data: Array(repeating: 0, count: 8)),
                      mentions: "tensor 'w'", "unsupported dtype 'F64'")
        assertInvalid(try rawFile("{\"w\": {\"dtype\": 4, \"shape\": [1], \"data_offsets\": [0, 4]}}",
                                  data: Array(repeating: 0, count: 4)),
                      mentions: "tensor 'w'", "\"dtype\"")
    }

    func testBadShapesAreRejected() throws {
        let data = [UInt8](repeating: 0, count: 8)
        for shape in ["[-2]", "[2.5]", "[\"2\"]", "[null]", "2", "[true]"] {
            assertInvalid(try rawFile("{\"w\": {\"dtype\": \"U8\", \"shape\": \(shape), \"data_offsets\": [0, 2]}}",
                                      data: data),
                          mentions: "tensor 'w'", "shape")
        }
        // Extents whose product overflows must be reported, not trap.
        assertInvalid(try rawFile("{\"w\": {\"dtype\": \"I64\", \"shape\": [4294967296, 4294967296], "
                                  + "\"data_offsets\": [0, 8]}}", data: data),
                      mentions: "tensor 'w'", "more bytes than a file can hold")
        assertInvalid(try rawFile("{\"w\": {\"dtype\": \"U8\", \"shape\": [99999999999999999999], "
                                  + "\"data_offsets\": [0, 8]}}", data: data),
                      mentions: "tensor 'w'", "not a non-negative integer")
    }

    func testBadDataOffsetsAreRejected() throws {
        let data = [UInt8](repeating: 0, count: 8)
        func header(_ offsets: String) -> String {
            "{\"w\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": \(offsets)}}"
        }
        for offsets in ["[0]", "[0, 2, 4]", "[0, 2.5]", "[\"0\", \"2\"]", "{}", "null"] {
            assertInvalid(try rawFile(header(offsets), data: data), mentions: "tensor 'w'", "two integers")
        }
        assertInvalid(try rawFile("{\"w\": {\"dtype\": \"U8\", \"shape\": [2]}}", data: data),
                      mentions: "tensor 'w'", "\"data_offsets\" is missing")
        assertInvalid(try rawFile(header("[4, 2]"), data: data), mentions: "tensor 'w'", "[4, 2]")
        assertInvalid(try rawFile(header("[-2, 0]"), data: data), mentions: "tensor 'w'", "[-2, 0]")
        assertInvalid(try rawFile(header("[7, 9]"), data: data),
                      mentions: "tensor 'w'", "end 9 is past the end of the data section (8 bytes)")
    }

    func testShapeThatDisagreesWithTheByteRangeIsRejected() throws {
        assertInvalid(try rawFile("{\"w\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 20]}}",
                                  data: Array(repeating: 0, count: 24)),
                      mentions: "tensor 'w'", "shape [2, 3] of F32 needs 24 bytes", "span 20")
        assertInvalid(try rawFile("{\"w\": {\"dtype\": \"BF16\", \"shape\": [], \"data_offsets\": [0, 4]}}",
                                  data: Array(repeating: 0, count: 4)),
                      mentions: "tensor 'w'", "needs 2 bytes")
    }

    func testOverlappingRangesAreRejectedButGapsAreAccepted() throws {
        let data = [UInt8](repeating: 7, count: 16)
        assertInvalid(try rawFile("{\"a\": {\"dtype\": \"U8\", \"shape\": [8], \"data_offsets\": [0, 8]},"
                                  + " \"b\": {\"dtype\": \"I16\", \"shape\": [4], \"data_offsets\": [6, 14]}}",
                                  data: data),
                      mentions: "'a'", "'b'", "overlap")
        assertInvalid(try rawFile("{\"a\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [4, 8]},"
                                  + " \"b\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [4, 8]}}",
                                  data: data),
                      mentions: "overlap")

        // Gaps before, between and after tensors hide no data, and an empty tensor occupies no
        // bytes wherever it points.
        let gappy = try rawFile("{\"b\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [10, 12]},"
                                + " \"a\": {\"dtype\": \"U8\", \"shape\": [3], \"data_offsets\": [2, 5]},"
                                + " \"e\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [3, 3]}}",
                                data: Array(0 ..< 16))
        let loaded = try Safetensors.read(path: gappy)
        XCTAssertEqual(loaded.entries.map(\.name), ["a", "e", "b"])
        XCTAssertEqual(try loaded.uint8("a").values, [2, 3, 4])
        XCTAssertEqual(try loaded.uint8("b").values, [10, 11])
        XCTAssertEqual(try loaded.float("e").count, 0)
    }

    func testUnpaddedHeaderWithUnalignedDataIsRead() throws {
        // Some writers do not pad; the data section then starts at an odd address.
        let header = "{\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
            + "\"f\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}"
        XCTAssertEqual(header.utf8.count % 2, 1)
        let file = try rawFile(header, data: [0x00, 0x3c, 0x00, 0xc0, 0x00, 0x00, 0x20, 0x41])
        let loaded = try Safetensors.read(path: file)
        XCTAssertEqual(try loaded.float("h").array, [1, -2])
        XCTAssertEqual(try loaded.float("f").array, [10])
    }

    /// Every truncation of a valid file, and many random byte corruptions, must either load or
    /// throw a `TensorError`; a crash fails the whole test run.
    func testCorruptedFilesNeverCrash() throws {
        let file = path("valid.safetensors")
        try Safetensors.write(path: file, tensors: [
            ("w", .float(Tensor([1, 2, 3, 4], shape: [2, 2])), .f16),
            ("codes", .int64([5, 6], shape: [2]), .i64),
        ], metadata: ["format": "test"])
        let valid = try bytes(of: file)
        let damaged = path("damaged.safetensors")

        func load(_ bytes: [UInt8]) throws {
            try Data(bytes).write(to: URL(fileURLWithPath: damaged))
            do {
                _ = try Safetensors.read(path: damaged)
            } catch is TensorError {
                // Expected for most damage.
            }
        }
        for length in 0 ..< valid.count { try load(Array(valid[..<length])) }
        var generator = SystemRandomNumberGenerator()
        for _ in 0 ..< 2000 {
            var bytes = valid
            for _ in 0 ..< Int.random(in: 1 ... 3, using: &generator) {
                bytes[Int.random(in: 0 ..< bytes.count, using: &generator)] = UInt8.random(in: 0 ... 255, using: &generator)
            }
            try load(bytes)
        }
    }

    func testMissingFileIsAnAccessError() {
        XCTAssertThrowsError(try Safetensors.read(path: path("absent.safetensors"))) {
            guard case .fileAccess(_, let reason)? = $0 as? TensorError else { return XCTFail("\($0)") }
            XCTAssertTrue(reason.contains("cannot open"), reason)
        }
    }
}
