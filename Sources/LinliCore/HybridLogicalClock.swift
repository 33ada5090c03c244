/// A hybrid logical clock timestamp: milliseconds since 1970 in the high 48
/// bits, a logical counter in the low 16.
///
/// Timestamps order events consistently with causality (a change made after
/// seeing another always has a greater timestamp) while staying close to
/// wall-clock time, so "the newest value" means what people expect.
public struct HLCTimestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public init(milliseconds: UInt64, counter: UInt64) {
        precondition(counter <= Limits.clockCounterMax, "HLC counter overflow")
        rawValue = milliseconds << 16 | counter
    }

    public var milliseconds: UInt64 { rawValue >> 16 }
    public var counter: UInt64 { rawValue & Limits.clockCounterMax }

    public static func < (lhs: HLCTimestamp, rhs: HLCTimestamp) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "\(milliseconds).\(counter)" }
}

/// The clock of one replica. It is a value: the owner keeps it and persists
/// it (the store keeps the greatest timestamp it has issued or seen).
///
/// For example:
///
///     var clock = HybridLogicalClock()
///     let t1 = try clock.tick(now: wallMilliseconds())
///     try clock.observe(remote, now: wallMilliseconds())
public struct HybridLogicalClock: Sendable, Equatable {
    public private(set) var last: HLCTimestamp

    public init(last: HLCTimestamp = HLCTimestamp(rawValue: 0)) { self.last = last }

    /// A new timestamp for a local event, greater than every timestamp this
    /// clock has issued or observed.
    public mutating func tick(now: UInt64) -> HLCTimestamp {
        let next: HLCTimestamp
        if now > last.milliseconds {
            next = HLCTimestamp(milliseconds: now, counter: 0)
        } else if last.counter < Limits.clockCounterMax {
            next = HLCTimestamp(milliseconds: last.milliseconds, counter: last.counter + 1)
        } else {
            // 65,536 events in one millisecond: borrow the next millisecond.
            next = HLCTimestamp(milliseconds: last.milliseconds + 1, counter: 0)
        }
        last = next
        return next
    }

    /// Takes a remote timestamp into account, so later local events order
    /// after it. A remote time further ahead of `now` than
    /// ``Limits/clockDriftMillisecondsMax`` is refused and does not move the
    /// clock: one device with a wrong clock must not drag every replica into
    /// its future.
    public mutating func observe(_ remote: HLCTimestamp, now: UInt64) throws(LinliError) {
        try Self.checkDrift(remote, now: now)
        if remote > last { last = remote }
    }

    /// Throws if `remote` is further ahead of `now` than the accepted drift.
    public static func checkDrift(_ remote: HLCTimestamp, now: UInt64) throws(LinliError) {
        if remote.milliseconds > now + Limits.clockDriftMillisecondsMax {
            let minutes = (remote.milliseconds - now) / 60_000
            throw LinliError(
                .clockAhead,
                "the change set's clock is \(minutes) minutes ahead of this replica's clock "
                    + "(at most \(Limits.clockDriftMillisecondsMax / 60_000) minutes are accepted)",
                hint: "set the device's date and time correctly, then sync again")
        }
    }
}
