import Foundation

// Tempo and time-signature maps: the Set Tempo and Time Signature events of every track (in
// format 1 they normally sit in track 0), in time order. Before the first event of each kind the
// standard's defaults hold: 120 quarters per minute and 4/4.

/// A tempo that holds from `tick` until the next change.
public struct TempoChange: Equatable, Sendable {
    /// Ticks from the start of the file.
    public var tick: Int
    /// Microseconds per quarter note, as the file stores it.
    public var microsecondsPerQuarter: Int

    /// A tempo of `microsecondsPerQuarter` from `tick`.
    public init(tick: Int, microsecondsPerQuarter: Int) {
        self.tick = tick
        self.microsecondsPerQuarter = microsecondsPerQuarter
    }

    /// Quarter notes per minute.
    public var quartersPerMinute: Double { 60_000_000 / Double(microsecondsPerQuarter) }
}

/// A time signature that holds from `tick` until the next change.
public struct TimeSignatureChange: Equatable, Sendable {
    /// Ticks from the start of the file.
    public var tick: Int
    /// Beats per bar.
    public var numerator: Int
    /// The beat's note value: 4 is a quarter, 8 an eighth.
    public var denominator: Int

    /// A time signature of `numerator`/`denominator` from `tick`.
    public init(tick: Int, numerator: Int, denominator: Int) {
        self.tick = tick
        self.numerator = numerator
        self.denominator = denominator
    }

    /// The length of a bar in quarter notes.
    public var quartersPerBar: Double { Double(numerator) * 4 / Double(denominator) }
}

extension MIDIFile {
    /// The tempo at 120 quarters per minute that holds before a file's first Set Tempo event.
    public static let defaultMicrosecondsPerQuarter = 500_000

    /// Every tempo change, in tick order, starting with the default at tick 0 unless the file
    /// sets a tempo there; of several changes at one tick the last (in track order) wins.
    public var tempoMap: [TempoChange] {
        var changes = [TempoChange(tick: 0, microsecondsPerQuarter: MIDIFile.defaultMicrosecondsPerQuarter)]
        for case let (tick, .tempo(microseconds)) in allEventsInTickOrder() {
            if changes.last?.tick == tick { changes.removeLast() }
            changes.append(TempoChange(tick: tick, microsecondsPerQuarter: microseconds))
        }
        return changes
    }

    /// Every time-signature change, in tick order, starting with 4/4 at tick 0 unless the file
    /// sets one there; of several changes at one tick the last (in track order) wins.
    public var timeSignatureMap: [TimeSignatureChange] {
        var changes = [TimeSignatureChange(tick: 0, numerator: 4, denominator: 4)]
        for case let (tick, .timeSignature(numerator, power, _, _)) in allEventsInTickOrder() {
            if changes.last?.tick == tick { changes.removeLast() }
            // A power above 30 means nothing musical; clamp so the denominator stays an Int.
            changes.append(TimeSignatureChange(tick: tick, numerator: Int(numerator),
                                               denominator: 1 << min(Int(power), 30)))
        }
        return changes
    }

    /// The tempo in force at `tick`.
    public func tempo(atTick tick: Int) -> TempoChange {
        let map = tempoMap
        return map.last { $0.tick <= tick } ?? map[0]
    }

    /// The time signature in force at `tick`.
    public func timeSignature(atTick tick: Int) -> TimeSignatureChange {
        let map = timeSignatureMap
        return map.last { $0.tick <= tick } ?? map[0]
    }

    /// The time in seconds of `tick`, following the tempo map.
    public func seconds(atTick tick: Int) -> Double {
        let map = tempoMap
        var seconds = 0.0
        for (index, change) in map.enumerated() where change.tick < tick {
            let end = index + 1 < map.count ? min(map[index + 1].tick, tick) : tick
            seconds += Double(end - change.tick) * Double(change.microsecondsPerQuarter)
                / (1_000_000 * Double(ticksPerQuarter))
        }
        return seconds
    }

    /// The events of all tracks merged by tick; at equal ticks, lower tracks first, then file
    /// order (a stable merge): the order a player sends them in.
    public func allEventsInTickOrder() -> [(tick: Int, event: MIDIEvent)] {
        var merged: [(tick: Int, track: Int, order: Int, event: MIDIEvent)] = []
        for (trackIndex, track) in tracks.enumerated() {
            for (order, timed) in track.events.enumerated() {
                merged.append((timed.tick, trackIndex, order, timed.event))
            }
        }
        merged.sort { ($0.tick, $0.track, $0.order) < ($1.tick, $1.track, $1.order) }
        return merged.map { ($0.tick, $0.event) }
    }
}
