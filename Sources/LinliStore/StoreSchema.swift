import Foundation
import GRDB
import LinliCore

/// The SQLite layout of a replica.
///
/// The log is the truth; everything else is derived from it and rebuilt by
/// ``ReplicaStore/rebuild()``:
///
/// | table | holds | derived |
/// | --- | --- | --- |
/// | `linli_log` | every applied change set: exact envelope bytes plus header columns | no |
/// | `linli_held` | change sets waiting for a missing predecessor | no |
/// | `linli_refused_early` | change sets refused for their role behind a gap (bytes in quarantine), chained when it fills | no |
/// | `linli_scope_head` | the newest logged change set of each device in each scope (triggers on `linli_log`) | kept by triggers |
/// | `linli_quarantine` | refused change sets with the reason | no |
/// | `linli_forked_device` | devices whose history forked | no |
/// | `linli_chained_refusal` | change sets refused for what they say, in their place in the chain | no |
/// | `linli_device_key` | device public keys, the first sequence number each signs, role and grids | from trust records |
/// | `linli_revocation` | the last valid sequence number of each revoked device | from trust records |
/// | `linli_device`, `linli_name` | local numbering of device ids and names | no |
/// | `linli_row_state` | per row: its scope, and the survivors of every field (``RowStateCodec``) | yes |
/// | `linli_replaced_early` | dots replaced before their own write arrived | yes |
/// | `linli_head` | the newest applied change set of each device | yes |
/// | one table per declared table | each field's shown value, `_conflicts` | yes |
enum StoreSchema {
    static func migrator() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE linli_meta (key TEXT PRIMARY KEY NOT NULL, value ANY) STRICT;
                CREATE TABLE linli_device (n INTEGER PRIMARY KEY, device BLOB NOT NULL UNIQUE) STRICT;
                CREATE TABLE linli_name (n INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE) STRICT;
                CREATE TABLE linli_log (
                    position INTEGER PRIMARY KEY,
                    device_n INTEGER NOT NULL REFERENCES linli_device(n),
                    seq INTEGER NOT NULL,
                    hash BLOB NOT NULL,
                    hlc INTEGER NOT NULL,
                    user TEXT NOT NULL,
                    scope TEXT NOT NULL,
                    schema_version INTEGER NOT NULL,
                    key_id BLOB NOT NULL,
                    received_at INTEGER NOT NULL,
                    envelope BLOB NOT NULL,
                    UNIQUE (device_n, seq)
                ) STRICT;
                CREATE INDEX linli_log_scope ON linli_log (scope, position);
                CREATE UNIQUE INDEX linli_log_hash ON linli_log (hash);
                CREATE TABLE linli_head (
                    device_n INTEGER PRIMARY KEY NOT NULL,
                    seq INTEGER NOT NULL,
                    hash BLOB NOT NULL
                ) STRICT;
                CREATE TABLE linli_held (
                    device BLOB NOT NULL,
                    seq INTEGER NOT NULL,
                    hash BLOB NOT NULL,
                    received_at INTEGER NOT NULL,
                    envelope BLOB NOT NULL,
                    PRIMARY KEY (device, seq, hash)
                ) STRICT, WITHOUT ROWID;
                CREATE TABLE linli_quarantine (
                    id INTEGER PRIMARY KEY,
                    received_at INTEGER NOT NULL,
                    device BLOB,
                    seq INTEGER,
                    hash BLOB NOT NULL,
                    code TEXT NOT NULL,
                    message TEXT NOT NULL,
                    envelope BLOB NOT NULL,
                    UNIQUE (hash, code)
                ) STRICT;
                CREATE TABLE linli_forked_device (
                    device BLOB PRIMARY KEY NOT NULL,
                    seq INTEGER NOT NULL,
                    detected_at INTEGER NOT NULL,
                    message TEXT NOT NULL
                ) STRICT;
                CREATE TABLE linli_device_key (
                    device BLOB NOT NULL,
                    valid_from_seq INTEGER NOT NULL,
                    key_id BLOB NOT NULL,
                    public_key BLOB NOT NULL,
                    role TEXT NOT NULL,
                    grids TEXT NOT NULL DEFAULT '',
                    PRIMARY KEY (device, valid_from_seq)
                ) STRICT;
                CREATE TABLE linli_revocation (
                    device BLOB PRIMARY KEY NOT NULL,
                    last_valid_seq INTEGER NOT NULL,
                    reason TEXT NOT NULL
                ) STRICT;
                CREATE TABLE linli_row_state (
                    table_n INTEGER NOT NULL,
                    row BLOB NOT NULL,
                    scope_n INTEGER NOT NULL,
                    state BLOB NOT NULL,
                    PRIMARY KEY (table_n, row)
                ) STRICT;
                CREATE TABLE linli_replaced_early (
                    device_n INTEGER NOT NULL,
                    seq INTEGER NOT NULL,
                    idx INTEGER NOT NULL,
                    table_n INTEGER NOT NULL,
                    row BLOB NOT NULL,
                    field_n INTEGER NOT NULL,
                    PRIMARY KEY (device_n, seq, idx, table_n, row, field_n)
                ) STRICT, WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("v2-log-device-scope") { db in
            // A partial pull asks, per change set, for its device's previous
            // change set in the puller's scopes.
            try db.execute(sql: "CREATE INDEX linli_log_device_scope ON linli_log (device_n, scope, seq)")
        }
        migrator.registerMigration("v3-chained-refusal") { db in
            // Change sets refused for what they say but in their right place
            // in the chain (the bytes are in linli_quarantine). Not derived:
            // a rebuild keeps the heads they set.
            try db.execute(sql: """
                CREATE TABLE linli_chained_refusal (
                    device_n INTEGER NOT NULL,
                    seq INTEGER NOT NULL,
                    hash BLOB NOT NULL,
                    PRIMARY KEY (device_n, seq)
                ) STRICT
                """)
        }
        migrator.registerMigration("v4-peer-refusal") { db in
            // What a peer (the server) refused of this device's own change
            // sets, with its reason, for the device's person to see offline.
            // The change sets themselves stay in the log.
            try db.execute(sql: """
                CREATE TABLE linli_peer_refusal (
                    peer TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    code TEXT NOT NULL,
                    message TEXT NOT NULL,
                    refused_at INTEGER NOT NULL,
                    PRIMARY KEY (peer, seq)
                ) STRICT
                """)
        }
        migrator.registerMigration("v5-scope-head") { db in
            // The newest change set of each device in each scope, kept by
            // triggers, so a heads answer (PROTOCOL.md 2.6) reads one row
            // per device and scope instead of scanning the scopes' log.
            try db.execute(sql: """
                CREATE TABLE linli_scope_head (
                    scope TEXT NOT NULL,
                    device_n INTEGER NOT NULL,
                    seq INTEGER NOT NULL,
                    hash BLOB NOT NULL,
                    PRIMARY KEY (scope, device_n)
                ) STRICT, WITHOUT ROWID;
                INSERT INTO linli_scope_head (scope, device_n, seq, hash)
                    SELECT scope, device_n, max(seq), hash FROM linli_log GROUP BY scope, device_n;
                CREATE TRIGGER linli_scope_head_insert AFTER INSERT ON linli_log BEGIN
                    INSERT INTO linli_scope_head (scope, device_n, seq, hash) VALUES (NEW.scope, NEW.device_n, NEW.seq, NEW.hash)
                    ON CONFLICT (scope, device_n) DO UPDATE SET seq = excluded.seq, hash = excluded.hash WHERE excluded.seq > linli_scope_head.seq;
                END;
                CREATE TRIGGER linli_scope_head_delete AFTER DELETE ON linli_log BEGIN
                    DELETE FROM linli_scope_head WHERE scope = OLD.scope AND device_n = OLD.device_n AND seq = OLD.seq;
                    INSERT INTO linli_scope_head (scope, device_n, seq, hash)
                        SELECT scope, device_n, seq, hash FROM linli_log WHERE device_n = OLD.device_n AND scope = OLD.scope
                        ORDER BY seq DESC LIMIT 1
                    ON CONFLICT (scope, device_n) DO NOTHING;
                END;
                """)
        }
        migrator.registerMigration("v6-refused-early") { db in
            // Change sets refused for their role while behind a gap in their
            // device's chain (the bytes are in linli_quarantine); each takes
            // its place in the chain, as refused, when the gap fills.
            try db.execute(sql: """
                CREATE TABLE linli_refused_early (
                    device BLOB NOT NULL,
                    seq INTEGER NOT NULL,
                    hash BLOB NOT NULL,
                    PRIMARY KEY (device, seq)
                ) STRICT, WITHOUT ROWID;
                CREATE INDEX linli_quarantine_device ON linli_quarantine (device, id);
                """)
        }
        return migrator
    }

    /// The column type of a view column for a declared field type.
    static func columnType(_ type: FieldType) -> String {
        switch type {
        case .text, .date: "TEXT"
        case .integer, .timestamp, .boolean: "INTEGER"
        case .real: "REAL"
        case .bytes, .reference: "BLOB"
        }
    }

    static func quoted(_ identifier: String) -> String { "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }

    /// Creates the view table of `table` if it does not exist, and adds
    /// columns for fields a newer schema version declares. Returns whether
    /// anything changed (then the views must be derived again).
    @discardableResult
    static func ensureView(_ db: Database, _ table: TableSchema) throws -> Bool {
        let name = quoted(table.name)
        if try !db.tableExists(table.name) {
            var columns = [
                "id BLOB PRIMARY KEY NOT NULL", "_scope TEXT NOT NULL", "_deleted INTEGER NOT NULL DEFAULT 0",
                "_conflicts TEXT", "_updated_hlc INTEGER NOT NULL",
            ]
            columns += table.fields.map { "\(quoted($0.name)) \(columnType($0.type))" }
            try db.execute(sql: "CREATE TABLE \(name) (\(columns.joined(separator: ", ")))")
            try db.execute(sql: "CREATE INDEX \(quoted(table.name + "_conflicts")) ON \(name) (_conflicts) WHERE _conflicts IS NOT NULL")
            return true
        }
        let existing = Set(try db.columns(in: table.name).map(\.name))
        var changed = false
        for field in table.fields where !existing.contains(field.name) {
            try db.execute(sql: "ALTER TABLE \(name) ADD COLUMN \(quoted(field.name)) \(columnType(field.type))")
            changed = true
        }
        return changed
    }
}
