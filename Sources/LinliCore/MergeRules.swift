/// A value that no known write has replaced, with the dot and time of the
/// write that made it.
public struct Survivor: Hashable, Sendable {
    public let dot: Dot
    public let hlc: HLCTimestamp
    public let value: Value

    public init(dot: Dot, hlc: HLCTimestamp, value: Value) {
        self.dot = dot
        self.hlc = hlc
        self.value = value
    }
}

/// The merge rules of Linli, in one place.
///
/// Each field of each row is a multi-value register. A write carries its
/// dot and the dots it replaces. A value survives unless some known write
/// lists its dot as replaced. That is set arithmetic, so merging is
/// commutative, associative and idempotent and needs no causal delivery,
/// and a concurrent value is never dropped: more than one survivor is a
/// conflict, kept until a write replaces all of them.
public enum MergeRules {
    /// The field that records a row's existence. Deleting a row writes
    /// `true` here and `null` to every field that has a value, replacing
    /// what the deleting device saw; an edit made concurrently survives
    /// beside that `null`, so a delete that races an edit is a conflict.
    public static let deletedField = "_deleted"

    /// Field names starting with this are reserved for Linli.
    public static let reservedPrefix = "_"

    /// Whether `lhs` is shown in preference to `rhs`: greater clock first,
    /// then greater device id, then greater sequence number and index, so
    /// every replica shows the same survivor.
    @inline(__always)
    public static func outranks(_ lhs: Survivor, _ rhs: Survivor) -> Bool {
        if lhs.hlc != rhs.hlc { return lhs.hlc > rhs.hlc }
        if lhs.dot.device != rhs.dot.device { return lhs.dot.device > rhs.dot.device }
        if lhs.dot.seq != rhs.dot.seq { return lhs.dot.seq > rhs.dot.seq }
        return lhs.dot.index > rhs.dot.index
    }

    /// The survivor shown while a conflict waits for a person.
    public static func shown(_ survivors: some Sequence<Survivor>) -> Survivor? {
        var best: Survivor?
        for survivor in survivors where best.map({ outranks(survivor, $0) }) ?? true {
            best = survivor
        }
        return best
    }

    /// Survivors in canonical order (by dot), the order digests use.
    public static func canonicalOrder(_ survivors: [Survivor]) -> [Survivor] {
        survivors.sorted { $0.dot < $1.dot }
    }
}

/// The field state of a replica held in memory: the reference model of the
/// merge rules. The SQLite store must always agree with it; the property
/// tests check that it does.
public struct MemoryFieldState: Sendable, Equatable {
    public struct Key: Hashable, Sendable, Comparable {
        public let table: String
        public let row: RowID
        public let field: String

        public init(table: String, row: RowID, field: String) {
            self.table = table
            self.row = row
            self.field = field
        }

        public static func < (lhs: Key, rhs: Key) -> Bool {
            (lhs.table, lhs.row, lhs.field) < (rhs.table, rhs.row, rhs.field)
        }
    }

    /// Survivors of each field that has any.
    public private(set) var fields: [Key: [Survivor]] = [:]
    /// Dots replaced by a known write before their own write arrived, with
    /// the field the replacing write named: a dot is replaced only in the
    /// field it was written to, so a write that names a dot of another field
    /// changes nothing, in every delivery order.
    public private(set) var replacedEarly: Set<ReplacedDot> = []

    public struct ReplacedDot: Hashable, Sendable {
        public let key: Key
        public let dot: Dot
    }
    /// Change sets applied, by device and sequence number.
    public private(set) var applied: Set<DeviceSeq> = []

    public struct DeviceSeq: Hashable, Sendable {
        public let device: DeviceID
        public let seq: UInt64
    }

    public init() {}

    /// Applies a change set; applying one twice changes nothing.
    public mutating func apply(_ changeSet: ChangeSet) {
        let header = changeSet.header
        guard applied.insert(DeviceSeq(device: header.device, seq: header.seq)).inserted else { return }
        changeSet.forEachWrite { row, write, dot in
            let key = Key(table: row.table, row: row.row, field: write.field)
            var survivors = fields[key] ?? []
            for replaced in write.replaces {
                if let position = survivors.firstIndex(where: { $0.dot == replaced }) {
                    survivors.remove(at: position)
                } else if !applied.contains(DeviceSeq(device: replaced.device, seq: replaced.seq)) {
                    replacedEarly.insert(ReplacedDot(key: key, dot: replaced))
                }
            }
            if replacedEarly.remove(ReplacedDot(key: key, dot: dot)) == nil {
                survivors.append(Survivor(dot: dot, hlc: header.hlc, value: write.value))
            }
            fields[key] = survivors.isEmpty ? nil : MergeRules.canonicalOrder(survivors)
        }
    }

    /// Fields with more than one survivor.
    public var conflicts: [Key] {
        fields.filter { $0.value.count > 1 }.keys.sorted()
    }
}
