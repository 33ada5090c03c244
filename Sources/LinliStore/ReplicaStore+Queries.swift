import Foundation
import GRDB
import LinliCore
import LinliCrypto
import LinliProtocol

/// One value competing in a conflict, with who wrote it, where and when.
public struct CompetingValue: Sendable, Equatable {
    public let value: Value
    public let dot: Dot
    public let user: String
    public let hlc: HLCTimestamp
    /// The value shown meanwhile, by the deterministic rule.
    public let shown: Bool
}

/// A field with more than one survivor.
public struct Conflict: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable {
        /// Two or more concurrent edits of the field.
        case concurrentEdits = "concurrent_edits"
        /// The row was deleted while someone else edited the field.
        case deleteVersusEdit = "delete_vs_edit"
    }

    public let table: String
    public let row: RowID
    public let field: String
    public let scope: String
    public let kind: Kind
    public let values: [CompetingValue]
}

extension ReplicaStore {
    /// Every field with more than one survivor, in declared tables, ordered
    /// by table, row and field. Filter by table or scope when given.
    public func conflicts(table tableName: String? = nil, scope: Scope? = nil) throws -> [Conflict] {
        try run {
            try writer.read { db in
                try conflicts(db, lookup: NameLookup(db), table: tableName, scope: scope).map(\.conflict)
            }
        }
    }

    /// The conflicts in one read transaction, each with the survivors of
    /// its row's deletion mark (what a delete racing an edit shows).
    func conflicts(_ db: Database, lookup: NameLookup, table tableName: String?, scope: Scope?) throws -> [(conflict: Conflict, deletion: [CompetingValue])] {
        var result: [(conflict: Conflict, deletion: [CompetingValue])] = []
        for table in schema.tables where tableName == nil || table.name == tableName {
            var sql = "SELECT id, _scope, _deleted FROM \(StoreSchema.quoted(table.name)) WHERE _conflicts IS NOT NULL"
            var arguments: StatementArguments = []
            if let scope {
                sql += " AND _scope = ?"
                arguments += [scope.description]
            }
            sql += " ORDER BY id"
            for viewRow in try Row.fetchAll(db, sql: sql, arguments: arguments) {
                guard let row = RowID(bytes: viewRow["id"] as Data) else { continue }
                let survivors = try survivorsWithAuthors(db, table: table.name, row: row, lookup: lookup)
                let deletion = survivors[MergeRules.deletedField] ?? []
                let deleted = (viewRow["_deleted"] as Bool) || deletion.contains { $0.value.boolean == true }
                for (field, values) in survivors.sorted(by: { $0.key < $1.key }) where values.count > 1 {
                    let kind: Conflict.Kind = deleted && values.contains { $0.value.isNull } ? .deleteVersusEdit : .concurrentEdits
                    result.append((Conflict(table: table.name, row: row, field: field, scope: viewRow["_scope"], kind: kind, values: values), deletion))
                }
            }
        }
        return result
    }

    /// Survivors of each field of one row, with their authors, shown first.
    func survivorsWithAuthors(_ db: Database, table: String, row: RowID, lookup: NameLookup) throws -> [String: [CompetingValue]] {
        guard let state = try Data.fetchOne(db, sql: """
            SELECT r.state FROM linli_row_state r JOIN linli_name t ON t.n = r.table_n WHERE t.name = ? AND r.row = ?
            """, arguments: [table, row.data]) else { return [:] }
        var grouped: [String: [Survivor]] = [:]
        var users: [Dot: String] = [:]
        for stored in try RowStateCodec.decode(state) {
            guard let field = lookup.names[stored.fieldN], let device = lookup.devices[stored.deviceN] else {
                throw LinliError(.storage, "a row state names a field or device this replica does not know; run a rebuild")
            }
            let dot = Dot(device: device, seq: stored.seq, index: stored.index)
            grouped[field, default: []].append(Survivor(dot: dot, hlc: HLCTimestamp(rawValue: stored.hlc), value: stored.value))
            users[dot] = try String.fetchOne(
                db, sql: "SELECT user FROM linli_log WHERE device_n = ? AND seq = ?", arguments: [stored.deviceN, Int64(stored.seq)]) ?? ""
        }
        return grouped.mapValues { list in
            let shown = MergeRules.shown(list)
            return list.sorted { MergeRules.outranks($0, $1) }.map {
                CompetingValue(value: $0.value, dot: $0.dot, user: users[$0.dot] ?? "", hlc: $0.hlc, shown: $0 == shown)
            }
        }
    }

    /// This replica's numbering of names and devices, read once per query.
    struct NameLookup {
        let names: [Int64: String]
        let devices: [Int64: DeviceID]

        init(_ db: Database) throws {
            var names: [Int64: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT n, name FROM linli_name") { names[row["n"]] = row["name"] }
            var devices: [Int64: DeviceID] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT n, device FROM linli_device") { devices[row["n"]] = DeviceID(bytes: row["device"] as Data) }
            self.names = names
            self.devices = devices
        }
    }


    /// The shown values of one row of a declared table (deleted rows too,
    /// with `_deleted` true), or nil when this replica has no such row.
    public func row(_ table: String, _ id: RowID) throws -> [String: Value]? {
        guard let declared = schema.table(table) else {
            throw LinliError(.invalidInput, "there is no table \(table)")
        }
        return try run {
            try writer.read { db in
                guard let row = try Row.fetchOne(db, sql: "SELECT * FROM \(StoreSchema.quoted(table)) WHERE id = ?", arguments: [id.data]) else {
                    return nil
                }
                var values: [String: Value] = [MergeRules.deletedField: .boolean(row["_deleted"] as Bool)]
                for field in declared.fields {
                    values[field.name] = Self.viewValue(row[field.name] as DatabaseValue, type: field.type)
                }
                return values
            }
        }
    }

    /// A view column's value as a ``Value`` of the field's type.
    public static func shownValue(_ databaseValue: DatabaseValue, type: FieldType) -> Value { viewValue(databaseValue, type: type) }

    static func viewValue(_ databaseValue: DatabaseValue, type: FieldType) -> Value {
        switch databaseValue.storage {
        case .null: .null
        case .int64(let integer): type == .boolean ? .boolean(integer != 0) : .integer(integer)
        case .double(let real): .real(real)
        case .string(let text): .text(text)
        case .blob(let data): .bytes(data)
        }
    }

    /// Refused change sets, oldest first.
    public func quarantined() throws -> [QuarantineRecord] {
        try run {
            try writer.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM linli_quarantine ORDER BY id").map(Self.quarantineRecord)
            }
        }
    }

    /// The newest `limit` refusals kept for `device`, oldest first, without
    /// their envelopes (read through the device index: a status answer
    /// must not load the whole quarantine).
    public func refusals(of device: DeviceID, limit: Int) throws -> [QuarantineRecord] {
        try run {
            try writer.read { db in
                try Row.fetchAll(db, sql: """
                    SELECT id, received_at, device, seq, hash, code, message, x'' AS envelope FROM linli_quarantine
                    WHERE device = ? ORDER BY id DESC LIMIT ?
                    """, arguments: [device.data, max(0, limit)]).reversed().map(Self.quarantineRecord)
            }
        }
    }

    /// A `linli_quarantine` row as a record.
    static func quarantineRecord(_ row: Row) -> QuarantineRecord {
        QuarantineRecord(
            id: row["id"], receivedAt: Date(timeIntervalSince1970: Double(row["received_at"] as Int64) / 1000),
            device: (row["device"] as Data?).flatMap { DeviceID(bytes: $0) }, seq: (row["seq"] as Int64?).map { UInt64($0) },
            hash: row["hash"], code: LinliError.Code(rawValue: row["code"]) ?? .malformed,
            message: row["message"], envelope: row["envelope"])
    }

    /// Devices whose history forked, with the sequence number where it did.
    public func forkedDevices() throws -> [DeviceID: UInt64] {
        try run {
            try writer.read { db in
                var result: [DeviceID: UInt64] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT device, seq FROM linli_forked_device") {
                    if let device = DeviceID(bytes: row["device"] as Data) { result[device] = UInt64(row["seq"] as Int64) }
                }
                return result
            }
        }
    }

    /// Counts of what the replica holds.
    public struct Counts: Sendable, Equatable {
        public let changeSets: Int
        public let held: Int
        public let quarantined: Int
        public let survivors: Int
    }

    public func counts() throws -> Counts {
        try run {
            try writer.read { db in
                Counts(
                    changeSets: try Int.fetchOne(db, sql: "SELECT count(*) FROM linli_log") ?? 0,
                    held: try Int.fetchOne(db, sql: "SELECT count(*) FROM linli_held") ?? 0,
                    quarantined: try Int.fetchOne(db, sql: "SELECT count(*) FROM linli_quarantine") ?? 0,
                    survivors: try allSurvivors(db).count)
            }
        }
    }

    /// Change sets in arrival order after log position `position`, at most
    /// `limit`, optionally only those of `scopes`: what a replica sends on.
    public func changeSets(after position: Int64 = 0, scopes: Set<Scope>? = nil, limit: Int = Limits.changeSetsPerBatchMax) throws -> [(position: Int64, envelope: Data)] {
        try run {
            try writer.read { db in
                var sql = "SELECT position, envelope FROM linli_log WHERE position > ?"
                var arguments: StatementArguments = [position]
                if let scopes {
                    sql += " AND scope IN (\(scopes.map { _ in "?" }.joined(separator: ", ")))"
                    for scope in scopes { arguments += [scope.description] }
                }
                sql += " ORDER BY position LIMIT ?"
                arguments += [limit]
                return try Row.fetchAll(db, sql: sql, arguments: arguments).map { ($0["position"], $0["envelope"]) }
            }
        }
    }

    /// One entry of a pull: a change set, its log position and its device's
    /// previous change set among those the pull sends (in the puller's
    /// scopes and not refused; 0 for none).
    public struct PullEntry: Sendable {
        public let position: Int64
        public let envelope: Data
        public let scopedPredecessor: UInt64
    }

    /// What a pull after `position` sends a device that reads `scopes`
    /// (nil: everything). The device's own change sets are left out: it
    /// made them, so its replica has them.
    public func pullEntries(after position: Int64, scopes: Set<Scope>?, limit: Int, excluding device: DeviceID? = nil) throws -> [PullEntry] {
        try run {
            try writer.read { db in
                let own = try device.flatMap { try Int64.fetchOne(db, sql: "SELECT n FROM linli_device WHERE device = ?", arguments: [$0.data]) } ?? -1
                // With scopes, both the change sets and their predecessors
                // are limited to them.
                let names = scopes.map { $0.map(\.description).sorted() } ?? []
                func inScopes(_ alias: String) -> String {
                    scopes == nil ? "" : "AND \(alias).scope IN (\(names.map { _ in "?" }.joined(separator: ", ")))"
                }
                var arguments = StatementArguments(names)
                arguments += [position, own]
                arguments += StatementArguments(names)
                arguments += [limit]
                return try Row.fetchAll(db, sql: """
                    SELECT l.position, l.envelope,
                           (SELECT max(p.seq) FROM linli_log p WHERE p.device_n = l.device_n \(inScopes("p")) AND p.seq < l.seq) AS predecessor
                    FROM linli_log l
                    WHERE l.position > ? AND l.device_n != ? \(inScopes("l"))
                    ORDER BY l.position LIMIT ?
                    """, arguments: arguments).map {
                    PullEntry(position: $0[0], envelope: $0[1], scopedPredecessor: UInt64(($0[2] as Int64?) ?? 0))
                }
            }
        }
    }

    /// One device's change sets after `afterSeq` in `scopes` (nil:
    /// every scope), in seq order, each with its scoped predecessor: what a
    /// device pulls to repair a difference its heads showed (PROTOCOL.md
    /// 2.6). The cursor of the main pull does not move for them.
    public func pullEntries(of device: DeviceID, afterSeq: UInt64, scopes: Set<Scope>?, limit: Int) throws -> [PullEntry] {
        try run {
            try writer.read { db in
                guard let n = try Int64.fetchOne(db, sql: "SELECT n FROM linli_device WHERE device = ?", arguments: [device.data]) else { return [] }
                let names = scopes.map { $0.map(\.description).sorted() } ?? []
                func inScopes(_ alias: String) -> String {
                    scopes == nil ? "" : "AND \(alias).scope IN (\(names.map { _ in "?" }.joined(separator: ", ")))"
                }
                var arguments = StatementArguments(names)
                arguments += [n, Int64(clamping: afterSeq)]
                arguments += StatementArguments(names)
                arguments += [limit]
                return try Row.fetchAll(db, sql: """
                    SELECT l.position, l.envelope,
                           (SELECT max(p.seq) FROM linli_log p WHERE p.device_n = l.device_n \(inScopes("p")) AND p.seq < l.seq) AS predecessor
                    FROM linli_log l
                    WHERE l.device_n = ? AND l.seq > ? \(inScopes("l"))
                    ORDER BY l.seq LIMIT ?
                    """, arguments: arguments).map {
                    PullEntry(position: $0[0], envelope: $0[1], scopedPredecessor: UInt64(($0[2] as Int64?) ?? 0))
                }
            }
        }
    }

    /// The newest change set of one device in some scopes.
    public struct ScopedHead: Sendable, Equatable {
        public let device: DeviceID
        public let seq: UInt64
        public let hash: Data

        public init(device: DeviceID, seq: UInt64, hash: Data) {
            self.device = device
            self.seq = seq
            self.hash = hash
        }
    }

    /// What a server tells `asker` it holds (PROTOCOL.md 2.6): for every
    /// other device with change sets in `scopes` (nil: all), the newest of
    /// them; for `asker` itself, the newest of its change sets this store
    /// has dealt with in any scope (accepted, or refused and kept).
    public func heads(scopes: Set<Scope>?, asker: DeviceID) throws -> [ScopedHead] {
        try run {
            try writer.read { db in
                let own = try Int64.fetchOne(db, sql: "SELECT n FROM linli_device WHERE device = ?", arguments: [asker.data]) ?? -1
                var result: [ScopedHead] = []
                let rows: [Row]
                if let scopes {
                    let names = scopes.map(\.description).sorted()
                    var arguments = StatementArguments(names)
                    arguments += [own]
                    // One row per device and scope (linli_scope_head); the
                    // newest over the asker's scopes is the head it gets.
                    rows = try Row.fetchAll(db, sql: """
                        SELECT d.device, h.seq, h.hash FROM linli_scope_head h JOIN linli_device d ON d.n = h.device_n
                        WHERE h.scope IN (\(names.map { _ in "?" }.joined(separator: ", "))) AND h.device_n != ?
                        ORDER BY h.device_n, h.seq DESC
                        """, arguments: arguments)
                } else {
                    rows = try Row.fetchAll(db, sql: """
                        SELECT d.device, h.seq, h.hash FROM linli_head h JOIN linli_device d ON d.n = h.device_n WHERE h.device_n != ?
                        """, arguments: [own])
                }
                var previous: DeviceID?
                for row in rows {
                    if let device = DeviceID(bytes: row["device"] as Data), device != previous {
                        result.append(ScopedHead(device: device, seq: UInt64(row["seq"] as Int64), hash: row["hash"]))
                        previous = device
                    }
                }
                if let mine = try Self.dealtWith(db, device: asker) { result.append(mine) }
                return result
            }
        }
    }

    /// The newest change set of `device` this store holds in any form:
    /// in the log, held for its predecessor, or refused and kept.
    static func dealtWith(_ db: Database, device: DeviceID) throws -> ScopedHead? {
        let n = try Int64.fetchOne(db, sql: "SELECT n FROM linli_device WHERE device = ?", arguments: [device.data]) ?? -1
        guard let row = try Row.fetchOne(db, sql: """
            SELECT seq, hash FROM (
                SELECT seq, hash FROM linli_log WHERE device_n = ?1
                UNION ALL SELECT seq, hash FROM linli_chained_refusal WHERE device_n = ?1
                UNION ALL SELECT seq, hash FROM linli_quarantine WHERE device = ?2 AND seq IS NOT NULL)
            ORDER BY seq DESC LIMIT 1
            """, arguments: [n, device.data]) else { return nil }
        return ScopedHead(device: device, seq: UInt64(row["seq"] as Int64), hash: row["hash"])
    }

    /// What this replica holds of each device, to compare with a server's
    /// heads (PROTOCOL.md 2.6): the head of its chain here, the newest
    /// change set applied or refused in its chain. Held change sets do not
    /// count: one held behind a gap hides the gap, and the gap is what
    /// the comparison must find.
    public func chainHeads() throws -> [DeviceID: ScopedHead] {
        try run {
            try writer.read { db in
                var result: [DeviceID: ScopedHead] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT d.device, h.seq, h.hash FROM linli_head h JOIN linli_device d ON d.n = h.device_n") {
                    if let device = DeviceID(bytes: row["device"] as Data) {
                        result[device] = ScopedHead(device: device, seq: UInt64(row["seq"] as Int64), hash: row["hash"])
                    }
                }
                return result
            }
        }
    }

    /// The newest position of the log; 0 when it is empty.
    public func logEnd() throws -> Int64 {
        try run { try writer.read { db in try Int64.fetchOne(db, sql: "SELECT max(position) FROM linli_log") ?? 0 } }
    }

    /// Trust records in the log (the `system` scope) after `position`, in
    /// log order, at most `limit`.
    public func trustEntries(after position: Int64 = 0, limit: Int = Limits.pullChangeSetsMax) throws -> [PullEntry] {
        try run {
            try writer.read { db in
                try Row.fetchAll(db, sql: "SELECT position, envelope FROM linli_log WHERE scope = 'system' AND position > ? ORDER BY position LIMIT ?",
                                 arguments: [position, limit]).map {
                    PullEntry(position: $0[0], envelope: $0[1], scopedPredecessor: 0)
                }
            }
        }
    }

    /// The newest change set of each device this replica holds.
    public func heads() throws -> [DeviceID: (seq: UInt64, hash: Data)] {
        try run {
            try writer.read { db in
                var result: [DeviceID: (seq: UInt64, hash: Data)] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT d.device, h.seq, h.hash FROM linli_head h JOIN linli_device d ON d.n = h.device_n") {
                    if let device = DeviceID(bytes: row["device"] as Data) { result[device] = (UInt64(row["seq"] as Int64), row["hash"]) }
                }
                return result
            }
        }
    }
}
