// Melodies for the melody VAE: every MIDI file under the sources, read with the MIDI target,
// bars aligned on abc2midi's accented downbeats where the file has them, one melody per
// instrument, cut into 2-bar windows. Training draws windows uniformly with a random
// transposition (±5 semitones in the reference); held-out figures use fixed windows.
//
// A folder holding `train/` (and `validation/`, `test/`) is read as the split that
// `scripts/melody-data.sh` writes; any other sources are split 90/10 by a hash of each file's
// name.

import Foundation
import TensorCore
import ModelKit
import MIDI

/// 2-bar melody windows, split into training and held-out.
public struct MelodyDataset {
    /// Windows of `steps` events (the 1-bar hop of the reference's training slices).
    public let train: [Melody]
    /// Non-overlapping windows of held-out melodies.
    public let heldOut: [Melody]
    /// Files read, and files skipped with the reason.
    public let files: Int
    public let skipped: [String]

    /// Reads `sources` (folders searched recursively, or MIDI files). Windows that hold no
    /// note are left out.
    public init(sources: [String], steps: Int, log: (String) -> Void = { _ in }) throws {
        let split = try MelodyDataset.splitMelodies(sources: sources, log: log)
        train = split.train.flatMap { $0.slices(steps: steps) }.filter { !$0.isSilent }
        heldOut = split.heldOut.flatMap { $0.chunks(steps: steps) }.filter { !$0.isSilent }
        files = split.files
        skipped = split.skipped
        guard !train.isEmpty else {
            throw ConfigError("\(sources.joined(separator: ", ")): no melody of \(steps) steps with a note in \(split.files) files")
        }
    }

    /// The melodies of the training and held-out files of `sources`, whole.
    public static func splitMelodies(sources: [String], log: (String) -> Void = { _ in })
        throws -> (train: [Melody], heldOut: [Melody], files: Int, skipped: [String]) {
        var trainFiles: [String] = [], heldOutFiles: [String] = []
        for source in sources {
            let split = (source as NSString).appendingPathComponent("train")
            if isFolder(split) {
                trainFiles += try midiFiles(in: split)
                let validation = (source as NSString).appendingPathComponent("validation")
                if isFolder(validation) { heldOutFiles += try midiFiles(in: validation) }
            } else {
                for file in try midiFiles(in: source) {
                    if isHeldOut(file) { heldOutFiles.append(file) } else { trainFiles.append(file) }
                }
            }
        }
        guard !trainFiles.isEmpty else {
            throw ConfigError("\(sources.joined(separator: ", ")): no MIDI files (.mid, .midi) to train on")
        }
        var skipped: [String] = []
        func melodies(_ files: [String]) throws -> [Melody] {
            var out: [Melody] = []
            for file in files {
                do {
                    out += try MelodyDataset.melodies(of: file)
                } catch let error as DownbeatError {
                    skipped.append("\(file): \(error)")
                }
            }
            return out
        }
        let train = try melodies(trainFiles), heldOut = try melodies(heldOutFiles)
        if !skipped.isEmpty { log("skipped \(skipped.count) file\(skipped.count == 1 ? "" : "s") without a clear downbeat, e.g. \(skipped[0])") }
        return (train, heldOut, trainFiles.count + heldOutFiles.count, skipped)
    }

    /// The melodies of one file. Files from abc2midi (accented bar starts) are aligned on their
    /// downbeats; files without accents keep bars from their start. A 2/4 piece is read in
    /// pairs of bars (16 steps, as MusicVAE needs), the pairs starting at its first accented
    /// downbeat.
    public static func melodies(of path: String) throws -> [Melody] {
        var file = try MIDIFile.read(path: path)
        let twoFour = file.timeSignatureMap.allSatisfy { $0.numerator == 2 && $0.denominator == 4 }
        var phase = 0
        do {
            if twoFour {
                // Accents every 8 steps: their phase within a 2/4 bar, then the first accented
                // onset on that phase starts the first pair.
                let barPhase = try Melody.downbeatPhase(of: file, barSteps: Melody.stepsPerBar / 2)
                phase = firstAccentStep(of: file, phase: barPhase, barSteps: Melody.stepsPerBar / 2) % Melody.stepsPerBar
                file = asPairsOfBars(file)
            } else {
                phase = try Melody.downbeatPhase(of: file)
            }
        } catch DownbeatError.noAccents {
            phase = 0
            if twoFour { file = asPairsOfBars(file) }
        }
        return Melody.extract(from: file, downbeatPhase: phase)
    }

    /// ``melodies(of:)``, with a tune whose accents give no consistent downbeat left out (as
    /// training leaves it out); any other problem with the file is an error.
    public static func melodiesSkippingUnclearDownbeats(of path: String) throws -> [Melody] {
        do {
            return try melodies(of: path)
        } catch is DownbeatError {
            return []
        }
    }

    /// The step of the first velocity-105 onset on `phase` (mod `barSteps`), or `phase`.
    static func firstAccentStep(of file: MIDIFile, phase: Int, barSteps: Int) -> Int {
        var first: Int?
        for track in file.tracks {
            for timed in track.events {
                guard case let .noteOn(channel, _, velocity) = timed.event, channel != 9, velocity == 105 else { continue }
                let step = (timed.tick * Melody.stepsPerQuarter * 2 + file.ticksPerQuarter) / (2 * file.ticksPerQuarter)
                if step % barSteps == phase { first = Swift.min(first ?? step, step) }
            }
        }
        return first ?? phase
    }

    /// `file` with its 2/4 time signatures read as 4/4: bars taken two at a time.
    static func asPairsOfBars(_ file: MIDIFile) -> MIDIFile {
        var out = file
        for t in out.tracks.indices {
            for e in out.tracks[t].events.indices {
                if case let .timeSignature(2, 2, clocks, thirtySeconds) = out.tracks[t].events[e].event {
                    out.tracks[t].events[e].event = .timeSignature(numerator: 4, denominatorPower: 2, clocksPerClick: clocks,
                                                                   thirtySecondsPerQuarter: thirtySeconds)
                }
            }
        }
        return out
    }

    /// MIDI files under `path` (a folder, searched recursively, or one file), sorted.
    public static func midiFiles(in path: String) throws -> [String] {
        guard FileManager.default.fileExists(atPath: path) else { throw ConfigError("\(path): no such file or folder") }
        guard isFolder(path) else { return [path] }
        let walker = FileManager.default.enumerator(atPath: path)
        var out: [String] = []
        while let relative = walker?.nextObject() as? String {
            let lower = relative.lowercased()
            if lower.hasSuffix(".mid") || lower.hasSuffix(".midi") { out.append((path as NSString).appendingPathComponent(relative)) }
        }
        return out.sorted()
    }

    static func isFolder(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    /// One file in ten is held out, by an FNV-1a hash of its file name.
    static func isHeldOut(_ path: String) -> Bool {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in URL(fileURLWithPath: path).lastPathComponent.utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return h % 10 == 0
    }

    /// `batch` random training windows, each transposed by a uniform shift in
    /// −transpose...transpose semitones (no shift when that one would leave the pitch range),
    /// as `(batch·steps)` events.
    public func sampleBatch(batch: Int, transpose: Int, generator: inout RandomGenerator) -> [Int32] {
        var events: [Int32] = []
        for _ in 0..<batch {
            let window = train[generator.int(below: train.count)]
            let shift = transpose > 0 ? generator.int(below: 2 * transpose + 1) - transpose : 0
            let melody = window.transposed(by: shift) ?? window
            events += melody.events.map { Int32($0) }
        }
        return events
    }
}

/// What a folder of MIDI files holds, in the units the melody models use.
public struct MelodyCounts {
    public var files = 0, melodies = 0, chunks = 0, windows = 0, skipped = 0

    /// Counts every MIDI file under `folder`.
    public init(folder: String, steps: Int = 32) throws {
        for file in try MelodyDataset.midiFiles(in: folder) {
            files += 1
            do {
                let found = try MelodyDataset.melodies(of: file)
                melodies += found.count
                chunks += found.reduce(0) { $0 + $1.chunks(steps: steps).filter { !$0.isSilent }.count }
                windows += found.reduce(0) { $0 + $1.slices(steps: steps).filter { !$0.isSilent }.count }
            } catch is DownbeatError {
                skipped += 1
            }
        }
    }
}
