import Foundation

/// The name of one field write: the change set that holds it (device and
/// sequence number) and its position among that change set's writes.
public struct Dot: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let device: DeviceID
    public let seq: UInt64
    public let index: UInt32

    public init(device: DeviceID, seq: UInt64, index: UInt32) {
        self.device = device
        self.seq = seq
        self.index = index
    }

    public static func < (lhs: Dot, rhs: Dot) -> Bool {
        (lhs.device, lhs.seq, lhs.index) < (rhs.device, rhs.seq, rhs.index)
    }

    public var description: String { "\(device.hex.prefix(8))@\(seq).\(index)" }
}

/// One field write: the new value and the survivors it replaces (the values
/// its author saw for this field when writing).
public struct FieldWrite: Hashable, Sendable {
    public var field: String
    public var value: Value
    public var replaces: [Dot]

    public init(field: String, value: Value, replaces: [Dot] = []) {
        self.field = field
        self.value = value
        self.replaces = replaces
    }
}

/// The writes of one change set to one row.
public struct RowChange: Hashable, Sendable {
    public var table: String
    public var row: RowID
    public var writes: [FieldWrite]

    public init(table: String, row: RowID, writes: [FieldWrite]) {
        self.table = table
        self.row = row
        self.writes = writes
    }
}

/// What a change set says about itself: who made it, where it sits in its
/// device's chain, when, and which scope it belongs to.
public struct ChangeSetHeader: Hashable, Sendable {
    public static let currentFormat: UInt32 = 1

    public var format: UInt32
    public var device: DeviceID
    /// First 8 bytes of BLAKE2b-256 of the signing public key.
    public var keyID: Data
    public var seq: UInt64
    /// BLAKE2b-256 of the same device's previous body; empty at seq 1.
    public var prev: Data
    public var hlc: HLCTimestamp
    public var user: String
    public var schemaVersion: UInt32
    public var scope: Scope

    public init(
        format: UInt32 = ChangeSetHeader.currentFormat, device: DeviceID, keyID: Data, seq: UInt64,
        prev: Data, hlc: HLCTimestamp, user: String, schemaVersion: UInt32, scope: Scope
    ) {
        self.format = format
        self.device = device
        self.keyID = keyID
        self.seq = seq
        self.prev = prev
        self.hlc = hlc
        self.user = user
        self.schemaVersion = schemaVersion
        self.scope = scope
    }
}

/// A decoded change set: header and writes. Made by one device in one local
/// transaction; the unit that is signed, stored, synced and merged.
public struct ChangeSet: Hashable, Sendable {
    public var header: ChangeSetHeader
    public var rows: [RowChange]

    public init(header: ChangeSetHeader, rows: [RowChange]) {
        self.header = header
        self.rows = rows
    }

    public var writeCount: Int { rows.reduce(0) { $0 + $1.writes.count } }

    /// Calls `body` for each write with its dot, in dot order.
    public func forEachWrite(_ body: (RowChange, FieldWrite, Dot) throws -> Void) rethrows {
        var index: UInt32 = 0
        for row in rows {
            for write in row.writes {
                try body(row, write, Dot(device: header.device, seq: header.seq, index: index))
                index += 1
            }
        }
    }

    /// Checks everything about the change set that needs no other data:
    /// limits, names, one write per field, sane replaced dots. The store adds
    /// what needs its state (keys, chain, schema).
    public func validateStructure() throws(LinliError) {
        let header = self.header
        guard header.format == ChangeSetHeader.currentFormat else {
            throw LinliError(
                .unsupportedFormat,
                "change set format \(header.format) is not understood (this replica reads format \(ChangeSetHeader.currentFormat))",
                hint: "update this replica's software")
        }
        guard header.seq >= 1 else {
            throw LinliError(.malformed, "change set sequence number 0 is not allowed; chains start at 1")
        }
        guard header.seq <= Limits.sequenceNumberMax else {
            throw LinliError(.overLimit, "sequence number \(header.seq) is above sequenceNumberMax (\(Limits.sequenceNumberMax))")
        }
        if header.seq == 1 {
            guard header.prev.isEmpty else {
                throw LinliError(.malformed, "the first change set of a device must not name a previous hash")
            }
        } else if header.prev.count != 32 {
            throw LinliError(.malformed, "change set \(header.seq) must name its predecessor's 32-byte hash, not \(header.prev.count) bytes")
        }
        guard header.keyID.count == 8 else {
            throw LinliError(.malformed, "the key id must be 8 bytes, not \(header.keyID.count)")
        }
        guard header.user.utf8.count <= Limits.userBytesMax else {
            throw LinliError(.overLimit, "the user name is longer than userBytesMax (\(Limits.userBytesMax) bytes)")
        }
        guard !rows.isEmpty else {
            throw LinliError(.malformed, "the change set has no writes")
        }
        guard rows.count <= Limits.rowsPerChangeSetMax else {
            throw LinliError(.overLimit, "the change set touches \(rows.count) rows; rowsPerChangeSetMax is \(Limits.rowsPerChangeSetMax)",
                             hint: "split the edit into several change sets")
        }
        let writes = writeCount
        guard writes <= Limits.writesPerChangeSetMax else {
            throw LinliError(.overLimit, "the change set has \(writes) writes; writesPerChangeSetMax is \(Limits.writesPerChangeSetMax)",
                             hint: "split the edit into several change sets")
        }
        var seenFields = Set<TableFieldKey>()
        for row in rows {
            try Self.checkName(row.table, what: "table")
            guard !row.writes.isEmpty else {
                throw LinliError(.malformed, "row \(row.row.hex) of table \(row.table) has no writes")
            }
            for write in row.writes {
                try Self.checkName(write.field, what: "field")
                guard seenFields.insert(TableFieldKey(table: row.table, row: row.row, field: write.field)).inserted else {
                    throw LinliError(.malformed, "field \(row.table).\(write.field) of row \(row.row.hex) is written twice in one change set")
                }
                guard write.value.byteCount <= Limits.valueBytesMax else {
                    throw LinliError(.overLimit, "the value of \(row.table).\(write.field) has \(write.value.byteCount) bytes; valueBytesMax is \(Limits.valueBytesMax)")
                }
                guard write.replaces.count <= Limits.replacedDotsPerWriteMax else {
                    throw LinliError(.overLimit, "a write to \(row.table).\(write.field) replaces \(write.replaces.count) values; replacedDotsPerWriteMax is \(Limits.replacedDotsPerWriteMax)")
                }
                for dot in write.replaces where dot.seq > Limits.sequenceNumberMax {
                    throw LinliError(.overLimit, "a write to \(row.table).\(write.field) replaces a dot with sequence number \(dot.seq), above sequenceNumberMax")
                }
                for dot in write.replaces where dot.device == header.device && dot.seq >= header.seq {
                    throw LinliError(.malformed, "a write to \(row.table).\(write.field) replaces \(dot), which is not older than its own change set \(header.seq)")
                }
            }
        }
    }

    private static func checkName(_ name: String, what: String) throws(LinliError) {
        guard !name.isEmpty, name.utf8.count <= Limits.nameBytesMax else {
            throw LinliError(.malformed, "a \(what) name must have 1 to \(Limits.nameBytesMax) bytes, got \(name.utf8.count)")
        }
    }
}

private struct TableFieldKey: Hashable {
    let table: String
    let row: RowID
    let field: String
}

/// A field of a row: the unit that holds a multi-value register.
public struct FieldKey: Hashable, Sendable {
    public let row: RowID
    public let field: String

    public init(row: RowID, field: String) {
        self.row = row
        self.field = field
    }
}
