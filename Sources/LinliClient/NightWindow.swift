import Foundation
import LinliCore

/// A daily window of local time in which a kiosk syncs, such as
/// `01:00-05:00`, possibly across midnight (`23:30-02:00`). Each night the
/// kiosk picks a moment uniformly at random inside it, so a hundred kiosks
/// spread over the window instead of arriving together.
public struct NightWindow: Sendable, Equatable, CustomStringConvertible {
    /// Seconds after local midnight.
    public let start: Int
    public let end: Int

    /// Parses `HH:MM-HH:MM` (seconds allowed: `HH:MM:SS`).
    public init(_ text: String) throws {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let start = Self.seconds(parts[0]), let end = Self.seconds(parts[1]) else {
            throw LinliError(.invalidInput, "\(text) is not a window: give it as HH:MM-HH:MM, for example 01:00-05:00")
        }
        guard start != end else { throw LinliError(.invalidInput, "the window \(text) is empty: its start and end are the same") }
        self.start = start
        self.end = end
    }

    static func seconds(_ text: Substring) -> Int? {
        let pieces = text.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
        guard pieces.count == 2 || pieces.count == 3, pieces.allSatisfy({ $0 != nil }) else { return nil }
        let (hours, minutes, seconds) = (pieces[0]!, pieces[1]!, pieces.count == 3 ? pieces[2]! : 0)
        guard (0...23).contains(hours), (0...59).contains(minutes), (0...59).contains(seconds) else { return nil }
        return hours * 3600 + minutes * 60 + seconds
    }

    public var description: String { "\(Self.clock(start))-\(Self.clock(end))" }

    static func clock(_ seconds: Int) -> String {
        seconds % 60 == 0 ? String(format: "%02d:%02d", seconds / 3600, seconds / 60 % 60)
            : String(format: "%02d:%02d:%02d", seconds / 3600, seconds / 60 % 60, seconds % 60)
    }

    /// The length of the window in seconds.
    public var length: Int { end > start ? end - start : 86_400 - start + end }

    /// The window that is open at `now`, or the next one: its start and end.
    public func occurrence(after now: Date, calendar: Calendar = .current) -> (start: Date, end: Date) {
        let midnight = calendar.startOfDay(for: now)
        // The window that began yesterday may still be open (across midnight).
        for dayOffset in -1...1 {
            guard let day = calendar.date(byAdding: .day, value: dayOffset, to: midnight) else { continue }
            let opens = day.addingTimeInterval(TimeInterval(start))
            let closes = opens.addingTimeInterval(TimeInterval(length))
            if closes > now { return (opens, closes) }
        }
        let tomorrow = calendar.date(byAdding: .day, value: 1, to: midnight)!.addingTimeInterval(TimeInterval(start))
        return (tomorrow, tomorrow.addingTimeInterval(TimeInterval(length)))
    }

    /// A moment chosen uniformly at random in the open window's remaining
    /// time, or in the next window when none is open at `now`.
    public func nextMoment(after now: Date, calendar: Calendar = .current,
                           random: (ClosedRange<Double>) -> Double = { Double.random(in: $0) }) -> Date {
        let (opens, closes) = occurrence(after: now, calendar: calendar)
        let from = max(opens, now)
        return from.addingTimeInterval(random(0...closes.timeIntervalSince(from)))
    }
}
