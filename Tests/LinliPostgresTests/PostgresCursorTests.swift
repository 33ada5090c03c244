import Foundation
import LinliCore
@testable import LinliPostgres
import LinliTesting
import NIOCore
import PostgresNIO
import Testing

/// The pull cursor under concurrent commits from several processes
/// (DESIGN-NOTES §6, PROTOCOL.md 2.2.2).
///
/// Three stores stand in for three `linli-server` processes: each is its own
/// pool of connections. Twelve committers append batches through them; many
/// hold their transaction open for a while after taking positions, and some
/// fail there and are rolled back, then sent again. Meanwhile pullers on
/// every process loop `entries(after: cursor)` and move their cursor to the
/// last position received, until everything is committed and pulled.
///
/// Every random choice comes from one seed: `LINLI_PG_SEED` (default 14).
/// A failure names the seed; `LINLI_PG_SEED=<seed> swift test --filter
/// PostgresCursorTests` replays the same plan.
@Suite("PostgreSQL store: the pull cursor", .serialized)
struct PostgresCursorTests {
    static var seed: UInt64 {
        ProcessInfo.processInfo.environment["LINLI_PG_SEED"].flatMap { UInt64($0) } ?? 14
    }

    @Test func everyPullerSeesEveryEntryOnceInOrder() async throws {
        let seed = Self.seed
        let load = CursorLoad(seed: seed)
        let replay = "seed \(seed) (replay: LINLI_PG_SEED=\(seed) swift test --filter PostgresCursorTests)"
        let url = try await freshDatabase("cursor")
        let stores = try await openProcesses(url, count: CursorLoad.processes)
        let result: CursorLoad.Outcome
        do {
            result = try await load.run(stores: stores) { store, entries, beforeCommit in
                try await store.append(entries, beforeCommit: beforeCommit)
            }
        } catch {
            for store in stores { await store.close() }
            throw error
        }
        let end = try await stores[0].logEnd()
        for store in stores { await store.close() }

        // Everything committed once, at dense positions 1…N.
        let total = load.entryCount
        let committed = result.committed.sorted { $0.position < $1.position }
        #expect(committed.count == total, "\(replay): \(committed.count) of \(total) entries committed")
        #expect(committed.map(\.position) == Array(1 ... Int64(total)), "\(replay): the committed positions are not 1…\(total)")
        #expect(end == Int64(total), "\(replay): the log ends at \(end), not \(total)")
        #expect(result.rolledBack > 0, "\(replay): no transaction was rolled back, so holes were not tried")
        #expect(result.held > 0, "\(replay): no transaction was held open")

        for puller in result.pullers {
            let expected = committed.filter { puller.scopes?.contains($0.input.scope) ?? true }
            let positions = puller.received.map(\.position)
            let lost = Set(expected.map(\.position)).subtracting(positions).sorted()
            #expect(lost.isEmpty, "\(replay): puller \(puller.index) on process \(puller.process) skipped positions \(lost.prefix(20))")
            #expect(positions == expected.map(\.position),
                    "\(replay): puller \(puller.index) received positions out of order or twice")
            #expect(puller.received.map(\.input) == expected.map(\.input),
                    "\(replay): puller \(puller.index) received entries that differ from those committed")
            if puller.scopes == nil {
                #expect(positions == Array(1 ... Int64(total)), "\(replay): puller \(puller.index) did not receive 1…\(total)")
            }
        }
        print("cursor load, \(replay): \(total) entries in \(result.commits) commits, \(result.held) held open, \(result.rolledBack) rolled back; \(result.pullers.count) pullers made \(result.pullers.map(\.pulls).reduce(0, +)) pulls; no entry skipped")
    }

    /// The same load with positions taken from a plain sequence when the
    /// row is inserted (the scheme the store must not use): pullers skip
    /// entries, so the test above would see a skip if the store had one.
    ///
    /// Measured on a 2-core machine with other builds running, seeds 1 to
    /// 10 once and 14 three times (600 to 700 entries each): with a
    /// sequence, the five pullers each skipped 0 to 233 entries, and in
    /// every run at least three of the five skipped some; with the store's
    /// scheme, under the same plans, none skipped any.
    @Test func aSequenceTakenAtInsertMakesPullersSkipEntries() async throws {
        let seed = Self.seed
        let load = CursorLoad(seed: seed)
        let url = try await freshDatabase("cursor_naive")
        let stores = try await openProcesses(url, count: CursorLoad.processes)
        let result: CursorLoad.Outcome
        do {
            _ = try await stores[0].query("make the naive sequence", "CREATE SEQUENCE naive_position")
            result = try await load.run(stores: stores) { store, entries, beforeCommit in
                try await naiveAppend(entries, to: store, beforeCommit: beforeCommit)
            }
        } catch {
            for store in stores { await store.close() }
            throw error
        }
        for store in stores { await store.close() }

        let committed = Set(result.committed.map(\.position))
        #expect(result.committed.count == load.entryCount)
        var lostByPuller: [Int] = []
        for puller in result.pullers {
            let expected = result.committed.filter { puller.scopes?.contains($0.input.scope) ?? true }.map(\.position)
            let received = Set(puller.received.map(\.position))
            #expect(received.isSubset(of: committed))
            lostByPuller.append(Set(expected).subtracting(received).count)
        }
        print("naive sequence, seed \(seed): \(load.entryCount) entries; the pullers skipped \(lostByPuller) of them")
        #expect(lostByPuller.contains { $0 > 0 },
                "seed \(seed): with positions from a sequence no puller skipped an entry; the load does not reach the race it must test")
    }

    /// Inserts with positions from `naive_position`, taken at insert, with
    /// no lock: transactions commit in any order.
    func naiveAppend(_ entries: [LogEntryInput], to store: PostgresStore,
                     beforeCommit: (@Sendable ([Int64]) async throws -> Void)?) async throws -> [Int64] {
        try await store.transaction("append to the naive log") { connection in
            let rows = try await store.run("""
                INSERT INTO linli_log (position, device, seq, hash, prev, scope, hlc, "user", schema_version, key_id, received_at, envelope)
                SELECT nextval('naive_position'), * FROM unnest(
                    \(entries.map { ByteBuffer(bytes: $0.device.bytes) })::bytea[], \(entries.map { Int64($0.seq) })::bigint[],
                    \(entries.map { ByteBuffer(bytes: $0.hash) })::bytea[], \(entries.map { ByteBuffer(bytes: $0.prev) })::bytea[],
                    \(entries.map(\.scope.description))::text[], \(entries.map { Int64($0.hlc) })::bigint[],
                    \(entries.map(\.user))::text[], \(entries.map { Int64($0.schemaVersion) })::bigint[],
                    \(entries.map { ByteBuffer(bytes: $0.keyID) })::bytea[], \(entries.map { Int64($0.receivedAtMilliseconds) })::bigint[],
                    \(entries.map { ByteBuffer(bytes: $0.envelope) })::bytea[])
                RETURNING position
                """, on: connection)
            let positions = try rows.map { try $0.decode(Int64.self) }
            try await beforeCommit?(positions)
            return positions
        }
    }
}

/// One run of committers and pullers, planned from a seed.
struct CursorLoad: Sendable {
    typealias BeforeCommit = @Sendable ([Int64]) async throws -> Void
    static let processes = 3
    static let committerCount = 12
    static let batchesPerCommitter = 12
    static let pullerCount = 5

    struct Batch: Sendable {
        let entries: [LogEntryInput]
        /// How long the transaction stays open after taking its positions.
        let holdMilliseconds: Int
        /// Fails inside the transaction first (rolled back), then is sent again.
        let failsFirst: Bool

        var hold: BeforeCommit? {
            let milliseconds = holdMilliseconds
            if milliseconds == 0 { return nil }
            let sleep: BeforeCommit = { _ in try await Task.sleep(for: .milliseconds(milliseconds)) }
            return sleep
        }
    }

    struct Puller: Sendable {
        let index: Int
        let process: Int
        let limit: Int
        let scopes: Set<Scope>?
        var received: [LogEntry] = []
        var pulls = 0
    }

    struct Outcome: Sendable {
        var committed: [(position: Int64, input: LogEntryInput)] = []
        var commits = 0
        var held = 0
        var rolledBack = 0
        var pullers: [Puller] = []
    }

    struct Abort: Error, CustomStringConvertible {
        var description: String { "the test's planned failure inside the transaction" }
    }

    let seed: UInt64
    let committers: [[Batch]]
    let pullers: [Puller]

    var entryCount: Int { committers.joined().map(\.entries.count).reduce(0, +) }

    init(seed: UInt64) {
        self.seed = seed
        var random = SeededRandom(seed: seed)
        let scopes: [Scope] = [.grid("G1"), .grid("G2"), .public, .system]
        committers = (0 ..< Self.committerCount).map { committer in
            // Two devices per committer, each with its own chain of seqs.
            let devices = (0 ..< 2).map { DeviceID(high: seed, low: UInt64(committer * 2 + $0)) }
            var seqs = [UInt64](repeating: 0, count: devices.count)
            return (0 ..< Self.batchesPerCommitter).map { _ in
                let entries = (0 ..< Int.random(in: 1 ... 8, using: &random)).map { _ in
                    let which = Int.random(in: 0 ..< devices.count, using: &random)
                    seqs[which] += 1
                    return syntheticEntry(device: devices[which], seq: seqs[which],
                                          scope: scopes[Int.random(in: 0 ..< scopes.count, using: &random)], random: &random)
                }
                let hold = Int.random(in: 0 ..< 100, using: &random) < 55 ? Int.random(in: 1 ... 20, using: &random) : 0
                let failsFirst = Int.random(in: 0 ..< 100, using: &random) < 10
                return Batch(entries: entries, holdMilliseconds: hold, failsFirst: failsFirst)
            }
        }
        pullers = (0 ..< Self.pullerCount).map { index in
            Puller(index: index, process: index % Self.processes, limit: Int.random(in: 1 ... 40, using: &random),
                   scopes: index == Self.pullerCount - 1 ? [.grid("G1"), .public] : nil)
        }
    }

    /// Runs every committer and puller at once. `append` is the scheme
    /// under test.
    func run(stores: [PostgresStore],
             append: @escaping @Sendable (PostgresStore, [LogEntryInput], BeforeCommit?) async throws -> [Int64]) async throws -> Outcome {
        let finished = Flag()
        return try await withThrowingTaskGroup(of: Outcome.self) { group in
            for puller in pullers {
                group.addTask {
                    var puller = puller
                    let store = stores[puller.process]
                    var cursor: Int64 = 0
                    while true {
                        // Read before the pull: a pull that started after
                        // the last commit and found nothing ends the loop.
                        let done = await finished.isSet
                        let page = try await store.entries(after: cursor, scopes: puller.scopes, limit: puller.limit)
                        puller.pulls += 1
                        puller.received += page
                        if let last = page.last { cursor = last.position }
                        if page.isEmpty {
                            if done { break }
                            try await Task.sleep(for: .milliseconds(1))
                        }
                    }
                    return Outcome(pullers: [puller])
                }
            }
            group.addTask {
                let outcome = try await withThrowingTaskGroup(of: Outcome.self) { committing in
                    for (index, batches) in committers.enumerated() {
                        committing.addTask {
                            let store = stores[index % stores.count]
                            var outcome = Outcome()
                            for batch in batches {
                                if batch.failsFirst {
                                    let hold = batch.holdMilliseconds
                                    do {
                                        _ = try await append(store, batch.entries) { _ in
                                            if hold > 0 { try await Task.sleep(for: .milliseconds(hold)) }
                                            throw Abort()
                                        }
                                        Issue.record("a transaction that failed inside was committed")
                                    } catch let error as LinliError where error.message.contains(Abort().description) {
                                        outcome.rolledBack += 1
                                    }
                                }
                                let positions = try await append(store, batch.entries, batch.hold)
                                outcome.commits += 1
                                if batch.holdMilliseconds > 0 { outcome.held += 1 }
                                outcome.committed += zip(positions, batch.entries).map { (position: $0, input: $1) }
                            }
                            return outcome
                        }
                    }
                    return try await committing.reduce(into: Outcome()) { $0.merge($1) }
                }
                await finished.set()
                return outcome
            }
            return try await group.reduce(into: Outcome()) { $0.merge($1) }
        }
    }
}

extension CursorLoad.Outcome {
    mutating func merge(_ other: CursorLoad.Outcome) {
        committed += other.committed
        commits += other.commits
        held += other.held
        rolledBack += other.rolledBack
        pullers += other.pullers
        pullers.sort { $0.index < $1.index }
    }
}

actor Flag {
    private(set) var isSet = false
    func set() { isSet = true }
}
