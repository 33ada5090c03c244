import Foundation
import GRDB
import LinliCore
import LinliCrypto
import LinliProtocol

/// The merge engine for one write transaction.
///
/// A session is made inside one `DatabaseWriter.write` and discarded with
/// it: its caches (device and name numbers, chain heads) may hold values of
/// the open transaction, so they must never outlive it. Each change set is
/// merged inside a savepoint, so a check that fails half-way leaves nothing
/// of it behind.
final class MergeSession {
    let db: Database
    let schema: Schema
    let now: UInt64

    private var deviceNumbers: [DeviceID: Int64] = [:]
    private var deviceIDs: [Int64: DeviceID] = [:]
    private var nameNumbers: [String: Int64] = [:]
    private var names: [Int64: String] = [:]
    private var heads: [Int64: Head] = [:]
    private var dirtyHeads: Set<Int64> = []
    private var forked: Set<DeviceID>
    private var replacedEarlyCount: Int64
    private(set) var hlcMax: UInt64

    struct Head {
        var seq: UInt64
        var hash: Data
    }

    /// One survivor as stored: the dot's device is the local device number.
    typealias Stored = StoredSurvivor

    private lazy var insertLog = prepare("""
        INSERT INTO linli_log (device_n, seq, hash, hlc, user, scope, schema_version, key_id, received_at, envelope)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """)
    private lazy var selectRow = prepare("SELECT scope_n, state FROM linli_row_state WHERE table_n = ? AND row = ?")
    private lazy var upsertRow = prepare("""
        INSERT INTO linli_row_state (table_n, row, scope_n, state) VALUES (?, ?, ?, ?)
        ON CONFLICT (table_n, row) DO UPDATE SET state = excluded.state
        """)
    private lazy var insertReplacedEarly = prepare(
        "INSERT OR IGNORE INTO linli_replaced_early (device_n, seq, idx, table_n, row, field_n) VALUES (?, ?, ?, ?, ?, ?)")
    private lazy var probeReplacedEarly = prepare("SELECT 1 FROM linli_replaced_early WHERE device_n = ? AND seq = ? LIMIT 1")
    private lazy var takeReplacedEarly = prepare("""
        DELETE FROM linli_replaced_early
        WHERE device_n = ? AND seq = ? AND idx = ? AND table_n = ? AND row = ? AND field_n = ? RETURNING 1
        """)
    private lazy var savepoint = prepare("SAVEPOINT linli_merge")
    private lazy var release = prepare("RELEASE linli_merge")
    private lazy var rollback = prepare("ROLLBACK TO linli_merge")
    private var viewStatements: [String: RawStatement] = [:]
    /// Devices whose certificates or revocations changed in this session.
    var trustChanged: Set<DeviceID> = []
    /// A revocation removed change sets from the log: the derived state
    /// must be rebuilt before commit.
    var needsRebuild = false
    /// Devices with change sets waiting in `linli_held`.
    private(set) var devicesWithHeld: Set<DeviceID>
    private var preparationError: LinliError?

    init(_ db: Database, schema: Schema, now: UInt64) throws {
        self.db = db
        self.schema = schema
        self.now = now
        forked = Set(try Data.fetchAll(db, sql: "SELECT device FROM linli_forked_device").compactMap { DeviceID(bytes: $0) })
        replacedEarlyCount = try Int64.fetchOne(db, sql: "SELECT count(*) FROM linli_replaced_early") ?? 0
        devicesWithHeld = Set(try Data.fetchAll(db, sql: "SELECT DISTINCT device FROM linli_held UNION SELECT DISTINCT device FROM linli_refused_early")
            .compactMap { DeviceID(bytes: $0) })
        hlcMax = UInt64(try Int64.fetchOne(db, sql: "SELECT value FROM linli_meta WHERE key = 'hlc'") ?? 0)
    }

    private func prepare(_ sql: String) -> RawStatement! {
        do { return try RawStatement(db, sql) } catch {
            preparationError = error as? LinliError ?? LinliError(.storage, "\(error)")
            return nil
        }
    }

    // MARK: Numbering

    func deviceNumber(_ device: DeviceID) throws -> Int64 {
        if let number = deviceNumbers[device] { return number }
        let number: Int64
        if let existing = try Int64.fetchOne(db, sql: "SELECT n FROM linli_device WHERE device = ?", arguments: [device.data]) {
            number = existing
        } else {
            try db.execute(sql: "INSERT INTO linli_device (device) VALUES (?)", arguments: [device.data])
            number = db.lastInsertedRowID
        }
        deviceNumbers[device] = number
        deviceIDs[number] = device
        return number
    }

    func deviceID(_ number: Int64) throws -> DeviceID {
        if let device = deviceIDs[number] { return device }
        guard let bytes = try Data.fetchOne(db, sql: "SELECT device FROM linli_device WHERE n = ?", arguments: [number]),
              let device = DeviceID(bytes: bytes) else {
            throw LinliError(.storage, "device number \(number) is missing from linli_device; run a rebuild")
        }
        deviceNumbers[device] = number
        deviceIDs[number] = device
        return device
    }

    func nameNumber(_ name: String) throws -> Int64 {
        if let number = nameNumbers[name] { return number }
        let number: Int64
        if let existing = try Int64.fetchOne(db, sql: "SELECT n FROM linli_name WHERE name = ?", arguments: [name]) {
            number = existing
        } else {
            try db.execute(sql: "INSERT INTO linli_name (name) VALUES (?)", arguments: [name])
            number = db.lastInsertedRowID
        }
        nameNumbers[name] = number
        names[number] = name
        return number
    }

    func name(_ number: Int64) throws -> String {
        if let name = names[number] { return name }
        guard let name = try String.fetchOne(db, sql: "SELECT name FROM linli_name WHERE n = ?", arguments: [number]) else {
            throw LinliError(.storage, "name number \(number) is missing from linli_name; run a rebuild")
        }
        nameNumbers[name] = number
        names[number] = name
        return name
    }

    // MARK: Chain heads

    func head(_ deviceN: Int64) throws -> Head {
        if let head = heads[deviceN] { return head }
        let row = try Row.fetchOne(db, sql: "SELECT seq, hash FROM linli_head WHERE device_n = ?", arguments: [deviceN])
        let head = row.map { Head(seq: UInt64($0["seq"] as Int64), hash: $0["hash"]) } ?? Head(seq: 0, hash: Data())
        heads[deviceN] = head
        return head
    }

    func isForked(_ device: DeviceID) -> Bool { forked.contains(device) }

    /// Sets a device's head back to the newest change set the log still
    /// has (after a revocation removed later ones).
    func resetHead(_ deviceN: Int64) throws {
        let row = try Row.fetchOne(db, sql: """
            SELECT seq, hash FROM (
                SELECT seq, hash FROM linli_log WHERE device_n = ?1
                UNION ALL SELECT seq, hash FROM linli_chained_refusal WHERE device_n = ?1)
            ORDER BY seq DESC LIMIT 1
            """, arguments: [deviceN])
        heads[deviceN] = row.map { Head(seq: UInt64($0["seq"] as Int64), hash: $0["hash"]) } ?? Head(seq: 0, hash: Data())
        dirtyHeads.insert(deviceN)
    }

    func noteHeld(_ device: DeviceID) { devicesWithHeld.insert(device) }

    /// Records that change set `seq` of a device was refused for what it
    /// says while its place in the chain was right: the device's head moves
    /// to it, so the next change set links as usual.
    func chainRefused(_ deviceN: Int64, seq: UInt64, hash: Data) throws {
        try db.execute(sql: "INSERT OR IGNORE INTO linli_chained_refusal (device_n, seq, hash) VALUES (?, ?, ?)",
                       arguments: [deviceN, Int64(seq), hash])
        heads[deviceN] = Head(seq: seq, hash: hash)
        dirtyHeads.insert(deviceN)
    }

    /// The refusal recorded for exactly this change set, if it was refused
    /// in its chain before.
    func chainedRefusal(_ deviceN: Int64, seq: UInt64, hash: Data) throws -> LinliError? {
        let row = try Row.fetchOne(db, sql: """
            SELECT q.code, q.message FROM linli_chained_refusal c LEFT JOIN linli_quarantine q ON q.hash = c.hash
            WHERE c.device_n = ? AND c.seq = ? AND c.hash = ? ORDER BY q.id LIMIT 1
            """, arguments: [deviceN, Int64(seq), hash])
        guard let row else { return nil }
        return LinliError(LinliError.Code(rawValue: row["code"] ?? "") ?? .malformed, row["message"] ?? "refused before")
    }

    func markForked(_ device: DeviceID, seq: UInt64, message: String) throws {
        forked.insert(device)
        try db.execute(
            sql: "INSERT OR IGNORE INTO linli_forked_device (device, seq, detected_at, message) VALUES (?, ?, ?, ?)",
            arguments: [device.data, Int64(seq), Int64(now), message])
    }

    /// The hash logged for (device, seq), if any.
    func loggedHash(_ deviceN: Int64, seq: UInt64) throws -> Data? {
        try Data.fetchOne(db, sql: "SELECT hash FROM linli_log WHERE device_n = ? AND seq = ?", arguments: [deviceN, Int64(seq)])
    }

    /// Writes what the session holds back (rows, heads, clock). Call once,
    /// before commit.
    func finish() throws {
        try flushRows(evict: true)
        for deviceN in dirtyHeads {
            guard let head = heads[deviceN] else { continue }
            try db.execute(
                sql: "INSERT INTO linli_head (device_n, seq, hash) VALUES (?, ?, ?) ON CONFLICT(device_n) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                arguments: [deviceN, Int64(head.seq), head.hash])
        }
        dirtyHeads.removeAll()
        try db.execute(
            sql: "INSERT INTO linli_meta (key, value) VALUES ('hlc', ?) ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
            arguments: [Int64(hlcMax)])
    }

    // MARK: Merging

    /// Logs and merges a change set whose signature, chain position and
    /// structure were already checked. Checks that need the replica's state
    /// (row scopes) happen here; if one fails, nothing of the change set
    /// stays. Returns the log position.
    @discardableResult
    func merge(_ signed: SignedChangeSet, receivedAt: UInt64, log: Bool = true) throws -> Int64 {
        if let preparationError { throw preparationError }
        let header = signed.header
        let deviceN = try deviceNumber(header.device)
        try savepoint!.run()
        var undo: [RowKey: CachedRow?] = [:]
        let replacedEarlyBefore = replacedEarlyCount
        do {
            var position: Int64 = 0
            if log {
                let statement = insertLog!
                statement.bind(1, deviceN)
                statement.bind(2, header.seq)
                statement.bind(3, signed.hash)
                statement.bind(4, header.hlc.rawValue)
                statement.bind(5, header.user)
                statement.bind(6, header.scope.description)
                statement.bind(7, Int64(header.schemaVersion))
                statement.bind(8, header.keyID)
                statement.bind(9, receivedAt)
                statement.bind(10, signed.envelope)
                try statement.run()
                position = db.lastInsertedRowID
            }
            let scopeText = header.scope.description
            let scopeN = try nameNumber(scopeText)
            let checkReplacedEarly = try hasReplacedEarly(deviceN: deviceN, seq: header.seq)
            var index: UInt32 = 0
            for row in signed.changeSet.rows {
                try mergeRow(row, header: header, deviceN: deviceN, scopeN: scopeN, scopeText: scopeText, firstIndex: index,
                             checkReplacedEarly: checkReplacedEarly, undo: &undo)
                index += UInt32(row.writes.count)
            }
            heads[deviceN] = Head(seq: header.seq, hash: signed.hash)
            dirtyHeads.insert(deviceN)
            if header.hlc.rawValue > hlcMax, header.hlc.milliseconds <= now + Limits.clockDriftMillisecondsMax {
                hlcMax = header.hlc.rawValue
            }
            try release!.run()
            if rows.count > Limits.cachedRowsMax { try flushRows(evict: true) }
            return position
        } catch {
            try rollback!.run()
            try release!.run()
            for (key, previous) in undo { rows[key] = previous }
            replacedEarlyCount = replacedEarlyBefore
            throw error
        }
    }

    private func mergeRow(
        _ row: RowChange, header: ChangeSetHeader, deviceN: Int64, scopeN: Int64, scopeText: String, firstIndex: UInt32,
        checkReplacedEarly: Bool, undo: inout [RowKey: CachedRow?]
    ) throws {
        let tableN = try nameNumber(row.table)
        let key = RowKey(tableN: tableN, row: row.row)
        let cached = try cachedRow(key)
        if undo[key] == nil { undo[key] = .some(rows[key]) }
        var survivors = cached.survivors
        let existingScope = cached.scopeN
        // A row belongs to the scope of the change set that first wrote it.
        if let existingScope, existingScope != scopeN {
            throw LinliError(
                .outOfScope,
                "record \(row.table) \(row.row.hex) belongs to \(try name(existingScope)); a change set for \(header.scope) cannot change it")
        }
        var index = firstIndex
        for write in row.writes {
            let fieldN = try nameNumber(write.field)
            for replaced in write.replaces {
                let replacedN = try deviceNumber(replaced.device)
                if let position = survivors.firstIndex(where: {
                    $0.fieldN == fieldN && $0.deviceN == replacedN && $0.seq == replaced.seq && $0.index == replaced.index
                }) {
                    survivors.remove(at: position)
                } else if replaced.seq > (try head(replacedN)).seq {
                    // Replaced before its own write arrived: remember, so
                    // that write never becomes a survivor of this field.
                    let insert = insertReplacedEarly!
                    insert.bind(1, replacedN)
                    insert.bind(2, replaced.seq)
                    insert.bind(3, Int64(replaced.index))
                    insert.bind(4, tableN)
                    insert.bind(5, row.row)
                    insert.bind(6, fieldN)
                    try insert.run()
                    replacedEarlyCount += 1
                }
            }
            if try !checkReplacedEarly || !wasReplacedEarly(deviceN: deviceN, seq: header.seq, index: index, tableN: tableN, row: row.row, fieldN: fieldN) {
                survivors.append(Stored(fieldN: fieldN, deviceN: deviceN, seq: header.seq, index: index, hlc: header.hlc.rawValue, value: write.value))
            }
            index += 1
        }
        rows[key] = CachedRow(table: row.table, survivors: survivors, scopeN: existingScope ?? scopeN, dirty: true)
    }

    // MARK: Row cache

    /// A row of a table, by this replica's table number and the row id;
    /// ordered as the `linli_row_state` index orders them.
    struct RowKey: Hashable, Comparable {
        let tableN: Int64
        let row: RowID
        static func < (lhs: RowKey, rhs: RowKey) -> Bool { (lhs.tableN, lhs.row) < (rhs.tableN, rhs.row) }
    }

    struct CachedRow {
        let table: String
        var survivors: [Stored]
        /// Nil for a row this replica has never seen.
        var scopeN: Int64?
        var dirty: Bool
    }

    /// Row states read or merged in this transaction, written back by
    /// ``flushRows(evict:)`` in key order: merging a batch touches each
    /// row's index pages once and in order, rather than at random.
    private var rows: [RowKey: CachedRow] = [:]

    private func cachedRow(_ key: RowKey) throws -> CachedRow {
        if let cached = rows[key] { return cached }
        let (survivors, scopeN) = try loadRow(tableN: key.tableN, row: key.row)
        let cached = CachedRow(table: try name(key.tableN), survivors: survivors, scopeN: scopeN, dirty: false)
        rows[key] = cached
        return cached
    }

    /// Survivors of a row as this transaction sees them.
    func survivors(table: String, row: RowID) throws -> [Stored] {
        try cachedRow(RowKey(tableN: try nameNumber(table), row: row)).survivors
    }

    /// The value each declared field of a row shows in this transaction
    /// (the change sets merged before in it included), leaving out fields
    /// in conflict: those have no one value to judge by. Read from the row
    /// cache, which the batch's preload has usually filled already.
    func shownValues(table: TableSchema, row: RowID) throws -> [String: Value] {
        let survivors = try survivors(table: table.name, row: row)
        var shown: [Int64: Stored] = [:]
        var conflicted: Set<Int64> = []
        for stored in survivors {
            if let current = shown[stored.fieldN] {
                conflicted.insert(stored.fieldN)
                if try outranks(stored, current) { shown[stored.fieldN] = stored }
            } else {
                shown[stored.fieldN] = stored
            }
        }
        var values: [String: Value] = [:]
        for (fieldN, stored) in shown where !conflicted.contains(fieldN) {
            let field = try name(fieldN)
            if table.field(field) != nil { values[field] = stored.value }
        }
        return values
    }

    /// Reads the rows a batch will touch, in key order.
    func preload(_ touched: [(table: String, row: RowID)]) throws {
        var keys: [RowKey] = []
        keys.reserveCapacity(touched.count)
        for (table, row) in touched where schema.table(table) != nil {
            keys.append(RowKey(tableN: try nameNumber(table), row: row))
        }
        for key in Set(keys).sorted().prefix(Limits.cachedRowsMax) { _ = try cachedRow(key) }
    }

    /// Writes changed rows and their views, in key order.
    func flushRows(evict: Bool) throws {
        let upsert = upsertRow!
        for key in rows.keys.sorted() {
            guard let cached = rows[key], cached.dirty, let scopeN = cached.scopeN else { continue }
            upsert.bind(1, key.tableN)
            upsert.bind(2, key.row)
            upsert.bind(3, scopeN)
            upsert.bind(4, RowStateCodec.encode(cached.survivors))
            try upsert.run()
            if let table = schema.table(cached.table) {
                try updateView(table, row: key.row, scope: try name(scopeN), survivors: cached.survivors)
            }
            rows[key]?.dirty = false
        }
        if evict { rows.removeAll(keepingCapacity: true) }
    }

    /// Whether any write of change set (device, seq) was replaced before it
    /// arrived; one probe per change set spares one per write.
    func hasReplacedEarly(deviceN: Int64, seq: UInt64) throws -> Bool {
        guard replacedEarlyCount > 0 else { return false }
        let probe = probeReplacedEarly!
        probe.bind(1, deviceN)
        probe.bind(2, seq)
        let found = try probe.step()
        probe.reset()
        return found
    }

    private func wasReplacedEarly(deviceN: Int64, seq: UInt64, index: UInt32, tableN: Int64, row: RowID, fieldN: Int64) throws -> Bool {
        guard replacedEarlyCount > 0 else { return false }
        let take = takeReplacedEarly!
        take.bind(1, deviceN)
        take.bind(2, seq)
        take.bind(3, Int64(index))
        take.bind(4, tableN)
        take.bind(5, row)
        take.bind(6, fieldN)
        let found = try take.step()
        take.reset()
        if found { replacedEarlyCount -= 1 }
        return found
    }

    /// The survivors of every field of a row, and the scope it belongs to
    /// (nil for a row this replica has not seen).
    func loadRow(tableN: Int64, row: RowID) throws -> (survivors: [Stored], scopeN: Int64?) {
        let select = selectRow!
        select.bind(1, tableN)
        select.bind(2, row)
        defer { select.reset() }
        guard try select.step() else { return ([], nil) }
        return (try RowStateCodec.decode(select.data(1)), select.int64(0))
    }

    /// The survivors of one field, grouped from a row's survivors.
    static func survivors(of fieldN: Int64, in all: [Stored]) -> [Stored] { all.filter { $0.fieldN == fieldN } }

    /// Rewrites the view row of `row` from its survivors, in one pass over
    /// them.
    func updateView(_ table: TableSchema, row: RowID, scope: String, survivors: [Stored]) throws {
        let statement = try viewStatement(table)
        let positions = try fieldPositions(table)
        let deletedN = try nameNumber(MergeRules.deletedField)
        let deletedPosition = table.fields.count
        // Per declared field (and `_deleted` last): how many survivors, and
        // which is shown.
        var counts = [Int](repeating: 0, count: deletedPosition + 1)
        var shownAt = [Int](repeating: -1, count: deletedPosition + 1)
        var updated: UInt64 = 0
        for (offset, stored) in survivors.enumerated() {
            if stored.hlc > updated { updated = stored.hlc }
            guard let position = stored.fieldN == deletedN ? deletedPosition : positions[stored.fieldN] else { continue }
            counts[position] += 1
            let current = shownAt[position]
            if current < 0 { shownAt[position] = offset } else if try outranks(stored, survivors[current]) { shownAt[position] = offset }
        }
        var conflicts: [String] = []
        if counts[deletedPosition] > 1 { conflicts.append(MergeRules.deletedField) }
        let deleted = shownAt[deletedPosition] >= 0 ? survivors[shownAt[deletedPosition]].value.boolean ?? false : false
        statement.bind(1, row)
        statement.bind(2, scope)
        statement.bind(3, Int64(deleted ? 1 : 0))
        statement.bind(5, updated)
        for position in 0..<deletedPosition {
            if counts[position] > 1 { conflicts.append(table.fields[position].name) }
            statement.bind(Int32(6 + position), shownAt[position] >= 0 ? survivors[shownAt[position]].value : .null)
        }
        if conflicts.isEmpty { statement.bindNull(4) } else { statement.bind(4, conflicts.joined(separator: ",")) }
        try statement.run()
    }

    /// ``MergeRules/outranks(_:_:)`` for stored survivors.
    private func outranks(_ lhs: Stored, _ rhs: Stored) throws -> Bool {
        if lhs.hlc != rhs.hlc { return lhs.hlc > rhs.hlc }
        if lhs.deviceN != rhs.deviceN { return try deviceID(lhs.deviceN) > deviceID(rhs.deviceN) }
        if lhs.seq != rhs.seq { return lhs.seq > rhs.seq }
        return lhs.index > rhs.index
    }

    /// Positions of a declared table's fields by field number.
    private var declaredFieldPositions: [String: [Int64: Int]] = [:]

    private func fieldPositions(_ table: TableSchema) throws -> [Int64: Int] {
        if let positions = declaredFieldPositions[table.name] { return positions }
        var positions: [Int64: Int] = [:]
        for (offset, field) in table.fields.enumerated() { positions[try nameNumber(field.name)] = offset }
        declaredFieldPositions[table.name] = positions
        return positions
    }

    private func viewStatement(_ table: TableSchema) throws -> RawStatement {
        if let statement = viewStatements[table.name] { return statement }
        let columns = ["id", "_scope", "_deleted", "_conflicts", "_updated_hlc"] + table.fields.map(\.name)
        let quotedColumns = columns.map(StoreSchema.quoted)
        let updates = quotedColumns.dropFirst().map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
        let sql = """
            INSERT INTO \(StoreSchema.quoted(table.name)) (\(quotedColumns.joined(separator: ", ")))
            VALUES (\(Array(repeating: "?", count: columns.count).joined(separator: ", ")))
            ON CONFLICT(id) DO UPDATE SET \(updates)
            """
        let statement = try RawStatement(db, sql)
        viewStatements[table.name] = statement
        return statement
    }
}
