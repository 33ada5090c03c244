import Foundation
import LinliCore
import LinliCrypto
@testable import LinliPostgres
import LinliProtocol
import LinliStore
import LinliTesting
import PostgresNIO
import Testing

@Suite("PostgreSQL store: the log")
struct PostgresLogTests {
    static let li = Fixtures.identity(0x21, user: "李巡查")
    static let wang = Fixtures.identity(0x22, user: "王巡查")

    static func house(_ use: String, grid: String = "G1", row: UInt64 = 1) -> RowChange {
        RowChange(table: "house", row: RowID(high: 0x484F_5553_45, low: row), writes: [
            FieldWrite(field: "grid", value: .text(grid)),
            FieldWrite(field: "address", value: .text("幸福路\(row)号")),
            FieldWrite(field: "use", value: .text(use)),
        ])
    }

    /// Three real signed change sets of two devices in two scopes.
    static func changeSets() throws -> [SignedChangeSet] {
        let now: UInt64 = 1_760_000_000_000
        let a1 = try Fixtures.signed(li, seq: 1, prev: Data(), hlc: now << 16, rows: [house("owner")])
        let a2 = try Fixtures.signed(li, seq: 2, prev: a1.hash, hlc: (now + 5) << 16, rows: [house("rented")])
        let b1 = try Fixtures.signed(wang, seq: 1, prev: Data(), hlc: (now + 2) << 16, scope: .grid("G2"),
                                     rows: [house("vacant", grid: "G2", row: 9)])
        return [a1, b1, a2]
    }

    @Test func keepsTheExactEnvelopeAndHeaderAtDensePositions() async throws {
        let url = try await freshDatabase("log")
        let signed = try Self.changeSets()
        let inputs = signed.enumerated().map { LogEntryInput($1, receivedAtMilliseconds: 1_760_000_001_000 + UInt64($0)) }
        try await withStore(url) { store async throws in
            #expect(try await store.entries(after: 0).isEmpty)
            #expect(try await store.append(inputs) == [1, 2, 3])
            #expect(try await store.logEnd() == 3)

            let all = try await store.entries(after: 0)
            #expect(all.map(\.position) == [1, 2, 3])
            #expect(all.map(\.input) == inputs)
            // The envelope comes back byte for byte: it decodes and verifies.
            for (entry, original) in zip(all, signed) {
                #expect(entry.envelope == original.envelope)
                let decoded = try SignedChangeSet(envelope: entry.envelope)
                #expect(decoded.hash == entry.hash)
                #expect(decoded.header.seq == entry.seq)
                #expect(decoded.verify(with: (entry.device == Self.li.device ? Self.li : Self.wang).key.publicKey))
            }
            #expect(all[2].prev == signed[0].hash)
            #expect(all[1].scope == .grid("G2"))
            #expect(all[1].user == "王巡查")
            #expect(all[0].hlc == signed[0].header.hlc.rawValue)

            // After a position, by scope, and by page.
            #expect(try await store.entries(after: 1).map(\.position) == [2, 3])
            #expect(try await store.entries(after: 3).isEmpty)
            #expect(try await store.entries(after: 0, scopes: [.grid("G1")]).map(\.position) == [1, 3])
            #expect(try await store.entries(after: 0, scopes: [.grid("G2"), .public]).map(\.position) == [2])
            #expect(try await store.entries(after: 0, scopes: []).isEmpty)
            #expect(try await store.entries(after: 0, limit: 2).map(\.position) == [1, 2])
            #expect(try await store.entries(after: 0, limit: Int.max).count == 3)

            // The next append goes on after the last position.
            let a3 = try Fixtures.signed(Self.li, seq: 3, prev: signed[2].hash, hlc: 1_760_000_000_009 << 16, rows: [Self.house("vacant")])
            #expect(try await store.append([LogEntryInput(a3, receivedAtMilliseconds: 1_760_000_002_000)]) == [4])
            #expect(try await store.logEnd() == 4)
        }
    }

    @Test func appendingAgainIsANoOpThatReturnsThePositions() async throws {
        let url = try await freshDatabase("log_again")
        let inputs = try Self.changeSets().map { LogEntryInput($0, receivedAtMilliseconds: 1_760_000_001_000) }
        try await withStore(url) { store async throws in
            #expect(try await store.append(Array(inputs[0 ..< 2])) == [1, 2])
            // Two already there, one new, and the new one twice in the same append.
            #expect(try await store.append([inputs[1], inputs[2], inputs[0], inputs[2]]) == [2, 3, 1, 3])
            #expect(try await store.append(inputs) == [1, 2, 3])
            #expect(try await store.logEnd() == 3)
            #expect(try await store.entries(after: 0).map(\.input) == inputs)
        }
    }

    @Test func refusesAForkAndWritesNothingOfItsAppend() async throws {
        let url = try await freshDatabase("log_fork")
        let signed = try Self.changeSets()
        let inputs = signed.map { LogEntryInput($0, receivedAtMilliseconds: 1_760_000_001_000) }
        // Another change set of li at seq 2: a fork.
        let other = try Fixtures.signed(Self.li, seq: 2, prev: signed[0].hash, hlc: (1_760_000_000_000 + 7) << 16, rows: [Self.house("commercial")])
        #expect(other.hash != signed[2].hash)
        try await withStore(url) { store async throws in
            #expect(try await store.append(inputs) == [1, 2, 3])
            let wang2 = try Fixtures.signed(Self.wang, seq: 2, prev: signed[1].hash, hlc: (1_760_000_000_000 + 8) << 16, scope: .grid("G2"),
                                            rows: [Self.house("owner", grid: "G2", row: 9)])
            do {
                _ = try await store.append([LogEntryInput(wang2, receivedAtMilliseconds: 1), LogEntryInput(other, receivedAtMilliseconds: 1)])
                Issue.record("a fork was appended")
            } catch let error as LinliError {
                #expect(error.code == .fork)
                #expect(error.message.hasPrefix("the log holds another change set of device \(Self.li.device.hex) at seq 2"))
                #expect(error.hint == "the device's history forked; nothing of this append was written")
            }
            // wang's change set, in the same append, was not written either.
            #expect(try await store.logEnd() == 3)
            #expect(try await store.entries(after: 0).map(\.hash) == signed.map(\.hash))

            // Two change sets at one (device, seq) inside one append: a fork too.
            do {
                _ = try await store.append([LogEntryInput(wang2, receivedAtMilliseconds: 1),
                                            LogEntryInput(wang2, receivedAtMilliseconds: 1).with { $0.hash = Data(repeating: 1, count: 32) }])
                Issue.record("a fork inside one append was appended")
            } catch let error as LinliError {
                #expect(error.code == .fork)
            }
            #expect(try await store.logEnd() == 3)
        }
    }

    /// Pushes of one device landing on several processes at once: the same
    /// change sets are logged once, every process answers their positions;
    /// of two different change sets at one seq exactly one is logged and
    /// the others are refused as forks.
    @Test func processesAppendingTheSameChangeSetsAtOnceLogThemOnce() async throws {
        let url = try await freshDatabase("log_race")
        var random = SeededRandom(seed: 5)
        let device = DeviceID(high: 9, low: 9)
        let batch = (1 ... 40).map { syntheticEntry(device: device, seq: $0, scope: .public, random: &random) }
        let rivals = (0 ..< 4).map { _ in syntheticEntry(device: device, seq: 41, scope: .public, random: &random) }
        let stores = try await openProcesses(url)
        do {
            let answers = try await withThrowingTaskGroup(of: [Int64].self) { group in
                for index in 0 ..< 6 {
                    // Each a little different: the overlap is partial.
                    let mine = Array(batch.dropFirst(index * 3)) + Array(batch.prefix(index * 3))
                    group.addTask { try await stores[index % stores.count].append(mine) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(try await stores[0].logEnd() == 40)
            let logged = try await stores[1].entries(after: 0)
            #expect(logged.count == 40)
            let positionOf = Dictionary(uniqueKeysWithValues: logged.map { ($0.seq, $0.position) })
            #expect(logged.map(\.input).sorted { $0.seq < $1.seq } == batch)
            for answer in answers {
                #expect(Set(answer) == Set(1 ... 40))
            }
            #expect(answers.count == 6)
            #expect(positionOf.count == 40)

            let outcomes = await withTaskGroup(of: Result<[Int64], LinliError>.self) { group in
                for (index, rival) in rivals.enumerated() {
                    group.addTask {
                        do { return .success(try await stores[index % stores.count].append([rival])) } catch let error as LinliError {
                            return .failure(error)
                        } catch { return .failure(LinliError(.storage, "\(error)")) }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            #expect(outcomes.filter { if case .success([41]) = $0 { true } else { false } }.count == 1)
            #expect(outcomes.filter { if case .failure(let error) = $0 { error.code == .fork } else { false } }.count == rivals.count - 1)
            #expect(try await stores[2].logEnd() == 41)
        } catch {
            for store in stores { await store.close() }
            throw error
        }
        for store in stores { await store.close() }
    }

    @Test func refusesWhatNoChangeSetHolds() async throws {
        let url = try await freshDatabase("log_checks")
        let good = try LogEntryInput(Self.changeSets()[0], receivedAtMilliseconds: 1)
        let bad: [(LogEntryInput, LinliError.Code, String)] = [
            (good.with { $0.seq = 0 }, .invalidInput, "has seq 0"),
            (good.with { $0.hash = Data(count: 31) }, .invalidInput, "a hash of 31 bytes"),
            (good.with { $0.prev = Data(count: 8) }, .invalidInput, "a previous hash of 8 bytes"),
            (good.with { $0.keyID = Data() }, .invalidInput, "a key id of 0 bytes"),
            (good.with { $0.hlc = UInt64.max }, .invalidInput, "a time beyond what the log stores"),
            (good.with { $0.envelope = Data(count: Limits.changeSetBytesMax + 1) }, .overLimit, "changeSetBytesMax"),
            (good.with { $0.envelope = Data() }, .overLimit, "an envelope of 0 bytes"),
            (good.with { $0.user = String(repeating: "李", count: Limits.userBytesMax) }, .overLimit, "userBytesMax"),
        ]
        try await withStore(url) { store async throws in
            for (entry, code, words) in bad {
                do {
                    _ = try await store.append([entry])
                    Issue.record("appended an entry that should be refused for \(words)")
                } catch let error as LinliError {
                    #expect(error.code == code)
                    #expect(error.message.contains(words), "\(error.message)")
                }
            }
            let tooMany = Array(repeating: good, count: Limits.groupCommitChangeSetsMax + 1)
            await #expect(throws: LinliError.self) { _ = try await store.append(tooMany) }
            await #expect(throws: LinliError(.invalidInput, "a pull of 0 change sets; at least 1")) {
                _ = try await store.entries(after: 0, limit: 0)
            }
            await #expect(throws: LinliError(.invalidInput, "a pull after position -1; positions start at 0")) {
                _ = try await store.entries(after: -1)
            }
            #expect(try await store.logEnd() == 0)
        }
    }

    /// A value in the database that no change set can have is reported,
    /// not trapped on or passed on.
    @Test func reportsAStoredValueOutOfRange() async throws {
        let url = try await freshDatabase("log_damaged")
        let good = try LogEntryInput(Self.changeSets()[0], receivedAtMilliseconds: 1)
        try await withStore(url) { store async throws in
            #expect(try await store.append([good]) == [1])
            _ = try await store.query("damage a row", "UPDATE linli_log SET scope = 'grid:' WHERE position = 1")
            do {
                _ = try await store.entries(after: 0)
                Issue.record("a row with a broken scope was read")
            } catch let error as LinliError {
                #expect(error.code == .damagedFile)
                #expect(error.message.contains("at position 1 the scope \"grid:\""), "\(error.message)")
            }
        }
    }

    /// Appends larger than one statement go in several, in one transaction.
    @Test func splitsALargeAppendIntoStatements() async throws {
        let url = try await freshDatabase("log_large")
        var random = SeededRandom(seed: 77)
        let device = DeviceID(high: 1, low: 2)
        let count = Limits.postgresStatementRowsMax * 2 + 7
        let inputs = (1 ... UInt64(count)).map { syntheticEntry(device: device, seq: $0, scope: .public, random: &random) }
        try await withStore(url) { store async throws in
            #expect(try await store.append(inputs) == Array(1 ... Int64(count)))
            var read: [LogEntry] = []
            while true {
                let page = try await store.entries(after: read.last?.position ?? 0)
                if page.isEmpty { break }
                #expect(page.count <= Limits.pullChangeSetsMax)
                read += page
            }
            #expect(read.map(\.input) == inputs)
        }
    }
}

extension LogEntryInput {
    func with(_ change: (inout LogEntryInput) -> Void) -> LogEntryInput {
        var copy = self
        change(&copy)
        return copy
    }
}
