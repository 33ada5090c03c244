import Foundation
import GRDB
import LinliCore
import LinliCrypto
import LinliProtocol

extension ReplicaStore {
    /// BLAKE2b-256 of the replica's field state and views in a canonical
    /// form. Two replicas that have seen the same change sets have the same
    /// digest, whatever order they saw them in; a rebuild from the log gives
    /// the same digest back.
    ///
    /// Covers every survivor (table, row, field, dot, clock, value, sorted)
    /// and every view row of every declared table (by id). Held and
    /// quarantined change sets are not state and are not covered.
    ///
    /// With `scope`, covers only that scope's rows: a partial replica (an
    /// inspector's, a kiosk's) and a full one (staff's) compare equal on
    /// the scopes they share.
    public func stateDigest(scope: Scope? = nil) throws -> Data {
        try run {
            try writer.read { db in
                let hasher = Blake2b256()
                hasher.update(Array("linli-state/v1\n".utf8))
                if let scope { hasher.update(Array("scope \(scope)\n".utf8)) }
                try hashFieldState(db, scope: scope, into: hasher)
                try hashViews(db, scope: scope, into: hasher)
                return hasher.finalize()
            }
        }
    }

    struct FieldEntry {
        let table: String
        let row: RowID
        let field: String
        let survivor: Survivor
    }

    /// Every survivor of the replica, with names and device ids in place of
    /// this replica's own numbers. Reads the whole field state.
    func allSurvivors(_ db: Database, scope: Scope? = nil) throws -> [FieldEntry] {
        let lookup = try NameLookup(db)
        let (names, devices) = (lookup.names, lookup.devices)
        var entries: [FieldEntry] = []
        let cursor = if let scope {
            try Row.fetchCursor(db, sql: """
                SELECT table_n, row, state FROM linli_row_state WHERE scope_n = (SELECT n FROM linli_name WHERE name = ?)
                """, arguments: [scope.description])
        } else {
            try Row.fetchCursor(db, sql: "SELECT table_n, row, state FROM linli_row_state")
        }
        while let row = try cursor.next() {
            guard let table = names[row[0]], let id = RowID(bytes: row[1] as Data) else {
                throw LinliError(.storage, "linli_row_state names a table this replica does not know; run a rebuild")
            }
            for stored in try RowStateCodec.decode(row[2] as Data) {
                guard let field = names[stored.fieldN], let device = devices[stored.deviceN] else {
                    throw LinliError(.storage, "a row state names a field or device this replica does not know; run a rebuild")
                }
                entries.append(FieldEntry(
                    table: table, row: id, field: field,
                    survivor: Survivor(dot: Dot(device: device, seq: stored.seq, index: stored.index),
                                       hlc: HLCTimestamp(rawValue: stored.hlc), value: stored.value)))
            }
        }
        return entries
    }

    private func hashFieldState(_ db: Database, scope: Scope?, into hasher: Blake2b256) throws {
        var entries = try allSurvivors(db, scope: scope)
        entries.sort { ($0.table, $0.row, $0.field, $0.survivor.dot) < ($1.table, $1.row, $1.field, $1.survivor.dot) }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 16)
        for entry in entries {
            CanonicalEncoding.append(entry.table, to: &buffer)
            CanonicalEncoding.append(entry.row, to: &buffer)
            CanonicalEncoding.append(entry.field, to: &buffer)
            CanonicalEncoding.append(entry.survivor.dot.device, to: &buffer)
            CanonicalEncoding.append(entry.survivor.dot.seq, to: &buffer)
            CanonicalEncoding.append(entry.survivor.dot.index, to: &buffer)
            CanonicalEncoding.append(entry.survivor.hlc.rawValue, to: &buffer)
            CanonicalEncoding.append(entry.survivor.value, to: &buffer)
            if buffer.count > 60_000 {
                hasher.update(buffer)
                buffer.removeAll(keepingCapacity: true)
            }
        }
        hasher.update(buffer)
    }

    private func hashViews(_ db: Database, scope: Scope?, into hasher: Blake2b256) throws {
        for table in schema.tables.sorted(by: { $0.name < $1.name }) {
            var buffer: [UInt8] = []
            CanonicalEncoding.append(table.name, to: &buffer)
            let columns = ["id", "_scope", "_deleted", "_conflicts"] + table.fields.map(\.name)
            let sql = "SELECT \(columns.map(StoreSchema.quoted).joined(separator: ", ")) FROM \(StoreSchema.quoted(table.name))"
                + (scope == nil ? "" : " WHERE _scope = ?") + " ORDER BY id"
            let cursor = try Row.fetchCursor(db, sql: sql, arguments: StatementArguments(scope.map { [$0.description] } ?? []))
            while let row = try cursor.next() {
                CanonicalEncoding.append(bytes: row[0] as Data, to: &buffer)
                CanonicalEncoding.append(row[1] as String, to: &buffer)
                CanonicalEncoding.append(UInt64(row[2] as Int64), to: &buffer)
                CanonicalEncoding.append((row[3] as String?) ?? "", to: &buffer)
                for (offset, field) in table.fields.enumerated() {
                    CanonicalEncoding.append(Self.viewValue(row[4 + offset], type: field.type), to: &buffer)
                }
                if buffer.count > 60_000 {
                    hasher.update(buffer)
                    buffer.removeAll(keepingCapacity: true)
                }
            }
            hasher.update(buffer)
        }
    }

    /// Drops the field state and views and replays the log into them.
    /// The state digest afterwards equals the one before, if the engine is
    /// right; `linli-admin audit` and the tests check exactly that.
    public func rebuild() throws {
        let now = clock()
        try run { try writer.write { db in try rebuildDerived(db, now: now) } }
    }

    /// The rebuild, inside a write transaction the caller holds.
    func rebuildDerived(_ db: Database, now: UInt64) throws {
        try db.execute(sql: """
            DELETE FROM linli_row_state; DELETE FROM linli_replaced_early; DELETE FROM linli_head;
            """)
        for table in schema.tables { try db.execute(sql: "DELETE FROM \(StoreSchema.quoted(table.name))") }
        let session = try MergeSession(db, schema: schema, now: now)
        let cursor = try Row.fetchCursor(db, sql: "SELECT envelope, received_at FROM linli_log ORDER BY position")
        while let row = try cursor.next() {
            let signed = try SignedChangeSet(envelope: row[0] as Data)
            try session.merge(signed, receivedAt: UInt64(row[1] as Int64), log: false)
        }
        try session.finish()
        // A change set refused in its chain after the device's last logged
        // one is still its head.
        try db.execute(sql: """
            INSERT INTO linli_head (device_n, seq, hash)
            SELECT c.device_n, c.seq, c.hash FROM linli_chained_refusal c
            WHERE c.seq = (SELECT max(seq) FROM linli_chained_refusal WHERE device_n = c.device_n)
            ON CONFLICT(device_n) DO UPDATE SET seq = excluded.seq, hash = excluded.hash WHERE excluded.seq > linli_head.seq
            """)
    }
}

extension ReplicaStore {
    /// The whole field state in the reference model's form: for tests,
    /// audits and debugging. Loads every survivor into memory.
    public func fieldState() throws -> [MemoryFieldState.Key: [Survivor]] {
        try run {
            try writer.read { db in
                var state: [MemoryFieldState.Key: [Survivor]] = [:]
                for entry in try allSurvivors(db) {
                    state[MemoryFieldState.Key(table: entry.table, row: entry.row, field: entry.field), default: []].append(entry.survivor)
                }
                return state.mapValues(MergeRules.canonicalOrder)
            }
        }
    }
}
