// Errors from reading, writing and analysing audio; each names the file and the problem.

import Foundation

/// A problem with an audio file or signal, reported to the user in one line
/// (`PATH: what is wrong`).
public enum AudioError: Error, CustomStringConvertible, Equatable {
    /// The file could not be read for a reason not covered below.
    case unreadable(path: String, reason: String)
    /// The file (or its temporary sibling) could not be written.
    case unwritable(path: String, reason: String)
    /// A signal passed in memory is unusable (no file involved).
    case invalidSignal(String)
    /// No file at the path.
    case missing(path: String)
    /// The file exists but holds zero bytes.
    case empty(path: String)
    /// libsndfile does not recognise the file as audio (or the path is a folder).
    case notAudio(path: String, reason: String)
    /// The file is audio but holds no sample frames.
    case noSamples(path: String)
    /// The file's sample rate cannot be used or converted to the requested one.
    case unsupportedSampleRate(path: String, rate: Int, target: Int)
    /// The file's channel count is outside what the mixer handles.
    case unsupportedChannels(path: String, channels: Int)
    /// Decoding failed part way through the file.
    case corrupt(path: String, reason: String)
    /// A requested window lies outside the file.
    case windowOutOfRange(path: String, offset: Int, length: Int, available: Int)
    /// A decoded sample is NaN or infinite (`frame` counts from the file's start).
    case nonFiniteInput(path: String, frame: Int)
    /// A sample to be written is NaN or infinite.
    case nonFiniteSample(path: String, index: Int)
    /// A dataset has no file long enough to crop from.
    case noUsableAudio(sources: [String], reason: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): "\(path): \(reason)"
        case .unwritable(let path, let reason): "\(path): \(reason)"
        case .invalidSignal(let reason): reason
        case .missing(let path): "\(path): no such file"
        case .empty(let path): "\(path): file is empty"
        case .notAudio(let path, let reason): "\(path): not an audio file (\(reason))"
        case .noSamples(let path): "\(path): audio has no samples"
        case .unsupportedSampleRate(let path, let rate, let target):
            "\(path): sample rate \(rate) Hz cannot be converted to \(target) Hz"
        case .unsupportedChannels(let path, let channels):
            "\(path): \(channels) channels are not supported (1 to \(AudioFile.maximumChannels))"
        case .corrupt(let path, let reason): "\(path): corrupt audio (\(reason))"
        case .windowOutOfRange(let path, let offset, let length, let available):
            "\(path): window \(offset)..<\(offset + length) is outside the \(available) samples of the file"
        case .nonFiniteInput(let path, let frame): "\(path): frame \(frame) holds a NaN or infinite sample"
        case .nonFiniteSample(let path, let index): "\(path): sample \(index) is NaN or infinite, nothing written"
        case .noUsableAudio(let sources, let reason):
            "\(sources.joined(separator: ", ")): no usable audio (\(reason))"
        }
    }
}
