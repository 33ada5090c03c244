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
    /// returns the log position it holds everything through.
    ///
    /// The copy is made with `VACUUM INTO` from a read connection, so
    /// pushes go on meanwhile. Change sets, field state and view rows of
    /// other scopes are deleted from the copy, with the server's own
    /// bookkeeping (quarantine, held change sets, peers' cursors), and the
    /// copy is vacuumed again: no page of the file keeps what was deleted.
    public func writeSnapshot(scopes: Set<Scope>?, to path: String) throws -> Int64 {
        try? FileManager.default.removeItem(atPath: path)
        do {
            if let pool = writer as? DatabasePool {
                try pool.unsafeRead { db in try db.execute(sql: "VACUUM INTO ?", arguments: [path]) }
            } else {
                try writer.writeWithoutTransaction { db in try db.execute(sql: "VACUUM INTO ?", arguments: [path]) }
            }
            let copy = try DatabaseQueue(path: path)
            let cursor = try copy.write { db -> Int64 in
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
                    DELETE FROM linli_quarantine; DELETE FROM linli_held;
                    DELETE FROM linli_meta WHERE key LIKE 'cursor:%' OR key LIKE 'ack:%';
                    """)
                return cursor
            }
            try copy.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA journal_mode = DELETE")
                try db.execute(sql: "VACUUM")
            }
            try copy.close()
            return cursor
        } catch let error as LinliError {
            throw error
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            throw LinliError(.storage, "cannot write a snapshot to \(path): \(error)", hint: "check the free disk space of the server's data folder")
        }
    }

    /// Verifies a downloaded snapshot and makes it the replica at `path`,
    /// which must not exist yet. Returns the opened replica; its cursor
    /// `cursorName` is set to the manifest's cursor, so the next pull
    /// continues from there.
    ///
    /// Checked, in order: the file is an intact SQLite replica; every
    /// trust record in it verifies against `authority` (applied to a
    /// scratch replica, exactly as a pull would); the manifest's signer is
    /// a device certified as `server` and not revoked; its signature; the
    /// file's size and hash; and that the file holds no change set outside
    /// the manifest's scopes.
    public static func adoptSnapshot(
        file: String, manifest manifestBytes: Data, signature: Data, authority: PublicKey, schema: Schema,
        at path: String, cursorName: String
    ) throws -> ReplicaStore {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw LinliError(.invalidInput, "a replica already exists at \(path); a snapshot is only for a new device",
                             hint: "sync the existing replica instead, or move it away first")
        }
        let manifest: Linli_V1_SnapshotManifest
        do { manifest = try Linli_V1_SnapshotManifest(serializedBytes: manifestBytes) } catch {
            throw LinliError(.malformed, "the snapshot manifest does not decode: \(error)")
        }
        guard manifest.format == 1 else {
            throw LinliError(.unsupportedFormat, "snapshot format \(manifest.format) is not known to this version", hint: "update the client, or replay from zero")
        }
        guard let serverDevice = DeviceID(bytes: manifest.serverDevice) else { throw LinliError(.malformed, "the snapshot names no server device") }

        // The file's size and hash first: everything else reads it.
        guard let (hash, size) = try Blake2b256.hash(fileAt: file) else { throw LinliError(.damagedFile, "cannot read the snapshot file \(file)") }
        guard size == Int64(manifest.fileBytes) else {
            throw LinliError(.damagedFile, "the snapshot file has \(size) bytes; its manifest says \(manifest.fileBytes)", hint: "download it again")
        }
        guard hash == manifest.fileHash else {
            throw LinliError(.damagedFile, "the snapshot file's hash differs from its manifest's", hint: "download it again")
        }

        // The trust records, verified against our own root.
        let scratch = try ReplicaStore(path: nil, schema: schema, authority: authority)
        let (system, scopes, integrity): ([Data], [String], String?)
        do {
            var configuration = Configuration()
            configuration.readonly = true
            let reader = try DatabaseQueue(path: file, configuration: configuration)
            (system, scopes, integrity) = try reader.read { db in
                (try Data.fetchAll(db, sql: "SELECT envelope FROM linli_log WHERE scope = 'system' ORDER BY position"),
                 try String.fetchAll(db, sql: "SELECT DISTINCT scope FROM linli_log"),
                 try String.fetchOne(db, sql: "PRAGMA quick_check"))
            }
            try reader.close()
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
        guard signer.key.verify(signature: signature, message: SnapshotWire.signingMessage(manifestBytes)) else {
            throw LinliError(.badSignature, "the snapshot manifest's signature does not verify with server \(serverDevice.hex)'s key",
                             hint: "replay from zero and report the server")
        }
        if !manifest.scopes.isEmpty {
            let allowed = Set(manifest.scopes)
            if let stray = scopes.first(where: { !allowed.contains($0) }) {
                throw LinliError(.outOfScope, "the snapshot holds change sets of scope \(stray), outside the scopes it names")
            }
        }

        // Adopt it.
        do {
            try FileManager.default.moveItem(atPath: file, toPath: path)
        } catch {
            throw LinliError(.storage, "cannot move the snapshot to \(path): \(error)")
        }
        let store = try ReplicaStore(path: path, schema: schema, authority: authority)
        try store.run {
            try store.writer.write { db in try Self.store(SyncCursor(name: cursorName, position: Int64(manifest.cursor)), db) }
        }
        return store
    }
}
