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
    struct Stored {
        var deviceN: Int64
        var seq: UInt64
        var index: UInt32
        var hlc: UInt64
        var value: Value
    }

    private lazy var insertLog = prepare("""
        INSERT INTO linli_log (device_n, seq, hash, hlc, user, scope, schema_version, key_id, received_at, envelope)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """)
    private lazy var selectRowScope = prepare("SELECT scope_n FROM linli_row WHERE table_n = ? AND row = ?")
    private lazy var insertRowScope = prepare("INSERT INTO linli_row (table_n, row, scope_n) VALUES (?, ?, ?)")
    private lazy var selectSurvivors = prepare(
        "SELECT field_n, device_n, seq, idx, hlc, kind, value FROM linli_field WHERE table_n = ? AND row = ?")
    private lazy var insertSurvivor = prepare("""
        INSERT INTO linli_field (table_n, row, field_n, device_n, seq, idx, hlc, kind, value)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
        """)
    private lazy var deleteSurvivor = prepare(
        "DELETE FROM linli_field WHERE table_n = ? AND row = ? AND field_n = ? AND device_n = ? AND seq = ?")
    private lazy var insertReplacedEarly = prepare(
        "INSERT OR IGNORE INTO linli_replaced_early (device_n, seq, idx, table_n, row, field_n) VALUES (?, ?, ?, ?, ?, ?)")
    private lazy var takeReplacedEarly = prepare("""
        DELETE FROM linli_replaced_early
        WHERE device_n = ? AND seq = ? AND idx = ? AND table_n = ? AND row = ? AND field_n = ? RETURNING 1
        """)
    private var viewStatements: [String: RawStatement] = [:]
    private var preparationError: LinliError?

    init(_ db: Database, schema: Schema, now: UInt64) throws {
        self.db = db
        self.schema = schema
        self.now = now
        forked = Set(try Data.fetchAll(db, sql: "SELECT device FROM linli_forked_device").compactMap { DeviceID(bytes: $0) })
        replacedEarlyCount = try Int64.fetchOne(db, sql: "SELECT count(*) FROM linli_replaced_early") ?? 0
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

    /// Writes the heads changed in this session. Call once, before commit.
    func finish() throws {
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
        try db.execute(sql: "SAVEPOINT linli_merge")
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
            let scopeN = try nameNumber(header.scope.description)
            var index: UInt32 = 0
            for row in signed.changeSet.rows {
                try mergeRow(row, header: header, deviceN: deviceN, scopeN: scopeN, firstIndex: index)
                index += UInt32(row.writes.count)
            }
            heads[deviceN] = Head(seq: header.seq, hash: signed.hash)
            dirtyHeads.insert(deviceN)
            if header.hlc.rawValue > hlcMax, header.hlc.milliseconds <= now + Limits.clockDriftMillisecondsMax {
                hlcMax = header.hlc.rawValue
            }
            try db.execute(sql: "RELEASE linli_merge")
            return position
        } catch {
            try db.execute(sql: "ROLLBACK TO linli_merge")
            try db.execute(sql: "RELEASE linli_merge")
            throw error
        }
    }

    private func mergeRow(_ row: RowChange, header: ChangeSetHeader, deviceN: Int64, scopeN: Int64, firstIndex: UInt32) throws {
        let tableN = try nameNumber(row.table)
        // A row belongs to the scope of the change set that first wrote it.
        let scopeLookup = selectRowScope!
        scopeLookup.bind(1, tableN)
        scopeLookup.bind(2, row.row)
        let existingScope: Int64? = try scopeLookup.step() ? scopeLookup.int64(0) : nil
        scopeLookup.reset()
        if let existingScope {
            guard existingScope == scopeN else {
                throw LinliError(
                    .outOfScope,
                    "record \(row.table) \(row.row.hex) belongs to \(try name(existingScope)); a change set for \(header.scope) cannot change it")
            }
        } else {
            let insert = insertRowScope!
            insert.bind(1, tableN)
            insert.bind(2, row.row)
            insert.bind(3, scopeN)
            try insert.run()
        }

        var survivors = try loadSurvivors(tableN: tableN, row: row.row)
        var index = firstIndex
        for write in row.writes {
            let fieldN = try nameNumber(write.field)
            var list = survivors[fieldN] ?? []
            for replaced in write.replaces {
                let replacedN = try deviceNumber(replaced.device)
                if let position = list.firstIndex(where: { $0.deviceN == replacedN && $0.seq == replaced.seq && $0.index == replaced.index }) {
                    list.remove(at: position)
                    let delete = deleteSurvivor!
                    delete.bind(1, tableN)
                    delete.bind(2, row.row)
                    delete.bind(3, fieldN)
                    delete.bind(4, replacedN)
                    delete.bind(5, replaced.seq)
                    try delete.run()
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
            if try !wasReplacedEarly(deviceN: deviceN, seq: header.seq, index: index, tableN: tableN, row: row.row, fieldN: fieldN) {
                let stored = Stored(deviceN: deviceN, seq: header.seq, index: index, hlc: header.hlc.rawValue, value: write.value)
                list.append(stored)
                let insert = insertSurvivor!
                insert.bind(1, tableN)
                insert.bind(2, row.row)
                insert.bind(3, fieldN)
                insert.bind(4, deviceN)
                insert.bind(5, header.seq)
                insert.bind(6, Int64(index))
                insert.bind(7, header.hlc.rawValue)
                insert.bind(8, Int64(write.value.kindTag))
                insert.bind(9, write.value)
                try insert.run()
            }
            survivors[fieldN] = list
            index += 1
        }
        if let table = schema.table(row.table) {
            try updateView(table, row: row.row, scope: header.scope.description, survivors: survivors)
        }
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

    func loadSurvivors(tableN: Int64, row: RowID) throws -> [Int64: [Stored]] {
        let select = selectSurvivors!
        select.bind(1, tableN)
        select.bind(2, row)
        var survivors: [Int64: [Stored]] = [:]
        while try select.step() {
            let stored = Stored(
                deviceN: select.int64(1), seq: UInt64(select.int64(2)), index: UInt32(select.int64(3)),
                hlc: UInt64(bitPattern: select.int64(4)), value: select.value(6, kind: select.int64(5)))
            survivors[select.int64(0), default: []].append(stored)
        }
        select.reset()
        return survivors
    }

    /// The survivor people see: see ``MergeRules/outranks(_:_:)``.
    func shown(_ list: [Stored]) throws -> Stored? {
        if list.count <= 1 { return list.first }
        var best: Stored?
        var bestSurvivor: Survivor?
        for stored in list {
            let survivor = Survivor(
                dot: Dot(device: try deviceID(stored.deviceN), seq: stored.seq, index: stored.index),
                hlc: HLCTimestamp(rawValue: stored.hlc), value: stored.value)
            if bestSurvivor.map({ MergeRules.outranks(survivor, $0) }) ?? true {
                best = stored
                bestSurvivor = survivor
            }
        }
        return best
    }

    /// Rewrites the view row of `row` from its survivors.
    func updateView(_ table: TableSchema, row: RowID, scope: String, survivors: [Int64: [Stored]]) throws {
        let statement = try viewStatement(table)
        var conflicts: [String] = []
        var updated: UInt64 = 0
        for list in survivors.values { for stored in list where stored.hlc > updated { updated = stored.hlc } }
        let deleted = try shown(survivors[try nameNumber(MergeRules.deletedField)] ?? [])?.value.boolean ?? false
        statement.bind(1, row)
        statement.bind(2, scope)
        statement.bind(3, Int64(deleted ? 1 : 0))
        statement.bind(5, updated)
        for (offset, field) in table.fields.enumerated() {
            let list = survivors[try nameNumber(field.name)] ?? []
            if list.count > 1 { conflicts.append(field.name) }
            statement.bind(Int32(6 + offset), try shown(list)?.value ?? .null)
        }
        if (survivors[try nameNumber(MergeRules.deletedField)]?.count ?? 0) > 1 { conflicts.insert(MergeRules.deletedField, at: 0) }
        if conflicts.isEmpty { statement.bindNull(4) } else { statement.bind(4, conflicts.joined(separator: ",")) }
        try statement.run()
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
