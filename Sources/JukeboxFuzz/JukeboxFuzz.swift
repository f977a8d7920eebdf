// jukebox-fuzz: the fuzz targets of `FuzzTarget`, as a libFuzzer binary or as a replay tool.
//
// Built by `make fuzz` with `-sanitize=fuzzer,address -D FUZZING`, it is a libFuzzer binary:
// libFuzzer supplies `main` and calls `LLVMFuzzerTestOneInput` for every input, on the target
// that `JUKEBOX_FUZZ_TARGET` (or an argument `--target=NAME`) names. In the ordinary build it
// replays files through a target, which is how a crash that libFuzzer saved is reproduced
// and checked once fixed.

import Foundation
import FuzzTargets
import JukeboxKit

let usage = """
    usage: jukebox-fuzz TARGET FILE|FOLDER...   replay files through a reader, one line each
           jukebox-fuzz --list                  the targets
           jukebox-fuzz --audio-seeds FOLDER    write short tones in every encoding read (seeds)
           jukebox-fuzz --training-audio FILE   write 4 s of a chord at 8 kHz (to train seed models)
    targets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))
    """

#if FUZZING

nonisolated(unsafe) var fuzzTarget: FuzzTarget?

/// Chooses the target once, before the first input.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(_ argc: UnsafeMutablePointer<CInt>,
                             _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>) -> CInt {
    let arguments = (0 ..< Int(argc.pointee)).compactMap { argv.pointee[$0].map { String(cString: $0) } }
    let name = arguments.last { $0.hasPrefix("--target=") }.map { String($0.dropFirst("--target=".count)) }
        ?? ProcessInfo.processInfo.environment["JUKEBOX_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget(rawValue: name) else {
        FileHandle.standardError.write(Data("jukebox-fuzz: set JUKEBOX_FUZZ_TARGET or --target= to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")) (got '\(name)')\n".utf8))
        exit(2)
    }
    fuzzTarget = target
    return 0
}

/// One execution: a thrown error is a correct answer; only a crash is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    fuzzTarget!.run(Data(bytes: data, count: size))
    return 0
}

#else

@main
struct JukeboxFuzz {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            switch arguments.first {
            case "--list":
                print(FuzzTarget.allCases.map(\.rawValue).joined(separator: "\n"))
            case "--audio-seeds" where arguments.count == 2:
                try writeAudioSeeds(into: arguments[1])
            case "--training-audio" where arguments.count == 2:
                try writeTrainingAudio(to: arguments[1])
            case let name? where arguments.count >= 2:
                guard let target = FuzzTarget(rawValue: name) else { throw ReplayError("unknown target '\(name)'\n\(usage)") }
                let verbose = ProcessInfo.processInfo.environment["JUKEBOX_FUZZ_QUIET"] == nil
                _ = try replay(target, files: try inputFiles(Array(arguments.dropFirst())), verbose: verbose)
            default:
                print(usage)
                exit(arguments.isEmpty ? 0 : 2)
            }
        } catch {
            FileHandle.standardError.write(Data("jukebox-fuzz: \(error)\n".utf8))
            exit(1)
        }
    }
}

#endif
