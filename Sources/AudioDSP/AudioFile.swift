// Reading and writing audio files with libsndfile.
//
// Everything read comes out as Float32 mono at the sample rate the caller asks for: channels are
// averaged, other rates are converted with libsamplerate (see Resampler.swift), and nothing is
// normalised. Files are decoded in blocks, so memory stays bounded by the output; a window of a
// long file is read by seeking close to it instead of decoding from the start.

import Foundation
import CSndFile

/// What a file holds, from its header.
public struct AudioInfo: Equatable, Sendable {
    /// The path the file was opened with.
    public var path: String
    /// Frames per second in the file.
    public var sampleRate: Int
    /// Interleaved channels per frame.
    public var channels: Int
    /// Sample frames in the file.
    public var frames: Int

    /// Header facts as given.
    public init(path: String, sampleRate: Int, channels: Int, frames: Int) {
        self.path = path
        self.sampleRate = sampleRate
        self.channels = channels
        self.frames = frames
    }

    /// Length in seconds.
    public var duration: Double { Double(frames) / Double(sampleRate) }

    /// Number of mono samples a full read at `rate` returns.
    public func length(atSampleRate rate: Int) -> Int {
        Resampler.convertedLength(frames, from: sampleRate, to: rate)
    }
}

/// Sample encoding of a written WAV file.
public enum WAVFormat: Sendable {
    /// 16-bit signed PCM; samples are clamped to [-1, 1] and scaled by 32768 (1.0 becomes 32767).
    case pcm16
    /// 32-bit IEEE float, written as given.
    case float32
}

/// Audio file input and output.
public enum AudioFile {
    /// The largest channel count the mono mixer accepts.
    public static let maximumChannels = 64

    /// Frames decoded per libsndfile call.
    static let blockFrames = 1 << 16

    /// The most samples reserved ahead of decoding: a header's frame count is a claim, and a
    /// damaged one (a FLAC STREAMINFO holds 36 bits) must not allocate gigabytes before the
    /// data runs out. Longer reads grow as they decode.
    static let maximumReservation = 1 << 24

    /// The longest file accepted (about 290 days at 44.1 kHz), so that lengths converted
    /// between rates cannot overflow.
    public static let maximumFrames = 1 << 40

    /// Target-rate samples decoded on each side of a window, so the resampler's filter sees
    /// real signal instead of the edge of the excerpt. The medium sinc filter reaches about 46
    /// zero crossings to each side: 46 target samples when downsampling, 46 source samples
    /// (46 · ratio target samples) when upsampling; the margin is several times that.
    static func windowMargin(from source: Int, to target: Int) -> Int {
        1024 + 256 * (target + source - 1) / source
    }

    /// The file's header: sample rate, channels and length.
    public static func info(_ path: String) throws -> AudioInfo {
        try SoundFileReader(path: path).info
    }

    /// Whether data that ends after `decoded` of the header's `declared` frames is read as if
    /// the rest were silence. Ogg Vorbis headers take the length from the last page's granule
    /// position, and encoders' end trimming leaves some files (three of the hyperrogue-music
    /// tracks) about a hundred frames shorter than that; up to 4096 frames (under 0.1 s at
    /// 44.1 kHz) is a length estimate that is slightly off, more is a cut or damaged file.
    public static func acceptsShortTail(decoded: Int, declared: Int) -> Bool {
        decoded > 0 && decoded <= declared && declared - decoded <= 4096
    }

    /// The whole file as mono samples at `sampleRate` Hz (``AudioInfo/length(atSampleRate:)``
    /// samples).
    public static func read(_ path: String, sampleRate: Int) throws -> [Float] {
        let file = try SoundFileReader(path: path)
        try file.checkConvertible(to: sampleRate)
        let frames = file.info.frames
        if file.info.sampleRate == sampleRate {
            return try file.readMonoExactly(frames)
        }
        let resampler = try StreamingResampler(from: file.info.sampleRate, to: sampleRate)
        let length = file.info.length(atSampleRate: sampleRate)
        var output: [Float] = []
        output.reserveCapacity(min(length + 16, maximumReservation))
        var block: [Float] = []
        var decoded = 0
        while decoded < frames {
            block.removeAll(keepingCapacity: true)
            let count = min(blockFrames, frames - decoded)
            let got = try file.readMono(count, into: &block)
            if got < count {
                try file.padShortTail(decodedFrames: decoded + got, into: &block)
                decoded = frames
            } else {
                decoded += got
            }
            try block.withUnsafeBufferPointer {
                try resampler.process($0, endOfInput: decoded == frames, into: &output)
            }
        }
        Resampler.fitLength(&output, length)
        return output
    }

    /// Samples `offset ..< offset + length` of what ``read(_:sampleRate:)`` would return,
    /// decoding only that part of the file (plus a margin for the resampler) where the format
    /// can seek. Exact for files already at `sampleRate`; within the resampler's numerical noise
    /// (about 1e-6) of the full read otherwise.
    public static func readWindow(_ path: String, sampleRate: Int, offset: Int, length: Int) throws -> [Float] {
        let file = try SoundFileReader(path: path)
        try file.checkConvertible(to: sampleRate)
        let available = file.info.length(atSampleRate: sampleRate)
        guard offset >= 0, length >= 0, offset + length <= available else {
            throw AudioError.windowOutOfRange(path: path, offset: offset, length: length, available: available)
        }
        let source = file.info.sampleRate
        if source == sampleRate {
            try file.seek(to: offset)
            return try file.readMonoExactly(length)
        }
        // Start the excerpt where source and target samples coincide (a multiple of
        // source/gcd frames), so the converter's output grid is the full read's grid.
        let g = gcd(source, sampleRate)
        let sourceBlock = source / g, targetBlock = sampleRate / g   // (frames), (samples)
        let margin = windowMargin(from: source, to: sampleRate)
        let startBlock = max(0, offset - margin) / targetBlock
        let targetStart = startBlock * targetBlock
        let sourceStart = startBlock * sourceBlock
        let targetEnd = offset + length + margin
        let sourceEnd = min(file.info.frames, (targetEnd * sourceBlock + targetBlock - 1) / targetBlock)
        try file.seek(to: sourceStart)
        let excerpt = try file.readMonoExactly(sourceEnd - sourceStart)
        let resampler = try StreamingResampler(from: source, to: sampleRate)
        var converted: [Float] = []
        converted.reserveCapacity(targetEnd - targetStart + 16)
        try excerpt.withUnsafeBufferPointer {
            try resampler.process($0, endOfInput: sourceEnd == file.info.frames, into: &converted)
        }
        let skip = offset - targetStart
        // Only at the very end of a file can the flushed converter come up a sample short.
        Resampler.fitLength(&converted, max(converted.count, skip + length))
        return Array(converted[skip ..< skip + length])
    }

    /// Writes mono `samples` at `sampleRate` Hz as a WAV file, atomically: the data goes to a
    /// temporary file in the same folder, which is then renamed over `path`.
    public static func write(_ path: String, samples: [Float], sampleRate: Int, format: WAVFormat = .pcm16) throws {
        guard sampleRate > 0 else {
            throw AudioError.unwritable(path: path, reason: "sample rate \(sampleRate) Hz is not positive")
        }
        if let bad = samples.firstIndex(where: { !$0.isFinite }) {
            throw AudioError.nonFiniteSample(path: path, index: bad)
        }
        let temporary = temporaryPath(for: path)
        do {
            try writeWAV(temporary, finalPath: path, samples: samples, sampleRate: sampleRate, format: format)
            guard rename(temporary, path) == 0 else {
                throw AudioError.unwritable(path: path, reason: String(cString: strerror(errno)))
            }
        } catch {
            unlink(temporary)
            throw error
        }
    }

    /// A hidden, unique sibling of `path`.
    private static func temporaryPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path
        return "\(folder)/.\(url.lastPathComponent).\(getpid()).\(UInt32.random(in: 0 ... .max)).tmp"
    }

    private static func writeWAV(_ temporary: String, finalPath path: String, samples: [Float], sampleRate: Int,
                                 format: WAVFormat) throws {
        let encoding = format == .pcm16 ? SF_FORMAT_PCM_16 : SF_FORMAT_FLOAT
        var info = SF_INFO(frames: 0, samplerate: Int32(sampleRate), channels: 1,
                           format: Int32(SF_FORMAT_WAV | encoding), sections: 0, seekable: 0)
        guard let handle = sf_open(temporary, Int32(SFM_WRITE), &info) else {
            throw AudioError.unwritable(path: path, reason: String(cString: sf_strerror(nil)))
        }
        var written = 0
        switch format {
        case .pcm16:
            // Our own conversion instead of libsndfile's (which scales by 32767 on write but
            // 1/32768 on read): k/32768 written and read back is exactly k/32768.
            var block = [Int16](repeating: 0, count: blockFrames)
            var start = 0
            while start < samples.count {
                let count = min(blockFrames, samples.count - start)
                for i in 0..<count {
                    let scaled = (min(max(samples[start + i], -1), 1) * 32768).rounded()
                    block[i] = Int16(min(scaled, 32767))
                }
                written += Int(sf_writef_short(handle, block, sf_count_t(count)))
                start += count
            }
        case .float32:
            written = Int(sf_writef_float(handle, samples, sf_count_t(samples.count)))
        }
        let reason = String(cString: sf_strerror(handle))
        let closed = sf_close(handle)
        guard written == samples.count, closed == 0 else {
            throw AudioError.unwritable(path: path, reason: reason)
        }
    }

    private static func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
}

/// An open libsndfile reader with the checks every read makes, and a mono mixer.
final class SoundFileReader {
    let info: AudioInfo
    private let handle: OpaquePointer
    private let seekable: Bool
    private var interleaved: [Float] = []   // (blockFrames, channels)
    /// The frame the next read starts at.
    private var position = 0

    /// Opens `path`, throwing a named error when it is missing, empty, not audio, has no
    /// samples or has a channel count the mixer does not handle.
    init(path: String) throws {
        var status = stat()
        guard stat(path, &status) == 0 else { throw AudioError.missing(path: path) }
        if (status.st_mode & S_IFMT) == S_IFDIR {
            throw AudioError.notAudio(path: path, reason: "it is a folder")
        }
        if status.st_size == 0 { throw AudioError.empty(path: path) }
        var sfInfo = SF_INFO()
        guard let handle = sf_open(path, Int32(SFM_READ), &sfInfo) else {
            throw AudioError.notAudio(path: path, reason: String(cString: sf_strerror(nil)))
        }
        self.handle = handle
        seekable = sfInfo.seekable != 0
        info = AudioInfo(path: path, sampleRate: Int(sfInfo.samplerate), channels: Int(sfInfo.channels),
                         frames: Int(sfInfo.frames))
        guard info.channels >= 1, info.channels <= AudioFile.maximumChannels else {
            throw AudioError.unsupportedChannels(path: path, channels: info.channels)
        }
        guard sfInfo.frames != Int64.max else {   // SF_COUNT_MAX: a stream of unknown length
            throw AudioError.unreadable(path: path, reason: "length unknown (a stream, not a file)")
        }
        guard info.frames > 0 else { throw AudioError.noSamples(path: path) }
        guard info.frames <= AudioFile.maximumFrames else {
            throw AudioError.corrupt(path: path, reason: "header claims \(info.frames) frames, more than \(AudioFile.maximumFrames)")
        }
        guard info.sampleRate > 0 else {
            throw AudioError.unsupportedSampleRate(path: path, rate: info.sampleRate, target: info.sampleRate)
        }
    }

    deinit { sf_close(handle) }

    /// Throws unless the file's rate can be converted to `rate`.
    func checkConvertible(to rate: Int) throws {
        guard info.sampleRate == rate || Resampler.canConvert(from: info.sampleRate, to: rate) else {
            throw AudioError.unsupportedSampleRate(path: info.path, rate: info.sampleRate, target: rate)
        }
    }

    /// Moves to `frame`, by seeking where the format allows and by decoding otherwise.
    func seek(to frame: Int) throws {
        if seekable {
            guard sf_seek(handle, sf_count_t(frame), Int32(SEEK_SET)) == frame else {
                throw AudioError.corrupt(path: info.path, reason: "cannot seek to frame \(frame): "
                                         + String(cString: sf_strerror(handle)))
            }
            position = frame
            return
        }
        var skipped = 0
        var discard: [Float] = []
        while skipped < frame {
            discard.removeAll(keepingCapacity: true)
            let got = try readMono(min(AudioFile.blockFrames, frame - skipped), into: &discard)
            guard got > 0 else { throw truncated(at: skipped) }
            skipped += got
        }
    }

    /// Decodes up to `count` frames from the current position, appending their channel mean to
    /// `output`; returns the number of frames decoded (fewer only at the end of the data).
    func readMono(_ count: Int, into output: inout [Float]) throws -> Int {
        let channels = info.channels
        if interleaved.count < AudioFile.blockFrames * channels {
            interleaved = [Float](repeating: 0, count: AudioFile.blockFrames * channels)
        }
        var total = 0
        while total < count {
            let want = min(AudioFile.blockFrames, count - total)
            let got = Int(interleaved.withUnsafeMutableBufferPointer {
                sf_readf_float(handle, $0.baseAddress!, sf_count_t(want))
            })
            if sf_error(handle) != 0 {
                throw AudioError.corrupt(path: info.path, reason: String(cString: sf_strerror(handle)))
            }
            if got <= 0 { break }
            try interleaved.withUnsafeBufferPointer {
                // Float files can hold NaN or infinity, which would poison every code and loss.
                if let bad = firstNonFinite($0.baseAddress!, count: got * channels) {
                    throw AudioError.nonFiniteInput(path: info.path, frame: position + bad / channels)
                }
                mixToMono($0.baseAddress!, frames: got, channels: channels, into: &output)
            }
            position += got
            total += got
            if got < want { break }
        }
        return total
    }

    /// Exactly `count` mono frames from the current position, or a `corrupt` error. A read that
    /// reaches the file's end a few frames early is completed with silence (see
    /// ``AudioFile/acceptsShortTail(decoded:declared:)``).
    func readMonoExactly(_ count: Int) throws -> [Float] {
        var output: [Float] = []
        output.reserveCapacity(min(count, AudioFile.maximumReservation))
        let start = Int(sf_seek(handle, 0, Int32(SEEK_CUR)))
        let got = try readMono(count, into: &output)
        if got < count {
            // Only a read that was meant to reach the end may be completed.
            guard start >= 0, start + count == info.frames else { throw truncated(at: start + got) }
            try padShortTail(decodedFrames: start + got, into: &output)
        }
        return output
    }

    /// Completes `output` with silence up to the header's frame count when the data ended
    /// after `decodedFrames` frames and the shortfall is small enough to accept; throws the
    /// `corrupt` error otherwise. `output` holds the frames of the current block.
    func padShortTail(decodedFrames: Int, into output: inout [Float]) throws {
        guard AudioFile.acceptsShortTail(decoded: decodedFrames, declared: info.frames) else {
            throw truncated(at: decodedFrames)
        }
        output.append(contentsOf: repeatElement(0, count: info.frames - decodedFrames))
    }

    /// The error for data that ends before the header's frame count.
    func truncated(at frame: Int) -> AudioError {
        .corrupt(path: info.path, reason: "data ends at frame \(frame) of \(info.frames)")
    }

    /// Index of the first NaN or infinite value of `x`, if any. Each block of 1024 is checked
    /// with one branch-free sum of `x[i] · 0` (0 for finite values, NaN otherwise); only a
    /// block whose sum is NaN is searched.
    private func firstNonFinite(_ x: UnsafePointer<Float>, count: Int) -> Int? {
        var start = 0
        while start < count {
            let end = min(start + 1024, count)
            var sum: Float = 0
            for i in start..<end { sum += x[i] * 0 }
            if sum != 0 {
                for i in start..<end where !x[i].isFinite { return i }
            }
            start = end
        }
        return nil
    }

    /// Appends the mean of each frame's channels.
    private func mixToMono(_ x: UnsafePointer<Float>, frames: Int, channels: Int, into output: inout [Float]) {
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: frames))
        output.withUnsafeMutableBufferPointer { buffer in
            let y = buffer.baseAddress! + start   // (frames)
            switch channels {
            case 1:
                y.update(from: x, count: frames)
            case 2:
                for i in 0..<frames { y[i] = (x[2 * i] + x[2 * i + 1]) * 0.5 }
            default:
                let scale = 1 / Float(channels)
                for i in 0..<frames {
                    var sum: Float = 0
                    for c in 0..<channels { sum += x[i * channels + c] }
                    y[i] = sum * scale
                }
            }
        }
    }
}
