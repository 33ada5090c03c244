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
    public func stateDigest() throws -> Data {
        try run {
            try writer.read { db in
                let hasher = Blake2b256()
                hasher.update(Array("linli-state/v1\n".utf8))
                try hashFieldState(db, into: hasher)
                try hashViews(db, into: hasher)
                return hasher.finalize()
            }
        }
    }

    private struct FieldEntry {
        let table: String
        let row: RowID
        let field: String
        let dot: Dot
        let hlc: UInt64
        let value: Value
    }

    private func hashFieldState(_ db: Database, into hasher: Blake2b256) throws {
        var names: [Int64: String] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT n, name FROM linli_name") { names[row["n"]] = row["name"] }
        var devices: [Int64: DeviceID] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT n, device FROM linli_device") { devices[row["n"]] = DeviceID(bytes: row["device"] as Data) }
        var entries: [FieldEntry] = []
        let cursor = try Row.fetchCursor(db, sql: "SELECT table_n, row, field_n, device_n, seq, idx, hlc, kind, value FROM linli_field")
        while let row = try cursor.next() {
            guard let table = names[row[0]], let id = RowID(bytes: row[1] as Data), let field = names[row[2]],
                  let device = devices[row[3]] else {
                throw LinliError(.storage, "linli_field refers to a name or device this replica does not have; run a rebuild")
            }
            entries.append(FieldEntry(
                table: table, row: id, field: field, dot: Dot(device: device, seq: UInt64(row[4] as Int64), index: UInt32(row[5] as Int64)),
                hlc: UInt64(bitPattern: row[6]), value: Self.value(row[8], kind: row[7])))
        }
        entries.sort { ($0.table, $0.row, $0.field, $0.dot) < ($1.table, $1.row, $1.field, $1.dot) }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 16)
        for entry in entries {
            CanonicalEncoding.append(entry.table, to: &buffer)
            CanonicalEncoding.append(entry.row, to: &buffer)
            CanonicalEncoding.append(entry.field, to: &buffer)
            CanonicalEncoding.append(entry.dot.device, to: &buffer)
            CanonicalEncoding.append(entry.dot.seq, to: &buffer)
            CanonicalEncoding.append(entry.dot.index, to: &buffer)
            CanonicalEncoding.append(entry.hlc, to: &buffer)
            CanonicalEncoding.append(entry.value, to: &buffer)
            if buffer.count > 60_000 {
                hasher.update(buffer)
                buffer.removeAll(keepingCapacity: true)
            }
        }
        hasher.update(buffer)
    }

    private func hashViews(_ db: Database, into hasher: Blake2b256) throws {
        for table in schema.tables.sorted(by: { $0.name < $1.name }) {
            var buffer: [UInt8] = []
            CanonicalEncoding.append(table.name, to: &buffer)
            let columns = ["id", "_scope", "_deleted", "_conflicts"] + table.fields.map(\.name)
            let sql = "SELECT \(columns.map(StoreSchema.quoted).joined(separator: ", ")) FROM \(StoreSchema.quoted(table.name)) ORDER BY id"
            let cursor = try Row.fetchCursor(db, sql: sql)
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
        try run {
            try writer.write { db in
                try db.execute(sql: """
                    DELETE FROM linli_field; DELETE FROM linli_replaced_early;
                    DELETE FROM linli_row; DELETE FROM linli_head;
                    """)
                for table in schema.tables { try db.execute(sql: "DELETE FROM \(StoreSchema.quoted(table.name))") }
                let session = try MergeSession(db, schema: schema, now: now)
                let cursor = try Row.fetchCursor(db, sql: "SELECT envelope, received_at FROM linli_log ORDER BY position")
                while let row = try cursor.next() {
                    let signed = try SignedChangeSet(envelope: row[0] as Data)
                    try session.merge(signed, receivedAt: UInt64(row[1] as Int64), log: false)
                }
                try session.finish()
            }
        }
    }
}

extension ReplicaStore {
    /// The whole field state in the reference model's form: for tests,
    /// audits and debugging. Loads every survivor into memory.
    public func fieldState() throws -> [MemoryFieldState.Key: [Survivor]] {
        try run {
            try writer.read { db in
                var names: [Int64: String] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT n, name FROM linli_name") { names[row["n"]] = row["name"] }
                var devices: [Int64: DeviceID] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT n, device FROM linli_device") { devices[row["n"]] = DeviceID(bytes: row["device"] as Data) }
                var state: [MemoryFieldState.Key: [Survivor]] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT table_n, row, field_n, device_n, seq, idx, hlc, kind, value FROM linli_field") {
                    guard let table = names[row[0]], let id = RowID(bytes: row[1] as Data), let field = names[row[2]], let device = devices[row[3]] else { continue }
                    let survivor = Survivor(
                        dot: Dot(device: device, seq: UInt64(row[4] as Int64), index: UInt32(row[5] as Int64)),
                        hlc: HLCTimestamp(rawValue: UInt64(bitPattern: row[6])), value: Self.value(row[8], kind: row[7]))
                    state[MemoryFieldState.Key(table: table, row: id, field: field), default: []].append(survivor)
                }
                return state.mapValues(MergeRules.canonicalOrder)
            }
        }
    }
}
