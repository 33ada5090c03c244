import Foundation
import LinliCore
import LinliPostgres
import Testing

@Suite("PostgreSQL store URLs")
struct PostgresLocationTests {
    @Test func readsEveryPart() throws {
        let full = try PostgresLocation(url: "postgres://linli:s%40cret@db.example:6432/district_7?sslmode=require")
        #expect(full == PostgresLocation(user: "linli", password: "s@cret", host: "db.example", port: 6432,
                                         database: "district_7", tls: .require))
        let short = try PostgresLocation(url: "postgresql://linli@127.0.0.1/city")
        #expect(short == PostgresLocation(user: "linli", host: "127.0.0.1", port: 5432, database: "city", tls: .prefer))
        let v6 = try PostgresLocation(url: "postgres://linli@[::1]:5433/city?sslmode=disable")
        #expect(v6.host == "::1")
        #expect(v6.port == 5433)
        #expect(v6.tls == .disable)
    }

    @Test func neverShowsThePassword() throws {
        let location = try PostgresLocation(url: "postgres://linli:hunter2@db:5432/city")
        #expect(location.description == "postgres://linli:***@db:5432/city")
        do {
            _ = try PostgresLocation(url: "postgres://linli:hunter2@db:99999/city")
            Issue.record("a port of 99999 was taken")
        } catch {
            #expect(!error.message.contains("hunter2"))
            #expect(error.message.contains("postgres://linli:***@db:99999/city"))
        }
    }

    /// Each bad URL is refused `invalid_input`, with a message naming what is wrong.
    @Test(arguments: [
        ("db.example/city", "is not a URL"),
        ("mysql://linli@db/city", "starts with mysql://"),
        ("postgres://db.example/city", "names no user"),
        ("postgres://@db.example/city", "names no user"),
        ("postgres://linli@db.example", "names no database"),
        ("postgres://linli@db.example/", "names no database"),
        ("postgres://linli@db.example/a/b", "a database name is one word"),
        ("postgres://linli@:5432/city", "names no host"),
        ("postgres://linli@db.example:http/city", "the port \"http\"; a port is a number from 1 to 65535"),
        ("postgres://linli@db.example:0/city", "the port \"0\""),
        ("postgres://linli@db.example:65536/city", "the port \"65536\""),
        ("postgres://linli@db ex/city", "not a host name or address"),
        ("postgres://linli@db/city?sslmode=verify-full", "sslmode=verify-full; it is disable, prefer or require"),
        ("postgres://linli@db/city?timeout=5", "the parameter \"timeout\", which Linli does not know"),
    ])
    func refusesWithTheReason(url: String, reason: String) {
        do {
            let location = try PostgresLocation(url: url)
            Issue.record("\(url) was read as \(location)")
        } catch {
            #expect(error.code == .invalidInput)
            #expect(error.message.contains(reason), "\(url): \(error.message)")
            #expect(error.hint == "write postgres://USER@HOST:PORT/DATABASE")
        }
    }

    @Test func openingABadURLIsRefusedBeforeAnyConnection() async throws {
        do {
            let store = try await PostgresStore.open(url: "postgres://linli@127.0.0.1:5432")
            await store.close()
            Issue.record("a URL without a database was opened")
        } catch let error as LinliError {
            #expect(error.code == .invalidInput)
            #expect(error.message == "the PostgreSQL URL \"postgres://linli@127.0.0.1:5432\" names no database (the part after the last /)")
        }
    }
}
