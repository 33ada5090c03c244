import Foundation
import LinliCore

/// A write's name in JSON: device (hex), sequence number, position.
public struct ReviewDot: Codable, Sendable, Hashable {
    public let device: String
    public let seq: UInt64
    public let index: UInt32

    public init(_ dot: Dot) {
        device = dot.device.hex
        seq = dot.seq
        index = dot.index
    }

    public var dot: Dot? { DeviceID(hex: device).map { Dot(device: $0, seq: seq, index: index) } }
}

/// One surviving value of a field, with who wrote it, on which device, when.
public struct ReviewValue: Codable, Sendable, Equatable {
    public let value: Value
    public let dot: ReviewDot
    public let user: String
    public let hlc: UInt64
    /// Wall-clock milliseconds of the write, from its clock.
    public let time: UInt64
    /// Whether the replicas show this value meanwhile (the deterministic rule).
    public let shown: Bool

    public init(_ competing: CompetingValue) {
        value = competing.value
        dot = ReviewDot(competing.dot)
        user = competing.user
        hlc = competing.hlc.rawValue
        time = competing.hlc.milliseconds
        shown = competing.shown
    }
}

/// A record an item is about, with the survivors of the fields that matter.
public struct ReviewRecord: Codable, Sendable, Equatable {
    public let table: String
    public let row: String
    public let scope: String
    public let fields: [String: [ReviewValue]]

    public func shown(_ field: String) -> Value { fields[field]?.first { $0.shown }?.value ?? .null }
}

/// One write of a refused change set, as its author made it.
public struct ReviewWrite: Codable, Sendable, Equatable {
    public let table: String
    public let row: String
    public let field: String
    public let value: Value
    public let replaces: [ReviewDot]
}

/// A refused change set: why, by whom, and what it would have written.
public struct ReviewRefusal: Codable, Sendable, Equatable {
    public let hash: String
    public let code: String
    public let message: String
    public let device: String?
    public let seq: UInt64?
    public let user: String?
    public let receivedAt: UInt64
    public let writes: [ReviewWrite]
}

/// One write in a field's history, oldest first.
public struct ReviewHistoryEntry: Codable, Sendable, Equatable {
    public let value: Value
    public let dot: ReviewDot
    public let user: String
    public let time: UInt64
    /// How many earlier values this write replaced.
    public let replaced: Int
    /// Whether the write still survives.
    public let survives: Bool
}

/// One thing in the review queue (``ReviewKind``), with what a person
/// needs to judge it.
public struct ReviewItem: Codable, Sendable, Equatable {
    /// Stable while the item is open: the same conflict keeps its id.
    public let id: String
    public let kind: ReviewKind
    /// The scope of the record (or of the refused change set).
    public let scope: String
    /// The grid, for grid scopes.
    public let grid: String?
    public let table: String?
    public let row: String?
    public let field: String?
    /// Wall-clock milliseconds: the newest competing write, the refusal,
    /// or the newest write among an invariant's records.
    public let detectedAt: UInt64
    /// One line for a list.
    public let summary: String
    /// The competing values of a conflict, shown value first.
    public var values: [ReviewValue] = []
    /// For a delete racing an edit: the survivors of the row's deletion mark.
    public var deletion: [ReviewValue] = []
    public var refusal: ReviewRefusal?
    /// The invariant's name (``Invariant``) and its explanation.
    public var invariant: String?
    public var explanation: String?
    /// The records an invariant item involves.
    public var records: [ReviewRecord] = []
    /// The field's history (conflicts), filled when one item is shown.
    public var history: [ReviewHistoryEntry] = []

    /// The value bulk resolution's rule keeps: the one written last (by
    /// clock, then device id), which ``ReviewAction/newest`` writes.
    public var newestValue: ReviewValue? { values.max { ($0.hlc, $0.dot.device) < ($1.hlc, $1.dot.device) } }
}

/// How to narrow the queue: by grid, table, kind and age.
public struct ReviewFilter: Sendable, Equatable {
    public var grid: String?
    public var table: String?
    public var kind: ReviewKind?
    public var field: String?
    /// Only items detected at least this many seconds ago.
    public var olderThanSeconds: UInt64?

    public init(grid: String? = nil, table: String? = nil, kind: ReviewKind? = nil, field: String? = nil, olderThanSeconds: UInt64? = nil) {
        self.grid = grid
        self.table = table
        self.kind = kind
        self.field = field
        self.olderThanSeconds = olderThanSeconds
    }

    public func matches(_ item: ReviewItem, now: UInt64) -> Bool {
        // An invariant across grids (one community) matches each of them.
        if let grid, item.grid != grid, !item.records.contains(where: { $0.scope == Scope.grid(grid).description }) { return false }
        if let table, item.table != table { return false }
        if let kind, item.kind != kind { return false }
        if let field, item.field != field { return false }
        // Compared without adding or multiplying: the age in a query may be
        // any number a UInt64 holds.
        if let olderThanSeconds, now < item.detectedAt || (now - item.detectedAt) / 1000 < olderThanSeconds { return false }
        return true
    }
}

/// What a staff member decides about one item.
public enum ReviewAction: Sendable, Equatable {
    /// Keep one of the competing values (its position in ``ReviewItem/values``).
    case choose(Int)
    /// Enter a corrected value instead.
    case correct(Value)
    /// Keep the newest competing value (bulk resolution's rule).
    case newest
    /// A refused change set is not applied.
    case dismiss
    /// Write a refused change set's writes again, on its author's behalf,
    /// with these fields corrected.
    case resubmit([String: Value])
    /// Fix a field of one of an invariant's records.
    case edit(table: String, row: String, field: String, value: Value)
}
