import Foundation
import GRDB
import LinliCore
import LinliCrypto
import LinliProtocol
import SwiftProtobuf

/// Bootstrap snapshots: a replica file cut down to some scopes, which a new
/// device adopts instead of replaying the log from zero (PROTOCOL.md 2.4).
///
/// The file is a real replica: its log holds every change set of those
/// scopes through the cursor, with the field state and views already
/// derived. A device that adopts it trusts the server's merge up to the
/// cursor (the manifest is signed with the server's key) but verifies the
/// trust records in it itself, against its own authority root.
extension ReplicaStore {
    /// Writes a snapshot of `scopes` (nil: every scope) to `path` and
    /// returns the log position it holds everything through. Pushes go on
    /// meanwhile: the copy is read in one read transaction of the store.
    ///
    /// When the log holds change sets of other scopes, only the rows of
    /// `scopes` are copied into a new file (change sets, field state and
    /// view rows), with the rest of the replica's tables but not the
    /// server's own bookkeeping (quarantine, held change sets, peers'
    /// cursors): the work grows with the scopes, not with the store, and
    /// the file never held anything else. Otherwise the whole store is
    /// copied with `VACUUM INTO`, the bookkeeping (and any row of another
    /// scope) is deleted from the copy, and if anything was deleted what is
    /// left is copied again with `VACUUM INTO` into a fresh file. Either
    /// way no page of the file keeps what was left out.
    ///
    /// A snapshot is a cache, checked by its hash before it is served and
    /// by the device before it is used, and made again if lost: its files
    /// are written without fsync and without a rollback journal on disk.
    public func writeSnapshot(scopes: Set<Scope>?, to path: String) throws -> Int64 {
        let cut = path + ".cut"
        for file in [path, cut] { try? FileManager.default.removeItem(atPath: file) }
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = OFF; PRAGMA main.journal_mode = MEMORY; " + ReplicaStore.tuningPragmas)
        }
        do {
            if let scopes, let pool = writer as? DatabasePool, try pool.read({ try Self.logHasChangeSets($0, outside: scopes) }) {
                return try Self.writeScopedCopy(scopes, from: pool.path, views: Set(schema.tables.map(\.name)), to: path, configuration: configuration)
            }
            // VACUUM INTO syncs its output as the source connection's
            // synchronous setting says; this copy needs no sync.
            let copyInto = { (db: Database) throws in
                try db.execute(sql: "PRAGMA synchronous = OFF")
                defer { try? db.execute(sql: "PRAGMA synchronous = NORMAL") }
                try db.execute(sql: "VACUUM INTO ?", arguments: [path])
            }
            if let pool = writer as? DatabasePool {
                try pool.unsafeRead(copyInto)
            } else {
                try writer.writeWithoutTransaction(copyInto)
            }
            let copy = try DatabaseQueue(path: path, configuration: configuration)
            let (cursor, deleted) = try copy.write { db -> (Int64, Int) in
                let before = db.totalChangesCount
                let cursor = try Int64.fetchOne(db, sql: "SELECT max(position) FROM linli_log") ?? 0
                if let scopes {
                    let names = scopes.map(\.description).sorted()
                    let list = names.map { _ in "?" }.joined(separator: ", ")
                    let arguments = StatementArguments(names)
                    try db.execute(sql: "DELETE FROM linli_log WHERE scope NOT IN (\(list))", arguments: arguments)
                    try db.execute(sql: """
                        DELETE FROM linli_row_state WHERE scope_n NOT IN (SELECT n FROM linli_name WHERE name IN (\(list)))
                        """, arguments: arguments)
                    try db.execute(sql: """
                        DELETE FROM linli_replaced_early WHERE NOT EXISTS
                            (SELECT 1 FROM linli_row_state r WHERE r.table_n = linli_replaced_early.table_n AND r.row = linli_replaced_early.row)
                        """)
                    for table in schema.tables where try db.tableExists(table.name) {
                        try db.execute(sql: "DELETE FROM \(StoreSchema.quoted(table.name)) WHERE _scope NOT IN (\(list))", arguments: arguments)
                    }
                }
                try db.execute(sql: """
                    DELETE FROM linli_quarantine; DELETE FROM linli_held; DELETE FROM linli_refused_early;
                    DELETE FROM linli_meta WHERE key LIKE 'cursor:%' OR key LIKE 'ack:%';
                    """)
                return (cursor, db.totalChangesCount - before)
            }
            try copy.close()
            if deleted > 0 {
                try FileManager.default.moveItem(atPath: path, toPath: cut)
                defer { try? FileManager.default.removeItem(atPath: cut) }
                let remaining = try DatabaseQueue(path: cut, configuration: configuration)
                try remaining.writeWithoutTransaction { db in try db.execute(sql: "VACUUM INTO ?", arguments: [path]) }
                try remaining.close()
            }
            return cursor
        } catch let error as LinliError {
            for file in [path, cut] { try? FileManager.default.removeItem(atPath: file) }
            throw error
        } catch {
            for file in [path, cut] { try? FileManager.default.removeItem(atPath: file) }
            throw LinliError(.storage, "cannot write a snapshot to \(path): \(error)", hint: "check the free disk space of the server's data folder")
        }
    }

    /// Whether the log holds a change set outside `scopes`: one probe of
    /// the scope index per gap between the sorted scope names.
    static func logHasChangeSets(_ db: Database, outside scopes: Set<Scope>) throws -> Bool {
        let names = scopes.map(\.description).sorted()
        guard let first = names.first, let last = names.last else {
            return try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM linli_log)") ?? false
        }
        var probes = ["scope < ?"]
        var arguments: [String] = [first]
        for (lower, upper) in zip(names, names.dropFirst()) {
            probes.append("scope > ? AND scope < ?")
            arguments += [lower, upper]
        }
        probes.append("scope > ?")
        arguments.append(last)
        let sql = "SELECT " + probes.map { "EXISTS (SELECT 1 FROM linli_log WHERE \($0))" }.joined(separator: " OR ")
        return try Bool.fetchOne(db, sql: sql, arguments: StatementArguments(arguments)) ?? false
    }

    /// Copies the replica file at `source` into a new file at `path`,
    /// keeping of the change sets, row states and rows of `views` only
    /// those of `scopes`, and leaving out the quarantine, held change sets
    /// and peers' cursors. Every table, index and trigger of the source is
    /// made again from its own SQL; everything is read in one transaction.
    /// Returns the source log's newest position.
    static func writeScopedCopy(_ scopes: Set<Scope>, from source: String, views: Set<String>, to path: String,
                                configuration: Configuration) throws -> Int64 {
        let names = StatementArguments(scopes.map(\.description).sorted())
        let list = scopes.map { _ in "?" }.joined(separator: ", ")
        let target = try DatabaseQueue(path: path, configuration: configuration)
        defer { try? target.close() }
        return try target.writeWithoutTransaction { db in
            try db.execute(sql: "ATTACH DATABASE ? AS source", arguments: [source])
            defer { try? db.execute(sql: "DETACH DATABASE source") }
            var cursor: Int64 = 0
            try db.inTransaction {
                let objects = try Row.fetchAll(db, sql: """
                    SELECT type, name, sql FROM source.sqlite_schema
                    WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid
                    """)
                let tables = objects.filter { ($0["type"] as String) == "table" }
                for table in tables { try db.execute(sql: table["sql"] as String) }
                if try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM source.sqlite_schema WHERE name = 'sqlite_sequence')") == true {
                    try db.execute(sql: "INSERT INTO main.sqlite_sequence SELECT * FROM source.sqlite_sequence")
                }
                for table in tables {
                    let name: String = table["name"]
                    let copy = "INSERT INTO main.\(StoreSchema.quoted(name)) SELECT * FROM source.\(StoreSchema.quoted(name))"
                    switch name {
                    case "linli_quarantine", "linli_held", "linli_refused_early", "linli_replaced_early":
                        continue
                    case "linli_log", "linli_scope_head":
                        try db.execute(sql: copy + " WHERE scope IN (\(list))", arguments: names)
                    case "linli_row_state":
                        try db.execute(sql: copy + " WHERE scope_n IN (SELECT n FROM source.linli_name WHERE name IN (\(list)))", arguments: names)
                    case "linli_meta":
                        try db.execute(sql: copy + " WHERE NOT (key LIKE 'cursor:%' OR key LIKE 'ack:%')")
                    case _ where views.contains(name):
                        try db.execute(sql: copy + " WHERE _scope IN (\(list))", arguments: names)
                    default:
                        try db.execute(sql: copy)
                    }
                }
                try db.execute(sql: """
                    INSERT INTO main.linli_replaced_early SELECT * FROM source.linli_replaced_early e
                    WHERE EXISTS (SELECT 1 FROM main.linli_row_state r WHERE r.table_n = e.table_n AND r.row = e.row)
                    """)
                for object in objects where (object["type"] as String) != "table" { try db.execute(sql: object["sql"] as String) }
                for header in ["user_version", "application_id"] {
                    let value = try Int64.fetchOne(db, sql: "PRAGMA source.\(header)") ?? 0
                    try db.execute(sql: "PRAGMA main.\(header) = \(value)")
                }
                cursor = try Int64.fetchOne(db, sql: "SELECT max(position) FROM source.linli_log") ?? 0
                return .commit
            }
            return cursor
        }
    }

    /// Verifies a downloaded snapshot and makes it the replica at `path`,
    /// which must not exist yet. Returns the opened replica; its cursor
    /// `cursorName` is set to the manifest's cursor, so the next pull
    /// continues from there.
    ///
    /// Checked, in order: the manifest (format, cursor, the server it names
    /// when the device knows its server, `expectedServer`, and its age
    /// against `now`); the file's size and hash against the manifest, before
    /// SQLite reads a byte of it; the file is an intact SQLite replica;
    /// every trust record in it verifies against `authority` (applied to a
    /// scratch replica, exactly as a pull would); the manifest's signer is
    /// a device certified as `server` and not revoked; its signature; and
    /// that the file holds no change set outside the manifest's scopes.
    ///
    /// What the device trusts is then derived from the verified trust
    /// records alone: the file's own key and revocation tables are replaced
    /// by the scratch replica's, so a server cannot plant a key or drop a
    /// revocation (PROTOCOL.md 2.4).
    public static func adoptSnapshot(
        file: String, manifest manifestBytes: Data, signature: Data, authority: PublicKey, schema: Schema,
        at path: String, cursorName: String, expectedServer: DeviceID? = nil,
        now: UInt64 = ReplicaStore.systemClock()
    ) throws -> ReplicaStore {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw LinliError(.invalidInput, "a replica already exists at \(path); a snapshot is only for a new device",
                             hint: "sync the existing replica instead, or move it away first")
        }
        let manifest = try SnapshotManifest(decoding: manifestBytes)
        let serverDevice = manifest.serverDevice
        try manifest.checkServer(expected: expectedServer)
        try manifest.checkAge(now: now)

        // The file's size and hash are judged first, before SQLite reads it.
        guard let (hash, size) = try Blake2b256.hash(fileAt: file) else { throw LinliError(.damagedFile, "cannot read the snapshot file \(file)") }
        try manifest.checkFile(bytes: size, hash: hash)
        let read = Result { () throws -> ([Data], [String], String?) in
            var configuration = Configuration()
            configuration.readonly = true
            let reader = try DatabaseQueue(path: file, configuration: configuration)
            defer { try? reader.close() }
            return try reader.read { db in
                (try Data.fetchAll(db, sql: "SELECT envelope FROM linli_log WHERE scope = 'system' ORDER BY position"),
                 try String.fetchAll(db, sql: "SELECT DISTINCT scope FROM linli_log"),
                 try String.fetchOne(db, sql: "PRAGMA quick_check"))
            }
        }

        // The trust records, verified against our own root.
        let scratch = try ReplicaStore(path: nil, schema: schema, authority: authority)
        let (system, scopes, integrity): ([Data], [String], String?)
        do {
            (system, scopes, integrity) = try read.get()
        } catch {
            throw LinliError(.damagedFile, "the snapshot is not a readable replica: \(error)", hint: "download it again, or replay from zero")
        }
        guard integrity == "ok" else { throw LinliError(.damagedFile, "the snapshot file fails SQLite's check: \(integrity ?? "")") }
        for outcome in try scratch.apply(system) {
            switch outcome.status {
            case .applied, .duplicate: continue
            case .held: throw LinliError(.brokenChain, "the snapshot's trust records have a gap", hint: "replay from zero")
            case .refused(let error):
                throw LinliError(error.code, "a trust record in the snapshot does not verify: \(error.message)", hint: "replay from zero and report the server")
            }
        }
        let signer = try scratch.access(serverDevice)
        guard signer.role == .server else {
            throw LinliError(.notPermitted, "the snapshot is signed by device \(serverDevice.hex), which is a \(signer.role.rawValue), not a server")
        }
        try manifest.checkSignature(signature, key: signer.key)
        try manifest.checkScopes(scopes)

        // Adopt it.
        do {
            try FileManager.default.moveItem(atPath: file, toPath: path)
        } catch {
            throw LinliError(.storage, "cannot move the snapshot to \(path): \(error)")
        }
        // Keys and revocations as the verified trust records make them, not
        // as the file says.
        let (keys, revocations) = try scratch.run {
            try scratch.writer.read { db in
                (try Row.fetchAll(db, sql: "SELECT device, valid_from_seq, key_id, public_key, role, grids FROM linli_device_key"),
                 try Row.fetchAll(db, sql: "SELECT device, last_valid_seq, reason FROM linli_revocation"))
            }
        }
        let store = try ReplicaStore(path: path, schema: schema, authority: authority)
        try store.run {
            try store.writer.write { db in
                try db.execute(sql: "DELETE FROM linli_device_key; DELETE FROM linli_revocation")
                for row in keys {
                    try db.execute(sql: "INSERT INTO linli_device_key (device, valid_from_seq, key_id, public_key, role, grids) VALUES (?, ?, ?, ?, ?, ?)",
                                   arguments: StatementArguments(row.databaseValues))
                }
                for row in revocations {
                    try db.execute(sql: "INSERT INTO linli_revocation (device, last_valid_seq, reason) VALUES (?, ?, ?)",
                                   arguments: StatementArguments(row.databaseValues))
                }
                try Self.store(SyncCursor(name: cursorName, position: manifest.cursor), db)
            }
        }
        return store
    }
}
