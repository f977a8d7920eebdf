// Checkpoints that try to run code, or claim absurd sizes: each is refused with one line
// that names the opcode or global and its offset in the file.

import XCTest
import Foundation
@testable import TorchCheckpoint

final class HostileCheckpointTests: XCTestCase {
    /// The offset in the legacy file of byte `index` of the object pickle.
    func fileOffset(ofObjectByte index: Int) -> Int {
        let header = legacyFile(object: [], storages: [])
        // The empty key list pickle is PROTO 2, EMPTY_LIST, MARK, APPENDS, STOP: 6 bytes.
        return header.count - 6 + index
    }

    func testGlobalOutsideTheWhitelistIsRefusedByNameAndOffset() throws {
        var p = Pickle()
        p.global("os", "system")
        p.string("echo pwned")
        p.op(.tuple1)
        p.op(.reduce)
        p.op(.stop)
        let error = try XCTUnwrap(readingError(legacyFile(object: p)))
        XCTAssertEqual(error.kind, .refused)
        XCTAssertEqual(error.offset, fileOffset(ofObjectByte: 2))
        XCTAssertTrue(error.reason.hasPrefix("global os.system is not allowed"), error.description)
        XCTAssertEqual(error.description.split(separator: "\n").count, 1)
    }

    func testStackGlobalGoesThroughTheSameWhitelist() throws {
        var p = Pickle(protocol: 4)
        p.op(.shortBinUnicode); p.raw([8] + Array("builtins".utf8))
        p.op(.shortBinUnicode); p.raw([4] + Array("eval".utf8))
        p.op(.stackGlobal)
        p.op(.stop)
        let error = try XCTUnwrap(readingError(legacyFile(object: p)))
        XCTAssertEqual(error.kind, .refused)
        XCTAssertEqual(error.offset, fileOffset(ofObjectByte: 2 + 10 + 6))
        XCTAssertTrue(error.reason.hasPrefix("global builtins.eval is not allowed"), error.description)
    }

    func testReduceOfAnAllowedGlobalThatIsNotACallIsRefused() throws {
        var p = Pickle()
        p.global("torch", "FloatStorage")
        p.op(.emptyTuple)
        p.op(.reduce)
        p.op(.stop)
        let error = try XCTUnwrap(readingError(legacyFile(object: p)))
        XCTAssertEqual(error.kind, .refused)
        XCTAssertEqual(error.offset, fileOffset(ofObjectByte: 2 + 20 + 1))
        XCTAssertTrue(error.reason.contains("calling torch.FloatStorage is not allowed"), error.description)

        var q = Pickle()
        q.string("not callable")
        q.op(.emptyTuple)
        q.op(.reduce)
        q.op(.stop)
        XCTAssertTrue(readingError(legacyFile(object: q))?.reason.contains("REDUCE of the string 'not callable'") ?? false)
    }

    /// Walks every opcode of the enumeration (and every byte that is none): each one outside
    /// the allowed set is refused by name at its offset, before any operand is read.
    func testEveryOpcodeOutsideTheAllowedSetIsRefusedByName() throws {
        for byte in UInt8.min ... UInt8.max {
            let opcode = PickleOpcode(rawValue: byte)
            if let opcode, PickleOpcode.allowed.contains(opcode) { continue }
            var p = Pickle()
            p.op(.none)
            p.raw([byte, 0x41, 0x0a, 0x42, 0x0a])
            let error = try XCTUnwrap(readingError(legacyFile(object: p)), "byte \(byte)")
            let hex = String(format: "0x%02x", byte)
            XCTAssertEqual(error.kind, .refused, hex)
            XCTAssertEqual(error.offset, fileOffset(ofObjectByte: 3), hex)
            XCTAssertEqual(error.reason, "opcode \(hex) (\(opcode?.name ?? "not a pickle opcode")) is not allowed")
        }
        // The refused ones the reference names explicitly.
        for opcode in [PickleOpcode.inst, .obj, .newObj, .newObjEx, .ext1, .ext2, .ext4, .persID] {
            XCTAssertFalse(PickleOpcode.allowed.contains(opcode), opcode.name)
        }
        XCTAssertEqual(PickleOpcode.allowed.count, 38)
    }

    /// Every allowed opcode, each in a small pickle with the value it must build.
    func testEveryAllowedOpcodeBuildsItsValue() throws {
        func value(_ body: (inout Pickle) -> Void, protocol version: UInt8 = 2) throws -> PickleValue {
            var p = Pickle(protocol: version)
            body(&p)
            p.op(.stop)
            return try read(legacyFile(object: p)).root
        }
        func describe(_ v: PickleValue) -> String {
            switch v {
            case .tuple(let t): "(" + t.items.map(describe).joined(separator: ",") + ")"
            case .list(let l): "[" + l.items.map(describe).joined(separator: ",") + "]"
            case .dict(let d): "{" + d.entries.map { "\($0.0):\(describe($0.1))" }.joined(separator: ",") + "}"
            case .int(let i): "\(i)"
            case .float(let f): "\(f)"
            case .string(let s): "'\(s)'"
            case .bytes(let b): "b\(b)"
            case .bigInt(let b): "big\(b)"
            case .bool(let b): "\(b)"
            case .none: "None"
            default: v.kindDescription
            }
        }
        let cases: [(String, (inout Pickle) -> Void)] = [
            ("None", { $0.op(.none) }),
            ("true", { $0.op(.newTrue) }),
            ("false", { $0.op(.newFalse) }),
            ("-2", { $0.raw([0x4a, 0xfe, 0xff, 0xff, 0xff]) }),                    // BININT
            ("255", { $0.raw([0x4b, 0xff]) }),                                      // BININT1
            ("65535", { $0.raw([0x4d, 0xff, 0xff]) }),                              // BININT2
            ("-129", { $0.raw([0x8a, 0x02, 0x7f, 0xff]) }),                         // LONG1
            ("0", { $0.raw([0x8a, 0x00]) }),
            ("big[0, 0, 0, 0, 0, 0, 0, 0, 1]", { $0.raw([0x8a, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 1]) }),
            ("1.5", { $0.raw([0x47, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]) }),              // BINFLOAT, big-endian
            ("'hé'", { $0.string("hé") }),                                          // BINUNICODE
            ("'ab'", { $0.raw([0x8c, 2, 0x61, 0x62]) }),                            // SHORT_BINUNICODE
            ("'ab'", { $0.raw([0x8d, 2, 0, 0, 0, 0, 0, 0, 0, 0x61, 0x62]) }),       // BINUNICODE8
            ("b[1, 2]", { $0.raw([0x43, 2, 1, 2]) }),                               // SHORT_BINBYTES
            ("b[3]", { $0.raw([0x42, 1, 0, 0, 0, 3]) }),                            // BINBYTES
            ("()", { $0.op(.emptyTuple) }),
            ("(1)", { $0.int(1); $0.op(.tuple1) }),
            ("(1,2)", { $0.int(1); $0.int(2); $0.op(.tuple2) }),
            ("(1,2,3)", { $0.int(1); $0.int(2); $0.int(3); $0.op(.tuple3) }),
            ("(1,2,3,4)", { $0.tuple([1, 2, 3, 4]) }),                              // MARK, TUPLE
            ("[1,2,3]", { $0.op(.emptyList); $0.int(1); $0.op(.append); $0.op(.mark); $0.int(2); $0.int(3); $0.op(.appends) }),
            ("{a:1,b:2}", { $0.op(.emptyDict); $0.string("a"); $0.int(1); $0.op(.setItem)
                            $0.op(.mark); $0.string("b"); $0.int(2); $0.op(.setItems) }),
            // The memo: BINPUT/BINGET, LONG_BINPUT/LONG_BINGET, MEMOIZE (index 0 here).
            ("('x','x','x')", { $0.string("x"); $0.raw([0x71, 5, 0x68, 5]); $0.raw([0x72, 9, 0, 0, 1, 0x6a, 9, 0, 0, 1])
                                $0.op(.tuple3) }),
            ("(7,7)", { $0.int(7); $0.op(.memoize); $0.raw([0x68, 0]); $0.op(.tuple2) }),
            ("{}", { $0.global("collections", "OrderedDict"); $0.op(.emptyTuple); $0.op(.reduce) }), // GLOBAL, REDUCE
            ("{k:1}", { $0.op(.emptyDict); $0.string("k"); $0.int(1); $0.op(.setItem)                 // BUILD (state dropped)
                        $0.op(.emptyDict); $0.string("_metadata"); $0.op(.emptyDict); $0.op(.setItem); $0.op(.build) }),
            ("1", { $0.raw([0x95, 2, 0, 0, 0, 0, 0, 0, 0]); $0.int(1) }),           // FRAME
        ]
        for (want, body) in cases {
            XCTAssertEqual(describe(try value(body)), want)
        }
        XCTAssertEqual(describe(try value({ $0.raw([0x8c, 11] + Array("collections".utf8) + [0x8c, 11] + Array("OrderedDict".utf8))
                                              $0.op(.stackGlobal); $0.op(.emptyTuple); $0.op(.reduce) }, protocol: 4)), "{}")
        // PROTO, STOP and BINPERSID run in every fixture; BINPERSID is refused outside the object pickle.
        var keys = Pickle()
        keys.op(.none)
        keys.op(.binPersID)
        keys.op(.stop)
        var bytes = legacyFile(object: Pickle.checkpoint { _ in }.bytes, storages: [])
        bytes.removeLast(6)
        bytes += keys.bytes
        XCTAssertTrue(readingError(bytes)?.reason.hasPrefix("BINPERSID is not allowed in this pickle") ?? false)
    }

    func testContainersCannotContainThemselvesOrNestWithoutBound() throws {
        var selfAppend = Pickle()
        selfAppend.op(.emptyList)
        selfAppend.raw([0x71, 0, 0x68, 0])  // BINPUT 0, BINGET 0
        selfAppend.op(.append)
        selfAppend.op(.stop)
        XCTAssertEqual(readingError(legacyFile(object: selfAppend))?.kind, .refused)

        var selfSet = Pickle()
        selfSet.op(.emptyDict)
        selfSet.raw([0x71, 0])
        selfSet.string("me")
        selfSet.raw([0x68, 0])
        selfSet.op(.setItem)
        selfSet.op(.stop)
        XCTAssertTrue(readingError(legacyFile(object: selfSet))?.reason.contains("already inside another value") ?? false)

        var deep = Pickle()
        deep.op(.emptyTuple)
        for _ in 0 ..< 200 { deep.op(.tuple1) }
        deep.op(.stop)
        XCTAssertTrue(readingError(legacyFile(object: deep))?.reason.contains("nested deeper than 100") ?? false)

        var marks = Pickle()
        marks.raw([UInt8](repeating: PickleOpcode.mark.rawValue, count: PickleMachine.maxStack + 1))
        XCTAssertTrue(readingError(legacyFile(object: marks))?.reason.contains("marks") ?? false)
    }

    func testAPickleThatHashesOneLongKeyOverAndOverStopsQuickly() throws {
        // A 60 KB key, memoized, then set 100,000 times: 6 GB of hashing for a 600 KB pickle.
        var p = Pickle()
        p.string(String(repeating: "k", count: 60_000))
        p.raw([0x71, 0])  // BINPUT 0
        p.op(.emptyDict)
        p.op(.mark)
        for _ in 0 ..< 100_000 { p.raw([0x68, 0, 0x4e]) }  // BINGET 0, NONE
        p.op(.setItems)
        p.op(.stop)
        let start = Date()
        let error = readingError(legacyFile(object: p))
        XCTAssertLessThan(Date().timeIntervalSince(start), 2)
        XCTAssertTrue(error?.reason.contains("far more work") ?? false, "\(String(describing: error))")
    }

    func testAbsurdSizesAreRefused() throws {
        func refusal(count: Int, shape: [Int], strides: [Int], offset: Int = 0) -> String {
            let p = Pickle.checkpoint {
                $0.string("w")
                $0.tensor(key: "1", count: count, offset: offset, shape: shape, strides: strides)
            }
            return readingError(legacyFile(object: p.bytes, storages: [("1", floatBytes([1, 2, 3, 4]), 4)]))?.reason ?? "read"
        }
        XCTAssertTrue(refusal(count: 1 << 62, shape: [4], strides: [1]).contains("claims 4611686018427387904 elements"))
        XCTAssertTrue(refusal(count: 4, shape: [1 << 32, 1 << 32], strides: [1, 1]).contains("more elements than an Int"))
        XCTAssertTrue(refusal(count: 4, shape: [2, 3], strides: [3, 1]).contains("reach element 5 of storage '1', which has 4"))
        XCTAssertTrue(refusal(count: 4, shape: [2], strides: [1 << 62]).contains("reach"))
        XCTAssertTrue(refusal(count: 4, shape: [2], strides: [-1]).contains("negative"))
        XCTAssertTrue(refusal(count: 4, shape: [1], strides: [1], offset: 4).contains("reach element 4"))
        XCTAssertTrue(refusal(count: 4, shape: [1, 1, 1, 1, 1, 1, 1, 1, 1], strides: Array(repeating: 1, count: 9))
            .contains("not a tuple of at most 8 ints"))
        XCTAssertEqual(refusal(count: 4, shape: [2, 2], strides: [1, 2]), "read")  // a transposed view is fine
        // An extent of 1 may have any stride, as in torch; gathering its values must not overflow.
        let odd = Pickle.checkpoint { $0.string("w"); $0.tensor(key: "1", count: 4, offset: 1, shape: [2, 1], strides: [2, Int.max]) }
        let oddFile = try read(legacyFile(object: odd.bytes, storages: [("1", floatBytes([1, 2, 3, 4]), 4)]))
        XCTAssertEqual(oddFile.tensors[0].tensor.floatValues(), [2, 4])

        // The storage's own count in the data section must match the pickle's.
        let p = Pickle.checkpoint { $0.string("w"); $0.tensor(key: "1", count: 4, shape: [4], strides: [1]) }
        let mismatch = readingError(legacyFile(object: p.bytes, storages: [("1", floatBytes([1, 2, 3, 4]), 1 << 62)]))
        XCTAssertTrue(mismatch?.reason.contains("stored with 4611686018427387904 elements, but the pickle says 4") ?? false)
        // A 2^31-byte string length in a 100-byte pickle.
        var long = Pickle()
        long.raw([0x58, 0, 0, 0, 0x80])
        long.op(.stop)
        XCTAssertTrue(readingError(legacyFile(object: long))?.reason.contains("runs past the end of the pickle") ?? false)
    }

    func testLegacyFilesTruncatedOrPaddedSayWhat() throws {
        let p = Pickle.checkpoint { $0.string("w"); $0.tensor(key: "1", count: 4, shape: [4], strides: [1]) }
        let file = legacyFile(object: p.bytes, storages: [("1", floatBytes([1, 2, 3, 4]), 4)])
        XCTAssertEqual(try read(file).tensors[0].tensor.floatValues(), [1, 2, 3, 4])
        XCTAssertTrue(readingError(Array(file.dropLast(3)))?.reason.contains("the file is truncated") ?? false)
        XCTAssertTrue(readingError(file + [0])?.reason.contains("1 bytes follow the last storage") ?? false)
        XCTAssertTrue(readingError(Array("<html>".utf8))?.reason.hasPrefix("not a PyTorch checkpoint") ?? false)
        XCTAssertThrowsError(try TorchFile(path: "/nonexistent/x.pth")) { error in
            XCTAssertEqual((error as? TorchCheckpointError)?.kind, .fileAccess)
        }
    }
}
