// What the VQ-VAE and prior trainers do around their own forward pass: stop on a non-finite
// loss or gradient (keeping the last good checkpoint), clip and step the optimizer, decide
// which steps log and evaluate, and checkpoint periodically and on Ctrl-C.

import Foundation
import TensorCore

/// How a training run ended.
public enum TrainingOutcome: Equatable {
    /// Reached the requested step.
    case finished(step: Int)
    /// Stopped by Ctrl-C after writing a checkpoint at `step`.
    case interrupted(step: Int)
}

/// A training error: a non-finite loss, or bad input.
public struct TrainingError: Error, CustomStringConvertible {
    public let description: String
}

/// The schedule fields every training config shares.
public protocol TrainingSchedule {
    var gradientClip: Float { get }
    var checkpointEvery: Int { get }
    var evalEvery: Int { get }
    var logEvery: Int { get }
}

/// The bookkeeping of one call to a trainer's `train(totalSteps:)`.
public struct TrainingLoop {
    public let run: RunDirectory
    public let schedule: TrainingSchedule
    public let totalSteps: Int
    private let startTime = Date()
    private var lastLogTime = Date()
    private var lastLogStep: Int

    public init(run: RunDirectory, schedule: TrainingSchedule, totalSteps: Int, startStep: Int) {
        self.run = run
        self.schedule = schedule
        self.totalSteps = totalSteps
        lastLogStep = startStep
    }

    /// Throws a one-line error naming the run and the checkpoint that is kept when `value`
    /// (the loss or gradient norm of step `step`) is not finite.
    public func requireFinite(_ value: Float, _ what: String, step: Int) throws {
        guard !value.isFinite else { return }
        throw TrainingError(description: "\(run.path): \(what) became \(value) at step \(step); stopped, "
            + "the last good checkpoint (step \(Checkpoint.stepOf(run.checkpointPath))) is kept")
    }

    /// After backward: clips the gradients to the global norm, checks it, and updates.
    /// Returns the learning rate used and the norm before clipping.
    public func update(_ optimizer: Adam, step: Int) throws -> (learningRate: Float, gradientNorm: Float) {
        let norm = clipGradientNorm(optimizer.parameters, maxNorm: schedule.gradientClip)
        try requireFinite(norm, "the gradient norm", step: step)
        let lr = optimizer.currentLearningRate
        optimizer.update()
        return (lr, norm)
    }

    /// Whether step `step` measures the held-out data.
    public func isEvalStep(_ step: Int) -> Bool {
        schedule.evalEvery > 0 && (step % schedule.evalEvery == 0 || step == totalSteps)
    }

    /// Whether step `step` logs (always when it evaluated).
    public func isLogStep(_ step: Int, evaluated: Bool) -> Bool {
        step % schedule.logEvery == 0 || step == totalSteps || evaluated
    }

    /// The figures every log row starts with, and the steps per second since the last log.
    public mutating func logFields(step: Int, loss: Float, lossName: String, learningRate: Float,
                            gradientNorm: Float) -> (row: [String: Any], stepsPerSecond: Double) {
        let now = Date()
        let rate = Double(step - lastLogStep) / Swift.max(now.timeIntervalSince(lastLogTime), 1e-9)
        lastLogTime = now
        lastLogStep = step
        let row: [String: Any] = ["step": step, lossName: rounded(loss), "lr": rounded(learningRate),
                                  "grad_norm": rounded(gradientNorm), "steps_per_s": rounded(Float(rate)),
                                  "elapsed_s": rounded(Float(now.timeIntervalSince(startTime)))]
        return (row, rate)
    }

    /// After step `step`: on Ctrl-C saves and returns `.interrupted`; saves every
    /// `checkpoint_every` steps (the final save is the caller's).
    public func afterStep(_ step: Int, save: () throws -> Void) throws -> TrainingOutcome? {
        if Interrupt.requested {
            try save()
            return .interrupted(step: step)
        }
        if step % schedule.checkpointEvery == 0 && step < totalSteps { try save() }
        return nil
    }
}

/// Checks Adam's settings as every training config states them (keys under `train.`).
public func validateAdamSettings(learningRate: Float, beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float,
                                 gradientClip: Float, warmupSteps: Int) throws {
    if !(learningRate > 0 && learningRate.isFinite) { throw ConfigError("key 'train.learning_rate' must be positive and finite") }
    if !(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1) { throw ConfigError("keys 'train.beta1' and 'train.beta2' must be in [0, 1)") }
    if !(epsilon > 0 && epsilon.isFinite) || !weightDecay.isFinite || !(gradientClip > 0) {
        throw ConfigError("keys 'train.epsilon' and 'train.gradient_clip' must be positive, 'train.weight_decay' finite")
    }
    if warmupSteps < 0 { throw ConfigError("key 'train.warmup_steps' must be ≥ 0") }
}
