// Every opcode of Python's pickle protocols 0 to 5, and the few this reader runs.
//
// torch.save writes protocol 2 (`DEFAULT_PROTOCOL = 2` in torch/serialization.py) in both of
// its formats. The allowed set is the 31 opcodes found in OpenAI's checkpoints and in torch's
// own output, plus the 7 that a protocol 3 to 5 re-save of the same data uses. Everything
// else (INST, OBJ, NEWOBJ, the EXT codes, text PERSID, sets, buffers) is refused by name: the
// reader builds inert values only, and none of those opcodes is needed for them.

/// A pickle opcode: its byte and its name in Python's `pickletools`.
public enum PickleOpcode: UInt8, CaseIterable, Sendable {
    // Protocol 0 and 1.
    case mark = 0x28, stop = 0x2e, pop = 0x30, popMark = 0x31, dup = 0x32
    case float = 0x46, int = 0x49, binInt = 0x4a, binInt1 = 0x4b, long = 0x4c, binInt2 = 0x4d
    case none = 0x4e, persID = 0x50, binPersID = 0x51, reduce = 0x52
    case string = 0x53, binString = 0x54, shortBinString = 0x55, unicode = 0x56, binUnicode = 0x58
    case append = 0x61, build = 0x62, global = 0x63, dict = 0x64, emptyDict = 0x7d, appends = 0x65
    case get = 0x67, binGet = 0x68, inst = 0x69, longBinGet = 0x6a, list = 0x6c, emptyList = 0x5d
    case obj = 0x6f, put = 0x70, binPut = 0x71, longBinPut = 0x72, setItem = 0x73
    case tuple = 0x74, emptyTuple = 0x29, setItems = 0x75, binFloat = 0x47
    // Protocol 2.
    case proto = 0x80, newObj = 0x81, ext1 = 0x82, ext2 = 0x83, ext4 = 0x84
    case tuple1 = 0x85, tuple2 = 0x86, tuple3 = 0x87, newTrue = 0x88, newFalse = 0x89
    case long1 = 0x8a, long4 = 0x8b
    // Protocol 3.
    case binBytes = 0x42, shortBinBytes = 0x43
    // Protocol 4.
    case shortBinUnicode = 0x8c, binUnicode8 = 0x8d, binBytes8 = 0x8e, emptySet = 0x8f, addItems = 0x90
    case frozenSet = 0x91, newObjEx = 0x92, stackGlobal = 0x93, memoize = 0x94, frame = 0x95
    // Protocol 5.
    case byteArray8 = 0x96, nextBuffer = 0x97, readonlyBuffer = 0x98

    /// The opcodes the reader runs: those of torch.save's protocol 2 output, and those of the
    /// same data written with protocols 3 to 5.
    public static let allowed: Set<PickleOpcode> = [
        .proto, .stop, .mark, .emptyDict, .emptyList, .emptyTuple, .tuple, .tuple1, .tuple2, .tuple3,
        .setItem, .setItems, .append, .appends, .binPut, .longBinPut, .binGet, .longBinGet,
        .binUnicode, .binInt, .binInt1, .binInt2, .long1, .binFloat, .newTrue, .newFalse, .none,
        .global, .reduce, .build, .binPersID,
        // Protocols 3 to 5.
        .shortBinUnicode, .binUnicode8, .shortBinBytes, .binBytes, .memoize, .frame, .stackGlobal,
    ]

    /// The name `pickletools` gives the opcode, as error messages show it.
    public var name: String {
        switch self {
        case .mark: "MARK"
        case .stop: "STOP"
        case .pop: "POP"
        case .popMark: "POP_MARK"
        case .dup: "DUP"
        case .float: "FLOAT"
        case .int: "INT"
        case .binInt: "BININT"
        case .binInt1: "BININT1"
        case .long: "LONG"
        case .binInt2: "BININT2"
        case .none: "NONE"
        case .persID: "PERSID"
        case .binPersID: "BINPERSID"
        case .reduce: "REDUCE"
        case .string: "STRING"
        case .binString: "BINSTRING"
        case .shortBinString: "SHORT_BINSTRING"
        case .unicode: "UNICODE"
        case .binUnicode: "BINUNICODE"
        case .append: "APPEND"
        case .build: "BUILD"
        case .global: "GLOBAL"
        case .dict: "DICT"
        case .emptyDict: "EMPTY_DICT"
        case .appends: "APPENDS"
        case .get: "GET"
        case .binGet: "BINGET"
        case .inst: "INST"
        case .longBinGet: "LONG_BINGET"
        case .list: "LIST"
        case .emptyList: "EMPTY_LIST"
        case .obj: "OBJ"
        case .put: "PUT"
        case .binPut: "BINPUT"
        case .longBinPut: "LONG_BINPUT"
        case .setItem: "SETITEM"
        case .tuple: "TUPLE"
        case .emptyTuple: "EMPTY_TUPLE"
        case .setItems: "SETITEMS"
        case .binFloat: "BINFLOAT"
        case .proto: "PROTO"
        case .newObj: "NEWOBJ"
        case .ext1: "EXT1"
        case .ext2: "EXT2"
        case .ext4: "EXT4"
        case .tuple1: "TUPLE1"
        case .tuple2: "TUPLE2"
        case .tuple3: "TUPLE3"
        case .newTrue: "NEWTRUE"
        case .newFalse: "NEWFALSE"
        case .long1: "LONG1"
        case .long4: "LONG4"
        case .binBytes: "BINBYTES"
        case .shortBinBytes: "SHORT_BINBYTES"
        case .shortBinUnicode: "SHORT_BINUNICODE"
        case .binUnicode8: "BINUNICODE8"
        case .binBytes8: "BINBYTES8"
        case .emptySet: "EMPTY_SET"
        case .addItems: "ADDITEMS"
        case .frozenSet: "FROZENSET"
        case .newObjEx: "NEWOBJ_EX"
        case .stackGlobal: "STACK_GLOBAL"
        case .memoize: "MEMOIZE"
        case .frame: "FRAME"
        case .byteArray8: "BYTEARRAY8"
        case .nextBuffer: "NEXT_BUFFER"
        case .readonlyBuffer: "READONLY_BUFFER"
        }
    }

    /// "opcode 0x81 (NEWOBJ)", or "opcode 0xff (not a pickle opcode)" for a byte that is none.
    static func describe(byte: UInt8) -> String {
        let hex = "0x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
        return "opcode \(hex) (\(PickleOpcode(rawValue: byte)?.name ?? "not a pickle opcode"))"
    }
}
