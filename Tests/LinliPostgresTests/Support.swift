import Foundation
import LinliCore
import Logging
@testable import LinliPostgres
import LinliTesting
import PostgresNIO

/// Quiet for tests: only errors of the pool are shown.
let testLogger: Logger = {
    var logger = Logger(label: "linli.postgres.tests")
    logger.logLevel = .error
    return logger
}()

/// A new database on the test process's cluster; its URL.
func freshDatabase(_ prefix: String) async throws -> String {
    try await PostgresCluster.createDatabase(prefix: prefix)
}

/// Opens the store at `url`, runs `body`, and closes the store whatever happens.
@discardableResult
func withStore<T: Sendable>(_ url: String, connections: Int = 4,
                            _ body: (PostgresStore) async throws -> T) async throws -> T {
    let store = try await PostgresStore.open(PostgresLocation(url: url), connections: connections, logger: testLogger)
    do {
        let value = try await body(store)
        await store.close()
        return value
    } catch {
        await store.close()
        throw error
    }
}

/// Stand-ins for several server processes on one database: one store,
/// so one pool of connections, each.
func openProcesses(_ url: String, count: Int = 3) async throws -> [PostgresStore] {
    var stores: [PostgresStore] = []
    do {
        for _ in 0 ..< count {
            stores.append(try await PostgresStore.open(PostgresLocation(url: url), connections: 8, logger: testLogger))
        }
    } catch {
        for store in stores { await store.close() }
        throw error
    }
    return stores
}

/// A made-up log entry: what the log stores does not depend on what the
/// envelope says, so these need no signature.
func syntheticEntry(device: DeviceID, seq: UInt64, scope: Scope, random: inout SeededRandom) -> LogEntryInput {
    var bytes = [UInt8](repeating: 0, count: Int.random(in: 16 ... 300, using: &random))
    for index in bytes.indices { bytes[index] = UInt8.random(in: 0 ... 255, using: &random) }
    let hash = Data((0 ..< 32).map { _ in UInt8.random(in: 0 ... 255, using: &random) })
    let prev = seq == 1 ? Data() : Data((0 ..< 32).map { _ in UInt8.random(in: 0 ... 255, using: &random) })
    return LogEntryInput(device: device, seq: seq, hash: hash, prev: prev, scope: scope,
                         hlc: UInt64.random(in: 1 ... 1 << 60, using: &random), user: "巡查员\(seq % 7)",
                         schemaVersion: 1, keyID: Data(repeating: 7, count: 8),
                         receivedAtMilliseconds: 1_700_000_000_000 + seq, envelope: Data(bytes))
}

/// Runs one statement on the database at `url` through a client of its
/// own, without opening a store (so without migrating): what the tests use
/// to look at a database the store refuses.
func rawQuery(_ url: String, _ query: PostgresQuery) async throws -> [PostgresRow] {
    let location = try PostgresLocation(url: url)
    let configuration = PostgresClient.Configuration(host: location.host, port: location.port, username: location.user,
                                                     password: nil, database: location.database, tls: .disable)
    let client = PostgresClient(configuration: configuration, backgroundLogger: testLogger)
    let running = Task { await client.run() }
    defer { running.cancel() }
    return try await client.withConnection { connection in
        try await connection.query(query, logger: testLogger).collect()
    }
}
