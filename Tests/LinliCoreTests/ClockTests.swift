import Foundation
import LinliCore
import Testing

@Suite("Hybrid logical clock") struct ClockTests {
    // MARK: HLCTimestamp

    @Test("a timestamp packs milliseconds in the high 48 bits and the counter in the low 16")
    func packing() {
        let stamp = HLCTimestamp(milliseconds: 1_700_000_000_123, counter: 0x1234)
        #expect(stamp.rawValue == 1_700_000_000_123 << 16 | 0x1234)
        #expect(stamp.milliseconds == 1_700_000_000_123)
        #expect(stamp.counter == 0x1234)
        #expect(stamp.description == "1700000000123.4660")

        let raw = HLCTimestamp(rawValue: 0x0000_0000_0005_FFFF)
        #expect(raw.milliseconds == 5)
        #expect(raw.counter == 0xFFFF)
        #expect(raw == HLCTimestamp(milliseconds: 5, counter: Limits.clockCounterMax))
    }

    @Test("timestamps order by milliseconds, then by counter")
    func ordering() {
        #expect(HLCTimestamp(milliseconds: 10, counter: 0xFFFF) < HLCTimestamp(milliseconds: 11, counter: 0))
        #expect(HLCTimestamp(milliseconds: 10, counter: 1) < HLCTimestamp(milliseconds: 10, counter: 2))
        #expect(!(HLCTimestamp(milliseconds: 10, counter: 2) < HLCTimestamp(milliseconds: 10, counter: 2)))
    }

    @Test("a counter above 16 bits stops the program")
    func counterOverflowTraps() async {
        await #expect(processExitsWith: .failure) {
            _ = HLCTimestamp(milliseconds: 1, counter: Limits.clockCounterMax + 1)
        }
    }

    // MARK: tick

    @Test("a tick takes the wall time when it is ahead, with counter 0")
    func tickTakesWallTime() {
        var clock = HybridLogicalClock()
        #expect(clock.last.rawValue == 0)
        let first = clock.tick(now: 5_000)
        #expect(first == HLCTimestamp(milliseconds: 5_000, counter: 0))
        #expect(clock.last == first)
        let second = clock.tick(now: 6_000)
        #expect(second == HLCTimestamp(milliseconds: 6_000, counter: 0))
    }

    @Test("ticks in the same millisecond count up")
    func tickSameMillisecond() {
        var clock = HybridLogicalClock()
        let stamps = (0..<5).map { _ in clock.tick(now: 7_000) }
        #expect(stamps.map(\.counter) == [0, 1, 2, 3, 4])
        #expect(stamps.allSatisfy { $0.milliseconds == 7_000 })
    }

    @Test("ticks stay increasing when wall time goes backwards")
    func tickMonotonicWhenWallTimeGoesBack() {
        var clock = HybridLogicalClock()
        var previous = clock.tick(now: 10_000)
        for now: UInt64 in [9_000, 9_999, 10_000, 1, 0, 10_000, 10_001, 5] {
            let next = clock.tick(now: now)
            #expect(next > previous, "tick(now: \(now)) gave \(next) after \(previous)")
            previous = next
        }
        #expect(clock.last == previous)
    }

    @Test("a full counter borrows the next millisecond")
    func counterOverflowBorrows() {
        var clock = HybridLogicalClock(last: HLCTimestamp(milliseconds: 1_000, counter: Limits.clockCounterMax))
        let next = clock.tick(now: 1_000)
        #expect(next == HLCTimestamp(milliseconds: 1_001, counter: 0))
        let after = clock.tick(now: 500)
        #expect(after == HLCTimestamp(milliseconds: 1_001, counter: 1))

        var behind = HybridLogicalClock(last: HLCTimestamp(milliseconds: 2_000, counter: Limits.clockCounterMax))
        #expect(behind.tick(now: 3) == HLCTimestamp(milliseconds: 2_001, counter: 0))
    }

    @Test("65,537 ticks in one millisecond stay strictly increasing")
    func manyTicksInOneMillisecond() {
        var clock = HybridLogicalClock()
        var previous = clock.tick(now: 42)
        var increasing = true
        for _ in 0..<65_536 {
            let next = clock.tick(now: 42)
            if next <= previous { increasing = false }
            previous = next
        }
        #expect(increasing)
        #expect(previous == HLCTimestamp(milliseconds: 43, counter: 0))
    }

    // MARK: observe

    @Test("a tick after a remote time orders after it")
    func tickAfterObserve() throws {
        var clock = HybridLogicalClock()
        _ = clock.tick(now: 1_000)
        let remote = HLCTimestamp(milliseconds: 60_000, counter: 9)
        try clock.observe(remote, now: 1_000)
        #expect(clock.last == remote)
        let next = clock.tick(now: 1_000)
        #expect(next > remote)
        #expect(next == HLCTimestamp(milliseconds: 60_000, counter: 10))
    }

    @Test("observing an older remote time leaves the clock where it is")
    func observeOlderKeepsClock() throws {
        var clock = HybridLogicalClock()
        let mine = clock.tick(now: 50_000)
        try clock.observe(HLCTimestamp(milliseconds: 10_000, counter: 3), now: 50_000)
        #expect(clock.last == mine)
        try clock.observe(HLCTimestamp(milliseconds: 50_000, counter: 0), now: 50_000)
        #expect(clock.last == mine)
    }

    @Test("a remote time exactly at the drift limit is accepted")
    func observeAtDriftLimit() throws {
        var clock = HybridLogicalClock()
        let now: UInt64 = 1_700_000_000_000
        let remote = HLCTimestamp(milliseconds: now + Limits.clockDriftMillisecondsMax, counter: Limits.clockCounterMax)
        try clock.observe(remote, now: now)
        #expect(clock.last == remote)
        try HybridLogicalClock.checkDrift(remote, now: now)
    }

    @Test("a remote time further ahead than the drift limit is refused and the clock does not move")
    func observeRefusesClockAhead() throws {
        var clock = HybridLogicalClock()
        let now: UInt64 = 1_700_000_000_000
        let mine = clock.tick(now: now)
        let before = clock
        let remote = HLCTimestamp(milliseconds: now + Limits.clockDriftMillisecondsMax + 1, counter: 0)
        expectLinliError(.clockAhead) { try clock.observe(remote, now: now) }
        #expect(clock == before)
        #expect(clock.last == mine)
        expectLinliError(.clockAhead) { try HybridLogicalClock.checkDrift(remote, now: now) }

        let farAhead = HLCTimestamp(milliseconds: now + 3_600_000, counter: 0)
        let error = #expect(throws: LinliError.self) { try clock.observe(farAhead, now: now) }
        #expect(error?.code == .clockAhead)
        #expect(error?.message.contains("60 minutes") == true)
        #expect(error?.hint != nil)
        #expect(clock.last == mine)
        #expect(clock.tick(now: now) == HLCTimestamp(milliseconds: now, counter: 1))
    }
}
