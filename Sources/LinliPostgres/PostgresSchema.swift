import Foundation
import LinliCore
import PostgresNIO

/// The tables of a PostgreSQL store, made and upgraded by numbered
/// migrations.
///
/// `linli_migration` holds one row per migration applied: its version, its
/// name and when it was applied. Opening a store applies the missing ones in
/// order, each in its own transaction together with its row, so a migration
/// is applied whole or not at all; one applied already is never run again.
/// Several processes opening one database at once take turns on an advisory
/// lock. A database holding a version above ``version`` was upgraded by a
/// newer Linli and is refused: this program would misread its tables.
///
/// | table | holds |
/// | --- | --- |
/// | `linli_migration` | the migrations applied |
/// | `linli_log` | every accepted change set, in arrival order: its `position`, `device` (16 bytes), `seq`, `hash` (BLAKE2b-256 of the body), `prev`, `scope` (its text form), `hlc`, `user`, `schema_version`, `key_id`, `received_at` (milliseconds since 1970, the server's clock) and the exact `envelope` bytes; unique (`device`, `seq`) and `hash`; an index on (`scope`, `position`) for pulls |
/// | `linli_log_end` | one row: the last position given out; its row lock orders the appends (``PostgresStore/append(_:)``) |
public enum PostgresSchema {
    /// The newest migration this program knows.
    public static var version: Int { migrations.last?.version ?? 0 }

    struct Migration: Sendable {
        let version: Int
        let name: String
        /// Separate statements: the extended query protocol runs one at a time.
        let statements: [String]
    }

    static let migrations: [Migration] = [
        Migration(version: 1, name: "log", statements: [
            """
            CREATE TABLE linli_log (
                position bigint PRIMARY KEY CHECK (position > 0),
                device bytea NOT NULL CHECK (octet_length(device) = 16),
                seq bigint NOT NULL CHECK (seq > 0),
                hash bytea NOT NULL CHECK (octet_length(hash) = 32),
                prev bytea NOT NULL CHECK (octet_length(prev) IN (0, 32)),
                scope text NOT NULL,
                hlc bigint NOT NULL CHECK (hlc >= 0),
                "user" text NOT NULL,
                schema_version bigint NOT NULL CHECK (schema_version BETWEEN 0 AND 4294967295),
                key_id bytea NOT NULL,
                received_at bigint NOT NULL CHECK (received_at >= 0),
                envelope bytea NOT NULL,
                CONSTRAINT linli_log_device_seq UNIQUE (device, seq)
            )
            """,
            "CREATE UNIQUE INDEX linli_log_hash ON linli_log (hash)",
            "CREATE INDEX linli_log_scope ON linli_log (scope, position)",
            // The last position given out. Appends lock this row from the
            // moment they take positions until they commit.
            """
            CREATE TABLE linli_log_end (
                single boolean PRIMARY KEY DEFAULT true CHECK (single),
                position bigint NOT NULL CHECK (position >= 0)
            )
            """,
            "INSERT INTO linli_log_end (single, position) VALUES (true, 0)",
        ]),
    ]

    /// One migration applied to a database.
    public struct Applied: Sendable, Equatable {
        public let version: Int
        public let name: String
        public let appliedAt: Date
    }

    /// The key of the advisory lock that migrating processes take in turn.
    static let lockKey: Int64 = 0x4C49_4E4C_4900_0001

    static let createMigrationTable: PostgresQuery = """
        CREATE TABLE IF NOT EXISTS linli_migration (
            version integer PRIMARY KEY CHECK (version > 0),
            name text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """

    /// Applies the migrations the database lacks, one transaction each.
    static func migrate(_ store: PostgresStore) async throws {
        while true {
            let applied = try await store.transaction("migrate the database") { connection in
                try await store.run("SELECT pg_advisory_xact_lock(\(lockKey))", on: connection)
                try await store.run(createMigrationTable, on: connection)
                let current = try await currentVersion(store, on: connection)
                guard current <= version else {
                    throw LinliError(.unsupportedFormat,
                                     "the PostgreSQL database \(store.location) is at migration \(current), newer than this linli-server knows (\(version))",
                                     hint: "run the linli-server that upgraded it, or a newer one")
                }
                guard let next = migrations.first(where: { $0.version == current + 1 }) else { return false }
                for statement in next.statements {
                    try await store.run(PostgresQuery(unsafeSQL: statement), on: connection)
                }
                try await store.run("INSERT INTO linli_migration (version, name) VALUES (\(next.version), \(next.name))", on: connection)
                store.logger.info("applied PostgreSQL migration \(next.version) (\(next.name)) to \(store.location)")
                return true
            }
            if !applied { return }
        }
    }

    static func currentVersion(_ store: PostgresStore, on connection: PostgresConnection) async throws -> Int {
        let rows = try await store.run("SELECT coalesce(max(version), 0) FROM linli_migration", on: connection)
        guard let row = rows.first else { return 0 }
        return Int(try row.first(Int32.self, "the newest migration"))
    }
}

extension PostgresStore {
    /// The migrations applied to this store's database, oldest first.
    public func appliedMigrations() async throws -> [PostgresSchema.Applied] {
        let rows = try await query("read the migrations applied", "SELECT version, name, applied_at FROM linli_migration ORDER BY version")
        return try rows.map { row in
            do {
                let (version, name, appliedAt) = try row.decode((Int32, String, Date).self)
                return PostgresSchema.Applied(version: Int(version), name: name, appliedAt: appliedAt)
            } catch {
                throw LinliError(.damagedFile, "a row of linli_migration in \(location) cannot be read: \(error)")
            }
        }
    }
}
