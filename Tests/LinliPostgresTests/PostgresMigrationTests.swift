import Foundation
import LinliCore
@testable import LinliPostgres
import LinliTesting
import PostgresNIO
import Testing

@Suite("PostgreSQL store migrations")
struct PostgresMigrationTests {
    /// What the tables look like: every column of every table of the
    /// database's public schema, with its type, and every index.
    static func shape(_ store: PostgresStore) async throws -> [String] {
        let columns = try await store.query("read the columns", """
            SELECT table_name || '.' || column_name || ' ' || data_type FROM information_schema.columns
            WHERE table_schema = 'public' ORDER BY table_name, ordinal_position
            """)
        let indexes = try await store.query("read the indexes", """
            SELECT indexname || ': ' || indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname
            """)
        return try (columns + indexes).map { try $0.decode(String.self) }
    }

    @Test func migratesAFreshDatabaseOnce() async throws {
        let url = try await freshDatabase("migrate")
        let (first, firstShape, firstEnd) = try await withStore(url) { store async throws in
            (try await store.appliedMigrations(), try await Self.shape(store), try await store.logEnd())
        }
        #expect(first.map(\.version) == Array(1 ... PostgresSchema.version))
        #expect(first.map(\.name) == ["log"])
        #expect(firstEnd == 0)
        #expect(firstShape.contains("linli_log.envelope bytea"))
        #expect(firstShape.contains("linli_log_end.position bigint"))
        #expect(firstShape.contains { $0.hasPrefix("linli_log_device_seq: CREATE UNIQUE INDEX") && $0.hasSuffix("(device, seq)") })
        #expect(firstShape.contains { $0.hasPrefix("linli_log_scope: CREATE INDEX") && $0.contains("(scope, ") })

        // Opening it again applies nothing and changes nothing.
        let (second, secondShape) = try await withStore(url) { store async throws in
            (try await store.appliedMigrations(), try await Self.shape(store))
        }
        #expect(second == first)
        #expect(secondShape == firstShape)
    }

    @Test func migrationsAreNumberedFromOneWithoutGaps() {
        #expect(PostgresSchema.migrations.map(\.version) == Array(1 ... PostgresSchema.migrations.count))
        #expect(Set(PostgresSchema.migrations.map(\.name)).count == PostgresSchema.migrations.count)
    }

    /// Several processes starting at once on a new database: each migration
    /// is applied exactly once, and every process opens.
    @Test func processesOpeningAtOnceMigrateOnce() async throws {
        let url = try await freshDatabase("migrate_race")
        let opened = try await withThrowingTaskGroup(of: [PostgresSchema.Applied].self) { group in
            for _ in 0 ..< 4 {
                group.addTask { try await withStore(url, connections: 1) { try await $0.appliedMigrations() } }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(opened.count == 4)
        #expect(Set(opened.map { $0.map(\.version) }) == [Array(1 ... PostgresSchema.version)])
        #expect(Set(opened.map { $0.map(\.appliedAt) }).count == 1)
    }

    @Test func refusesADatabaseOfANewerVersion() async throws {
        let url = try await freshDatabase("migrate_newer")
        let newer = PostgresSchema.version + 1
        try await withStore(url) { store async throws in
            _ = try await store.query("mark the database newer", "INSERT INTO linli_migration (version, name) VALUES (\(newer), 'from the future')")
        }
        do {
            try await withStore(url) { _ in Issue.record("a database at migration \(newer) was opened") }
        } catch let error as LinliError {
            #expect(error.code == .unsupportedFormat)
            let location = try PostgresLocation(url: url)
            #expect(error.message == "the PostgreSQL database \(location) is at migration \(newer), newer than this linli-server knows (\(PostgresSchema.version))")
            #expect(error.hint == "run the linli-server that upgraded it, or a newer one")
        }
        // Nothing was changed by the refusal.
        let versions = try await rawQuery(url, "SELECT version FROM linli_migration ORDER BY version").map { try $0.decode(Int32.self) }
        #expect(versions.map(Int.init) == Array(1 ... newer))
    }

    /// A database that cannot be reached is refused `unavailable` within the
    /// connect time, naming where it was looked for.
    @Test func refusesAnUnreachableDatabase() async throws {
        let port = try PostgresCluster.freePort()
        let location = PostgresLocation(user: "linli", host: "127.0.0.1", port: port, database: "none", tls: .disable)
        let started = ContinuousClock.now
        do {
            let store = try await PostgresStore.open(location, connections: 1, connectSeconds: 1, logger: testLogger)
            await store.close()
            Issue.record("a store without a server was opened")
        } catch let error as LinliError {
            #expect(error.code == .unavailable)
            #expect(error.message.contains("PostgreSQL at postgres://linli@127.0.0.1:\(port)/none"), "\(error.message)")
        }
        // The deadline is 1 s; what this catches is a refusal that waits for
        // the pool's retries (minutes), not a slow machine.
        #expect(ContinuousClock.now - started < .seconds(30))
    }
}
