import Foundation
import LinliCore
import Logging
import NIOCore
import NIOSSL
import PostgresNIO

/// The server's store on PostgreSQL, shared by several `linli-server`
/// processes (DESIGN-NOTES §6).
///
/// Each process opens its own ``PostgresStore``: one pool of at most
/// ``Limits/postgresConnectionsMax`` connections. Opening brings the
/// database's tables to this program's version (``PostgresSchema``) and
/// refuses a database made by a newer one.
///
/// This is the store's foundation: the server's log with a pull cursor that
/// is safe under concurrent commits from several processes (``append(_:)``,
/// ``entries(after:scopes:limit:)``, ``logEnd()``). The rest of
/// `SyncStorage` (heads, field state, views, quarantine, trust records)
/// builds on it.
///
/// Every failure is a ``LinliError``: `invalid_input` for a bad URL or
/// entry, `fork` for a second change set at a device's seq, `unavailable`
/// when PostgreSQL cannot be reached, `unsupported_format` for a database
/// of a newer version, `damaged_file` for a value in the database that no
/// change set can have, `storage` for anything else PostgreSQL refuses.
public final class PostgresStore: Sendable {
    public let location: PostgresLocation
    let client: PostgresClient
    let logger: Logger
    private let running: Task<Void, Never>

    private init(location: PostgresLocation, client: PostgresClient, logger: Logger, running: Task<Void, Never>) {
        self.location = location
        self.client = client
        self.logger = logger
        self.running = running
    }

    /// Opens the store at `url` (`postgres://USER@HOST:PORT/DATABASE`) and
    /// migrates it. Call ``close()`` when done.
    public static func open(url: String, connections: Int = Limits.postgresConnectionsMax,
                            logger: Logger = Logger(label: "linli.postgres")) async throws -> PostgresStore {
        try await open(PostgresLocation(url: url), connections: connections, logger: logger)
    }

    /// Opens the store at `location` and migrates it. Call ``close()`` when done.
    public static func open(_ location: PostgresLocation, connections: Int = Limits.postgresConnectionsMax,
                            connectSeconds: Int = Limits.postgresConnectSecondsMax,
                            logger: Logger = Logger(label: "linli.postgres")) async throws -> PostgresStore {
        guard (1 ... Limits.postgresConnectionsMax).contains(connections) else {
            throw LinliError(.invalidInput, "a PostgreSQL pool of \(connections) connections; it holds 1 to \(Limits.postgresConnectionsMax) (postgresConnectionsMax)")
        }
        var configuration = PostgresClient.Configuration(
            host: location.host, port: location.port, username: location.user, password: location.password,
            database: location.database, tls: tls(location.tls))
        configuration.options.maximumConnections = connections
        configuration.options.connectTimeout = .seconds(Int64(connectSeconds))
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        let running = Task { await client.run() }
        let store = PostgresStore(location: location, client: client, logger: logger, running: running)
        do {
            // The pool retries a connection that fails; the first one is
            // given `connectSeconds` before the store is refused.
            try await store.withDeadline(seconds: connectSeconds) {
                try await PostgresSchema.migrate(store)
            }
        } catch {
            await store.close()
            throw store.mapped(error, doing: "open the store")
        }
        return store
    }

    /// Closes every connection; the store cannot be used afterwards.
    public func close() async {
        running.cancel()
        await running.value
    }

    private static func tls(_ mode: PostgresLocation.TLSMode) -> PostgresClient.Configuration.TLS {
        switch mode {
        case .disable: .disable
        case .prefer: .prefer(.makeClientConfiguration())
        case .require: .require(.makeClientConfiguration())
        }
    }

    // MARK: Statements and transactions

    /// Runs `body` in one READ COMMITTED transaction on one connection:
    /// committed when it returns, rolled back when it throws.
    ///
    /// READ COMMITTED matters for the log: a statement that waited for the
    /// lock on the log's end goes on with the end the other append left
    /// (where REPEATABLE READ would fail it), and each statement sees
    /// everything committed before it started.
    func transaction<T: Sendable>(_ what: String, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await client.withConnection { connection in
                try await run("BEGIN ISOLATION LEVEL READ COMMITTED", on: connection)
                let value: T
                do {
                    value = try await body(connection)
                } catch {
                    _ = try? await run("ROLLBACK", on: connection)
                    throw error
                }
                try await run("COMMIT", on: connection)
                return value
            }
        } catch let race as AppendRace {
            throw race
        } catch {
            throw mapped(error, doing: what)
        }
    }

    /// Runs a statement and reads all its rows.
    @discardableResult
    func run(_ query: PostgresQuery, on connection: PostgresConnection) async throws -> [PostgresRow] {
        try await connection.query(query, logger: logger).collect()
    }

    /// Runs one statement outside a transaction of ours.
    func query(_ what: String, _ query: PostgresQuery) async throws -> [PostgresRow] {
        do {
            return try await client.withConnection { connection in try await run(query, on: connection) }
        } catch {
            throw mapped(error, doing: what)
        }
    }

    /// Refuses `body` as `unavailable` when it takes longer than `seconds`,
    /// and then closes the pool: a `withConnection` that waits for a
    /// connection does not end when its task is cancelled, only when the
    /// pool stops, so without that the refusal would wait for it.
    /// Only for opening, where a store that timed out is closed anyway.
    private func withDeadline<T: Sendable>(seconds: Int, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let running = self.running
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                running.cancel()
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                throw LinliError(.unavailable, "PostgreSQL at \(location) did not answer within \(seconds) s",
                                 hint: "check that it runs and that this host may connect to it")
            }
            return value
        }
    }

    /// Turns an error of PostgreSQL or of the connection pool into a
    /// ``LinliError`` that says which database and what was being done.
    func mapped(_ error: any Error, doing what: String) -> LinliError {
        if let error = error as? LinliError { return error }
        if let error = error as? PSQLError {
            if let info = error.serverInfo {
                let message = info[.message] ?? "an error without a message"
                let state = info[.sqlState] ?? "?"
                return LinliError(.storage, "PostgreSQL at \(location) refused to \(what): \(message) (SQLSTATE \(state))")
            }
            switch error.code {
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .poolClosed, .uncleanShutdown,
                 .sslUnsupported, .failedToAddSSLHandler:
                let cause = error.underlying.map { ": \($0)" } ?? ""
                return LinliError(.unavailable, "could not \(what): no working connection to PostgreSQL at \(location) (\(error.code)\(cause))",
                                  hint: "check that it runs and that this host may connect to it")
            default:
                return LinliError(.storage, "could not \(what) on PostgreSQL at \(location): \(error.code)")
            }
        }
        if error is CancellationError {
            return LinliError(.unavailable, "stopped before it could \(what) on PostgreSQL at \(location)")
        }
        return LinliError(.storage, "could not \(what) on PostgreSQL at \(location): \(error)")
    }
}

extension PostgresRow {
    /// The first column of the row as `T`, or `damaged_file` naming `what`.
    func first<T: PostgresDecodable>(_ type: T.Type, _ what: String) throws -> T {
        do {
            return try decode(T.self)
        } catch {
            throw LinliError(.damagedFile, "PostgreSQL answered \(what) that cannot be read as \(T.self): \(error)")
        }
    }
}
