// What `jukebox-fuzz` does in an ordinary build: replays files through a fuzz target, and writes
// the audio seeds that `scripts/fuzz.sh` cannot make with the `jukebox` command.

import Foundation
import FuzzTargets
import CSndFile
import JukeboxKit
import AudioDSP

/// The files given, with folders expanded to their files (sorted, not recursive).
func inputFiles(_ paths: [String]) throws -> [String] {
    try paths.flatMap { path -> [String] in
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue else { return [path] }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            throw ReplayError("\(path): cannot list the folder (\(error.localizedDescription))")
        }
        return names.filter { !$0.hasPrefix(".") }.sorted().map { path + "/" + $0 }
    }
}

/// Runs every file through `target`, printing whether the reader accepted or rejected it. A
/// reader that traps ends the process, naming the file it was reading. Returns the file count.
func replay(_ target: FuzzTarget, files: [String], verbose: Bool) throws -> Int {
    var rejected = 0
    for file in files {
        guard let bytes = FileManager.default.contents(atPath: file) else {
            throw ReplayError("\(file): cannot read")
        }
        if verbose { FileHandle.standardError.write(Data("\(file): \(bytes.count) bytes\n".utf8)) }
        if let error = target.run(bytes) {
            rejected += 1
            if verbose { print("\(file): rejected: \(error)") }
        } else if verbose {
            print("\(file): accepted")
        }
    }
    print("\(target.rawValue): \(files.count) files replayed, \(files.count - rejected) accepted, \(rejected) rejected, none crashed")
    return files.count
}

/// Short tones in every encoding libsndfile writes that jukebox may meet: the audio seeds.
func writeAudioSeeds(into folder: String) throws {
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let formats: [(name: String, format: Int32, rate: Int, channels: Int)] = [
        ("pcm16.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 8000, 1),
        ("float-stereo.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 44100, 2),
        ("pcm24.aiff", SF_FORMAT_AIFF | SF_FORMAT_PCM_24, 22050, 1),
        ("ulaw.au", SF_FORMAT_AU | SF_FORMAT_ULAW, 8000, 1),
        ("pcm16-3ch.w64", SF_FORMAT_W64 | SF_FORMAT_PCM_16, 16000, 3),
        ("pcm16.caf", SF_FORMAT_CAF | SF_FORMAT_PCM_16, 8000, 1),
        ("pcm16.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 8000, 1),
        ("stereo.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_24, 44100, 2),
        ("vorbis.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 8000, 1),
        ("ima-adpcm.wav", SF_FORMAT_WAV | SF_FORMAT_IMA_ADPCM, 8000, 1),
    ].map { ($0.0, Int32($0.1), $0.2, $0.3) }
    let frames = 1024
    for (name, format, rate, channels) in formats {
        // A 440 Hz tone, a little louder in each further channel.
        let samples = (0 ..< frames * channels).map { i in
            Float(0.3 + 0.1 * Double(i % channels)) * Float(sin(2 * Double.pi * 440 * Double(i / channels) / Double(rate)))
        }
        var info = SF_INFO(frames: 0, samplerate: Int32(rate), channels: Int32(channels), format: format,
                           sections: 0, seekable: 0)
        let path = folder + "/" + name
        guard let file = sf_open(path, Int32(SFM_WRITE), &info) else {
            throw ReplayError("\(path): libsndfile cannot write it: \(String(cString: sf_strerror(nil)))")
        }
        let written = sf_writef_float(file, samples, sf_count_t(frames))
        sf_close(file)
        guard written == frames else { throw ReplayError("\(path): wrote \(written) of \(frames) frames") }
    }
}

/// Four seconds of a chord at 8 kHz, mono: enough for the tiny test models to train on, so that
/// `scripts/fuzz.sh` can make checkpoints, codes and a bundle to seed their readers with.
func writeTrainingAudio(to path: String) throws {
    let rate = 8000
    let samples = (0 ..< 4 * rate).map { i in
        let t = Double(i) / Double(rate)
        return Float(0.2 * (sin(2 * .pi * 220 * t) + sin(2 * .pi * 277 * t) + sin(2 * .pi * 330 * t)))
    }
    try AudioFile.write(path, samples: samples, sampleRate: rate)
}

struct ReplayError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
