// Random crops of a dataset, decoded on a background thread a few batches ahead of the trainer.
//
// Shape legend: B batch, L sample length.
//
// Determinism: only the background thread draws from the loader's generator, always B crops per
// batch in order, before decoding them. Batch i is therefore the same whatever the timing, and
// the generator state after batch i (kept with the batch) is where a resumed run continues.

import Foundation
import TensorCore

/// Draws crop positions uniformly over every valid (file, offset) pair of a split, so every
/// sample of the data is equally likely to be trained on whatever the file lengths.
public struct CropSampler: Sendable {
    /// Running totals of valid offsets: file i owns positions ends[i-1] ..< ends[i].
    private let ends: [Int]

    /// A sampler over `entries` for crops of `sampleLength` samples (every entry must be at
    /// least that long).
    public init(entries: [AudioDataset.Entry], sampleLength: Int) {
        var total = 0
        ends = entries.map { entry in
            precondition(entry.length >= sampleLength, "CropSampler: \(entry.path) is shorter than a crop")
            total += entry.length - sampleLength + 1
            return total
        }
    }

    /// One crop: the entry's index and the offset in samples. Uses one generator draw.
    public func draw(_ generator: inout RandomGenerator) -> (entry: Int, offset: Int) {
        let position = generator.int(below: ends.last!)
        var lo = 0, hi = ends.count - 1
        while lo < hi {                                // first i with ends[i] > position
            let mid = (lo + hi) / 2
            if ends[mid] > position { hi = mid } else { lo = mid + 1 }
        }
        return (lo, position - (lo == 0 ? 0 : ends[lo - 1]))
    }
}

/// Batches of random crops, (B, L), prepared ahead on a background thread.
public final class AudioLoader {
    /// Crops per batch.
    public let batchSize: Int
    /// Samples per crop (the dataset's `sampleLength`).
    public let sampleLength: Int
    /// Generator state after the last batch returned by ``next()`` (the initial state before
    /// the first). Save it with a checkpoint; ``init(dataset:split:batchSize:generatorState:prefetch:)``
    /// continues with exactly the next batch.
    public private(set) var generatorState: [UInt64]

    private let pipeline: LoaderPipeline

    /// A loader whose crops are determined by `seed`.
    public convenience init(dataset: AudioDataset, split: AudioDataset.Split = .train, batchSize: Int,
                            seed: UInt64, prefetch: Int = 3) {
        self.init(dataset: dataset, split: split, batchSize: batchSize,
                  generatorState: RandomGenerator(seed: seed).stateWords, prefetch: prefetch)
    }

    /// A loader continuing from a saved ``generatorState``. Keeps up to `prefetch` batches ready.
    public init(dataset: AudioDataset, split: AudioDataset.Split = .train, batchSize: Int,
                generatorState: [UInt64], prefetch: Int = 3) {
        let entries = dataset.entries(split)
        precondition(!entries.isEmpty, "AudioLoader: the \(split) split has no files")
        precondition(batchSize >= 1 && prefetch >= 1, "AudioLoader: batchSize and prefetch must be positive")
        self.batchSize = batchSize
        self.sampleLength = dataset.sampleLength
        self.generatorState = generatorState
        pipeline = LoaderPipeline(capacity: prefetch)
        let job = CropJob(entries: entries, sampler: CropSampler(entries: entries, sampleLength: dataset.sampleLength),
                          sampleRate: dataset.sampleRate, sampleLength: dataset.sampleLength, batchSize: batchSize)
        let pipeline = self.pipeline
        let thread = Thread { [generatorState] in
            var generator = RandomGenerator(stateWords: generatorState)
            while pipeline.waitForRoom() {
                let picks = (0..<job.batchSize).map { _ in job.sampler.draw(&generator) }
                let state = generator.stateWords
                pipeline.deliver(Result { try job.decode(picks) }, state: state)
            }
        }
        thread.name = "jukebox-audio-loader"
        thread.start()
    }

    deinit { pipeline.stop() }

    /// The next batch, (B, L); waits if the background thread has not finished it. Throws the
    /// error of a crop that failed to decode (the following batches are unaffected).
    public func next() throws -> Tensor {
        let (batch, state) = pipeline.take()
        generatorState = state
        return try batch.get()
    }
}

/// What the background thread needs to make a batch.
private struct CropJob {
    let entries: [AudioDataset.Entry]
    let sampler: CropSampler
    let sampleRate: Int
    let sampleLength: Int
    let batchSize: Int

    /// Decodes the crops into one (B, L) tensor.
    func decode(_ picks: [(entry: Int, offset: Int)]) throws -> Tensor {
        let batch = Tensor(uninitializedShape: [picks.count, sampleLength])   // (B, L)
        for (b, pick) in picks.enumerated() {
            let samples = try AudioFile.readWindow(entries[pick.entry].path, sampleRate: sampleRate,
                                                   offset: pick.offset, length: sampleLength)
            samples.withUnsafeBufferPointer { (batch.data + b * sampleLength).update(from: $0.baseAddress!, count: sampleLength) }
        }
        return batch
    }
}

/// A bounded queue of prepared batches between the loader thread and the trainer.
private final class LoaderPipeline: @unchecked Sendable {
    private let condition = NSCondition()
    private var ready: [(Result<Tensor, Error>, [UInt64])] = []
    private var stopped = false
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    /// Blocks while the queue is full; false once the loader is gone.
    func waitForRoom() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while ready.count >= capacity && !stopped { condition.wait() }
        return !stopped
    }

    func deliver(_ batch: Result<Tensor, Error>, state: [UInt64]) {
        condition.lock()
        ready.append((batch, state))
        condition.broadcast()
        condition.unlock()
    }

    /// Blocks until a batch is ready and removes it.
    func take() -> (Result<Tensor, Error>, [UInt64]) {
        condition.lock()
        defer { condition.unlock() }
        while ready.isEmpty { condition.wait() }
        let first = ready.removeFirst()
        condition.broadcast()
        return first
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }
}
