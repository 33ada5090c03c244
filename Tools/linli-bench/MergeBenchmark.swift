import ArgumentParser
import CSQLite
import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting

/// `linli-bench merge`: applying signed change sets into a fresh replica,
/// against plain SQLite applying the same field writes as a
/// last-writer-wins upsert.
struct MergeBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Apply ~1.2M signed field writes into a fresh replica; compare with a plain SQLite LWW upsert.")

    @Option(help: "Devices making change sets.") var devices = 100
    @Option(help: "Rows in the data set.") var rows = 100_000
    @Option(help: "Fields per row.") var fields = 12
    @Option(help: "Field writes per change set.") var writesPerChangeSet = 50
    @Option(help: "Share of field writes that edit existing rows (the rest create them).") var editShare = 1.0 / 6.0
    @Option(help: "Seed of the generated workload.") var seed: UInt64 = 1
    @Option(help: "Folder for the database files (a temporary one by default).") var directory: String?
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        guard devices >= 2, rows >= devices, fields >= 2, fields <= 100, writesPerChangeSet >= 1 else {
            throw ValidationError("need at least 2 devices, as many rows as devices, 2 to 100 fields and 1 write per change set")
        }
        guard (0.0..<0.9).contains(editShare) else { throw ValidationError("--edit-share must be in [0, 0.9)") }
    }

    func run() throws {
        let folder = directory.map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("linli-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { if directory == nil { try? FileManager.default.removeItem(at: folder) } }

        log("generating \(rows) rows x \(fields) fields from \(devices) devices…")
        let workload = try MergeWorkload(devices: devices, rows: rows, fields: fields, writesPerChangeSet: writesPerChangeSet,
                                         editShare: editShare, seed: seed)
        let writeCount = workload.writes.count
        let wireBytes = workload.envelopes.reduce(0) { $0 + $1.count }
        log("\(workload.envelopes.count) change sets, \(writeCount) field writes, \(wireBytes) wire bytes")

        // Plain SQLite: one prepared LWW upsert in one transaction.
        let sqlitePath = folder.appendingPathComponent("plain.sqlite").path
        let sqliteSeconds = try PlainSQLite.applyLWW(workload.writes, path: sqlitePath)
        log("plain SQLite: \(round3(sqliteSeconds)) s")

        // Linli: verify, chain-check and merge every change set.
        let linliPath = folder.appendingPathComponent("replica.sqlite").path
        let store = try ReplicaStore(path: linliPath, schema: workload.schema)
        for identity in workload.identities {
            try store.registerDeviceKey(device: identity.device, publicKey: identity.key.publicKey)
        }
        var outcomes: [ApplyOutcome] = []
        let linliSeconds = try Stopwatch.seconds { outcomes = try store.apply(workload.envelopes) }
        let refused = outcomes.filter(\.isRefused)
        guard refused.isEmpty, outcomes.count == workload.envelopes.count else {
            throw ValidationError("the replica refused \(refused.count) change sets: \(refused.prefix(3))")
        }
        try store.checkpoint()
        log("linli: \(round3(linliSeconds)) s")

        // Signature verification alone, on one core, for its share.
        let decoded = try workload.envelopes.map { try SignedChangeSet(envelope: $0) }
        let keys = Dictionary(uniqueKeysWithValues: workload.identities.map { ($0.device, $0.key.publicKey) })
        var verified = 0
        let verifySeconds = Stopwatch.seconds {
            for signed in decoded where signed.verify(with: keys[signed.header.device]!) { verified += 1 }
        }
        guard verified == decoded.count else { throw ValidationError("signatures failed to verify") }

        let counts = try store.counts()
        let fieldCount = rows * fields
        let result: [String: Any] = [
            "benchmark": "merge",
            "devices": devices, "rows": rows, "fields_per_row": fields, "change_sets": workload.envelopes.count,
            "field_writes": writeCount, "conflicting_fields": try store.conflicts().count,
            "survivors": counts.survivors,
            "linli_seconds": round3(linliSeconds), "sqlite_lww_seconds": round3(sqliteSeconds),
            "linli_writes_per_s": Int(Double(writeCount) / linliSeconds),
            "sqlite_lww_writes_per_s": Int(Double(writeCount) / sqliteSeconds),
            "ratio": round3(sqliteSeconds / linliSeconds),
            "verify_seconds_one_core": round3(verifySeconds),
            "verify_share": round3(verifySeconds / linliSeconds),
            "bytes_on_disk_per_field": round3(Double(databaseBytes(linliPath)) / Double(fieldCount)),
            "sqlite_bytes_on_disk_per_field": round3(Double(databaseBytes(sqlitePath)) / Double(fieldCount)),
            "wire_bytes_per_write": round3(Double(wireBytes) / Double(writeCount)),
            "cores": ProcessInfo.processInfo.activeProcessorCount,
        ]
        if json {
            printJSON(result)
        } else {
            for key in result.keys.sorted() { print("\(key): \(result[key]!)") }
        }
    }
}

func log(_ message: String) {
    FileHandle.standardError.write(Data("[linli-bench] \(message)\n".utf8))
}

/// The generated workload: signed envelopes in delivery order, and the same
/// field writes flattened for the plain SQLite baseline.
struct MergeWorkload {
    struct PlainWrite {
        let row: RowID
        let field: String
        let value: Value
        let hlc: UInt64
        let device: DeviceID
    }

    let schema: Schema
    let identities: [DeviceIdentity]
    var envelopes: [Data] = []
    var writes: [PlainWrite] = []

    init(devices: Int, rows: Int, fields: Int, writesPerChangeSet: Int, editShare: Double, seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        let grids = max(1, devices / 10)
        let fieldNames = ["grid"] + (1..<fields).map { "f\($0)" }
        schema = Schema(name: "bench", version: 1, tables: [
            TableSchema("record", scope: .gridField("grid"), fields: fieldNames.enumerated().map { offset, name in
                FieldSchema(name, offset % 3 == 2 ? .integer : .text)
            }),
        ])
        identities = (0..<devices).map { index in
            let seedBytes = SecretBytes(copying: Data((0..<32).map { UInt8(truncatingIfNeeded: $0 &+ index &* 7 &+ Int(seed)) }))
            return DeviceIdentity(device: ID128(high: UInt64(index + 1), low: seed), key: SigningKey(seed: seedBytes), user: "inspector\(index)")
        }

        // Per device: the rows it creates; a share of the fields is left for
        // edits, made later by another device of the same grid.
        struct DeviceState {
            var seq: UInt64 = 0
            var prev = Data()
            var pending: [RowChange] = []
            var pendingWrites = 0
            var pendingFields: Set<FieldKey> = []
            var made: [Data] = []
        }
        var states = Array(repeating: DeviceState(), count: devices)
        var survivors: [FieldKey: [Dot]] = [:]
        var hlc: UInt64 = 1_790_000_000_000 << 16
        let editWrites = Int(Double(rows * fields) * editShare)
        let fieldsAtCreate = max(1, fields - Int((Double(fields) * editShare).rounded()))
        var createdRows: [[RowID]] = Array(repeating: [], count: devices)

        func grid(of device: Int) -> String { "G\(device % grids)" }
        func value(_ field: Int, _ random: inout SeededRandom) -> Value {
            field % 3 == 2 ? .integer(Int64.random(in: 0..<1_000_000, using: &random))
                : .text("v\(Int.random(in: 0..<1_000_000, using: &random))-\(field)")
        }

        func flush(_ device: Int) throws {
            guard !states[device].pending.isEmpty else { return }
            states[device].seq += 1
            hlc += 1
            let identity = identities[device]
            let header = ChangeSetHeader(
                device: identity.device, keyID: identity.key.publicKey.keyID, seq: states[device].seq, prev: states[device].prev,
                hlc: HLCTimestamp(rawValue: hlc), user: identity.user, schemaVersion: 1, scope: .grid(grid(of: device)))
            let changeSet = ChangeSet(header: header, rows: states[device].pending)
            let signed = try SignedChangeSet.sign(changeSet, with: identity.key)
            changeSet.forEachWrite { row, write, dot in
                writes.append(PlainWrite(row: row.row, field: write.field, value: write.value, hlc: hlc, device: identity.device))
                survivors[FieldKey(row: row.row, field: write.field), default: []].removeAll { write.replaces.contains($0) }
                survivors[FieldKey(row: row.row, field: write.field), default: []].append(dot)
            }
            states[device].prev = signed.hash
            states[device].made.append(signed.envelope)
            states[device].pending = []
            states[device].pendingWrites = 0
            states[device].pendingFields = []
        }

        func add(_ device: Int, _ change: RowChange) throws {
            let keys = change.writes.map { FieldKey(row: change.row, field: $0.field) }
            if states[device].pendingWrites + change.writes.count > writesPerChangeSet
                || keys.contains(where: states[device].pendingFields.contains) {
                try flush(device)
            }
            states[device].pendingFields.formUnion(keys)
            states[device].pending.append(change)
            states[device].pendingWrites += change.writes.count
        }

        // Creates.
        for rowIndex in 0..<rows {
            let device = rowIndex % devices
            let row = ID128(high: random.next(), low: random.next())
            var rowWrites = [FieldWrite(field: "grid", value: .text(grid(of: device)))]
            for field in 1..<fieldsAtCreate { rowWrites.append(FieldWrite(field: fieldNames[field], value: value(field, &random))) }
            try add(device, RowChange(table: "record", row: row, writes: rowWrites))
            createdRows[device].append(row)
        }
        for device in 0..<devices { try flush(device) }

        // Edits by other devices of the same grid: fill the fields left
        // empty, and overwrite some. Every tenth edit races another device's
        // edit of the same field (both replace what they saw): a conflict.
        var edits = 0
        while edits < editWrites {
            let editor = Int.random(in: 0..<devices, using: &random)
            let owner = (editor + grids * Int.random(in: 1..<max(2, devices / grids), using: &random)) % devices
            guard let row = createdRows[owner].randomElement(using: &random) else { continue }
            let field = Int.random(in: 1..<fields, using: &random)
            let key = FieldKey(row: row, field: fieldNames[field])
            let seen = survivors[key] ?? []
            try add(editor, RowChange(table: "record", row: row, writes: [FieldWrite(field: fieldNames[field], value: value(field, &random), replaces: seen)]))
            edits += 1
            if edits % 10 == 0 {
                let rival = (editor + grids) % devices
                try add(rival, RowChange(table: "record", row: row, writes: [FieldWrite(field: fieldNames[field], value: value(field, &random), replaces: seen)]))
                edits += 1
            }
        }
        for device in 0..<devices { try flush(device) }

        // Delivery order: round robin over devices, as a server interleaves
        // arrivals.
        var position = Array(repeating: 0, count: devices)
        var remaining = states.reduce(0) { $0 + $1.made.count }
        while remaining > 0 {
            for device in 0..<devices where position[device] < states[device].made.count {
                envelopes.append(states[device].made[position[device]])
                position[device] += 1
                remaining -= 1
            }
        }
    }
}

/// The baseline: plain SQLite, one prepared last-writer-wins upsert in one
/// transaction, WAL and synchronous=NORMAL like the replica.
enum PlainSQLite {
    static func applyLWW(_ writes: [MergeWorkload.PlainWrite], path: String) throws -> Double {
        var db: OpaquePointer?
        guard sqlite3_open(path, &db) == SQLITE_OK, let db else { throw ValidationError("cannot open \(path)") }
        defer { sqlite3_close(db) }
        func exec(_ sql: String) throws {
            guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else {
                throw ValidationError("SQLite: \(String(cString: sqlite3_errmsg(db)))")
            }
        }
        try exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; " + ReplicaStore.tuningPragmas)
        try exec("""
            CREATE TABLE lww (row_id BLOB NOT NULL, field TEXT NOT NULL, value ANY, hlc INTEGER NOT NULL, device BLOB NOT NULL,
                              PRIMARY KEY (row_id, field))
            """)
        var statement: OpaquePointer?
        let sql = """
            INSERT INTO lww (row_id, field, value, hlc, device) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (row_id, field) DO UPDATE SET value = excluded.value, hlc = excluded.hlc, device = excluded.device
            WHERE excluded.hlc > lww.hlc OR (excluded.hlc = lww.hlc AND excluded.device > lww.device)
            """
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
            throw ValidationError("SQLite: \(String(cString: sqlite3_errmsg(db)))")
        }
        defer { sqlite3_finalize(statement) }
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        let seconds = try Stopwatch.seconds {
            try exec("BEGIN")
            for write in writes {
                var row = (write.row.high.bigEndian, write.row.low.bigEndian)
                withUnsafeBytes(of: &row) { _ = sqlite3_bind_blob(statement, 1, $0.baseAddress, 16, transient) }
                sqlite3_bind_text(statement, 2, write.field, -1, transient)
                switch write.value {
                case .integer(let integer): sqlite3_bind_int64(statement, 3, integer)
                case .text(let text): sqlite3_bind_text(statement, 3, text, -1, transient)
                default: sqlite3_bind_null(statement, 3)
                }
                sqlite3_bind_int64(statement, 4, Int64(bitPattern: write.hlc))
                var device = (write.device.high.bigEndian, write.device.low.bigEndian)
                withUnsafeBytes(of: &device) { _ = sqlite3_bind_blob(statement, 5, $0.baseAddress, 16, transient) }
                guard sqlite3_step(statement) == SQLITE_DONE else {
                    throw ValidationError("SQLite: \(String(cString: sqlite3_errmsg(db)))")
                }
                sqlite3_reset(statement)
            }
            try exec("COMMIT")
        }
        try exec("PRAGMA wal_checkpoint(TRUNCATE)")
        return seconds
    }
}
