import Foundation
import LinliCore
import LinliProtocol
import NIOCore
import PostgresNIO

/// A change set to append to the server's log: the exact envelope bytes
/// and the header columns the server searches by.
public struct LogEntryInput: Sendable, Hashable {
    public var device: DeviceID
    public var seq: UInt64
    /// BLAKE2b-256 of the body: names the change set.
    public var hash: Data
    /// The hash of the device's previous change set; empty at seq 1.
    public var prev: Data
    public var scope: Scope
    public var hlc: UInt64
    public var user: String
    public var schemaVersion: UInt32
    public var keyID: Data
    /// When the server received it, in milliseconds since 1970.
    public var receivedAtMilliseconds: UInt64
    /// The `SignedChangeSet` bytes exactly as received.
    public var envelope: Data

    public init(device: DeviceID, seq: UInt64, hash: Data, prev: Data, scope: Scope, hlc: UInt64, user: String,
                schemaVersion: UInt32, keyID: Data, receivedAtMilliseconds: UInt64, envelope: Data) {
        self.device = device
        self.seq = seq
        self.hash = hash
        self.prev = prev
        self.scope = scope
        self.hlc = hlc
        self.user = user
        self.schemaVersion = schemaVersion
        self.keyID = keyID
        self.receivedAtMilliseconds = receivedAtMilliseconds
        self.envelope = envelope
    }

    /// The entry of a decoded change set, received at `receivedAtMilliseconds`.
    public init(_ signed: SignedChangeSet, receivedAtMilliseconds: UInt64) {
        let header = signed.header
        self.init(device: header.device, seq: header.seq, hash: signed.hash, prev: header.prev, scope: header.scope,
                  hlc: header.hlc.rawValue, user: header.user, schemaVersion: header.schemaVersion, keyID: header.keyID,
                  receivedAtMilliseconds: receivedAtMilliseconds, envelope: signed.envelope)
    }

    /// Refuses what no stored change set can hold, before PostgreSQL sees it.
    func check() throws(LinliError) {
        let name = "the change set \(device.hex.prefix(8))@\(seq)"
        guard (1 ... Limits.sequenceNumberMax).contains(seq) else {
            throw LinliError(.invalidInput, "\(name) has seq \(seq); a seq runs from 1 to \(Limits.sequenceNumberMax)")
        }
        guard hash.count == 32 else { throw LinliError(.invalidInput, "\(name) has a hash of \(hash.count) bytes, not 32") }
        guard prev.isEmpty || prev.count == 32 else {
            throw LinliError(.invalidInput, "\(name) names a previous hash of \(prev.count) bytes, not 32 (or none at seq 1)")
        }
        guard keyID.count == 8 else { throw LinliError(.invalidInput, "\(name) names a key id of \(keyID.count) bytes, not 8") }
        guard hlc <= UInt64(Int64.max), receivedAtMilliseconds <= UInt64(Int64.max) else {
            throw LinliError(.invalidInput, "\(name) has a time beyond what the log stores (hlc \(hlc), received \(receivedAtMilliseconds))")
        }
        guard !envelope.isEmpty, envelope.count <= Limits.changeSetBytesMax else {
            throw LinliError(.overLimit, "\(name) has an envelope of \(envelope.count) bytes; it holds 1 to \(Limits.changeSetBytesMax) (changeSetBytesMax)")
        }
        guard user.utf8.count <= Limits.userBytesMax else {
            throw LinliError(.overLimit, "\(name) names a user of \(user.utf8.count) bytes; at most \(Limits.userBytesMax) (userBytesMax)")
        }
    }
}

/// A change set in the server's log, at its position.
@dynamicMemberLookup
public struct LogEntry: Sendable, Equatable {
    /// Its place in the log: 1, 2, 3, … with no gaps.
    public let position: Int64
    public let input: LogEntryInput

    public subscript<T>(dynamicMember path: KeyPath<LogEntryInput, T>) -> T { input[keyPath: path] }
}

extension PostgresStore {
    // MARK: The log and its cursor
    //
    // A puller asks for the entries after the last position it has. That is
    // safe only if no entry can become visible at a position below one a
    // puller has already seen: with several processes committing at once,
    // a position taken early and committed late would be skipped for good.
    //
    // So positions are taken at the end of the appending transaction, by
    // the statement that inserts the rows: it moves `linli_log_end` on by
    // their number and so locks its one row until commit. The next append
    // waits for that lock in the same statement, so appends commit one
    // after another in position order, and any snapshot that shows position
    // N+1 shows N as well. Positions are dense: a rolled-back append rolls
    // back its move of `linli_log_end`, and the next one takes the same
    // positions. The cost is that appends of all processes take turns for
    // the tail of their transaction (the insert and the commit); with group
    // commit that is one turn per group. PROTOCOL.md 2.2.2.

    /// Appends change sets to the log in one transaction and returns each
    /// one's position, in order.
    ///
    /// A change set whose (device, seq) is in the log already with the same
    /// hash is not appended again: its existing position is returned. With
    /// another hash the append is refused as a `fork` and nothing of it is
    /// appended. At most ``Limits/groupCommitChangeSetsMax`` change sets.
    public func append(_ entries: [LogEntryInput]) async throws -> [Int64] {
        try await append(entries, beforeCommit: nil)
    }

    /// ``append(_:)``, with `beforeCommit` run inside the transaction once
    /// the positions are taken and the rows written, just before commit
    /// (with the new positions): the tests hold transactions open there, or
    /// make them fail, while other processes commit and pull.
    func append(_ entries: [LogEntryInput],
                beforeCommit: (@Sendable (_ positions: [Int64]) async throws -> Void)?) async throws -> [Int64] {
        guard !entries.isEmpty else { return [] }
        guard entries.count <= Limits.groupCommitChangeSetsMax else {
            throw LinliError(.overLimit, "an append of \(entries.count) change sets; at most \(Limits.groupCommitChangeSetsMax) go in one transaction (groupCommitChangeSetsMax)")
        }
        for entry in entries { try entry.check() }

        // A concurrent append of one of these change sets that commits
        // between the check and the insert makes the insert fail on the
        // unique (device, seq); the append then runs again and finds it.
        for attempt in 1 ... Self.appendAttemptsMax {
            do {
                return try await transaction("append \(entries.count) change sets to the log") { connection in
                    try await appendOnce(entries, on: connection, beforeCommit: beforeCommit)
                }
            } catch let race as AppendRace where attempt < Self.appendAttemptsMax {
                logger.debug("append raced with another for the same change set: \(race.description); again")
            } catch let race as AppendRace {
                throw LinliError(.storage, "could not append to the log of \(location): \(race.description), \(Self.appendAttemptsMax) times in a row")
            }
        }
        preconditionFailure("the loop returns or throws")
    }

    static let appendAttemptsMax = 3

    /// The insert met a change set committed by another append since the check.
    struct AppendRace: Error, CustomStringConvertible {
        let description: String
    }

    private func appendOnce(_ entries: [LogEntryInput], on connection: PostgresConnection,
                            beforeCommit: (@Sendable (_ positions: [Int64]) async throws -> Void)?) async throws -> [Int64] {
        // Which of them are there already: before taking positions, so the
        // lock that orders appends is held only for the insert and the commit.
        var known = try await existing(entries, on: connection)
        var fresh: [LogEntryInput] = []
        // Each entry's position, or its index in `fresh` while it has none.
        var places: [Place] = []
        places.reserveCapacity(entries.count)
        var freshIndex: [Key: Int] = [:]
        for entry in entries {
            let key = Key(device: entry.device, seq: entry.seq)
            if let there = known[key] {
                guard there.hash == entry.hash else {
                    throw LinliError(.fork, "the log holds another change set of device \(entry.device.hex) at seq \(entry.seq) (hash \(Hex.encode(there.hash.prefix(8)))…, not \(Hex.encode(entry.hash.prefix(8)))…)",
                                     hint: "the device's history forked; nothing of this append was written")
                }
                places.append(there.position > 0 ? .at(there.position) : .fresh(freshIndex[key] ?? 0))
                continue
            }
            known[key] = (entry.hash, 0)
            freshIndex[key] = fresh.count
            places.append(.fresh(fresh.count))
            fresh.append(entry)
        }
        var positions: [Int64] = []
        if !fresh.isEmpty {
            positions = try await insert(fresh, on: connection)
            try await beforeCommit?(positions)
        }
        return places.map { place in
            switch place {
            case .at(let position): position
            case .fresh(let index): positions[index]
            }
        }
    }

    private enum Place {
        case at(Int64)
        case fresh(Int)
    }

    /// The log's entries after `position`, in position order, at most
    /// `limit` (taken as ``Limits/pullChangeSetsMax`` when larger); only
    /// those of `scopes` when given.
    ///
    /// The entries returned are always all those after `position` up to the
    /// last one returned: a position, once visible, has every smaller one
    /// visible with it, so a puller that moves its cursor to the last
    /// position it received never skips an entry.
    public func entries(after position: Int64, scopes: Set<Scope>? = nil, limit: Int = Limits.pullChangeSetsMax) async throws -> [LogEntry] {
        guard position >= 0 else { throw LinliError(.invalidInput, "a pull after position \(position); positions start at 0") }
        guard limit >= 1 else { throw LinliError(.invalidInput, "a pull of \(limit) change sets; at least 1") }
        let count = Int64(min(limit, Limits.pullChangeSetsMax))
        let columns = "position, device, seq, hash, prev, scope, hlc, \"user\", schema_version, key_id, received_at, envelope"
        let query: PostgresQuery
        if let scopes {
            let names = scopes.map(\.description).sorted()
            query = "SELECT \(unescaped: columns) FROM linli_log WHERE position > \(position) AND scope = ANY(\(names)) ORDER BY position LIMIT \(count)"
        } else {
            query = "SELECT \(unescaped: columns) FROM linli_log WHERE position > \(position) ORDER BY position LIMIT \(count)"
        }
        let rows = try await self.query("read the log after position \(position)", query)
        return try rows.map { try logEntry($0) }
    }

    /// The last position of the log: 0 when empty.
    public func logEnd() async throws -> Int64 {
        let rows = try await query("read the log's end", "SELECT position FROM linli_log_end")
        guard let row = rows.first else { throw LinliError(.damagedFile, "the table linli_log_end of \(location) has no row") }
        let end = try row.first(Int64.self, "the log's end")
        guard end >= 0 else { throw LinliError(.damagedFile, "the log of \(location) ends at position \(end)") }
        return end
    }

    // MARK: Parts

    struct Key: Hashable {
        let device: DeviceID
        let seq: UInt64
    }

    /// The hash and position of each of `entries`' (device, seq) already in the log.
    private func existing(_ entries: [LogEntryInput], on connection: PostgresConnection) async throws -> [Key: (hash: Data, position: Int64)] {
        var found: [Key: (hash: Data, position: Int64)] = [:]
        var start = 0
        while start < entries.count {
            let slice = entries[start ..< min(start + Limits.postgresStatementRowsMax, entries.count)]
            start = slice.endIndex
            let devices = slice.map { ByteBuffer(bytes: $0.device.bytes) }
            let seqs = slice.map { Int64($0.seq) } // checked: seq <= sequenceNumberMax = Int64.max
            let rows = try await run("""
                SELECT l.device, l.seq, l.hash, l.position FROM linli_log l
                JOIN unnest(\(devices)::bytea[], \(seqs)::bigint[]) AS k(device, seq) ON l.device = k.device AND l.seq = k.seq
                """, on: connection)
            for row in rows {
                let (deviceBytes, seq, hash, position) = try decodeRow(row, as: (Data, Int64, Data, Int64).self, "a (device, seq) of the log")
                guard let device = DeviceID(bytes: deviceBytes), let seqValue = UInt64(exactly: seq), seqValue > 0 else {
                    throw LinliError(.damagedFile, "the log of \(location) holds a row at position \(position) with device or seq that no change set has")
                }
                found[Key(device: device, seq: seqValue)] = (hash, position)
            }
        }
        return found
    }

    /// Takes the next positions and writes the rows at them, in
    /// statements of at most ``Limits/postgresStatementRowsMax`` rows and
    /// ``Limits/postgresStatementBytesMax`` envelope bytes; returns the
    /// positions, in the order of `entries`.
    ///
    /// Each statement moves the log's end by its number of rows and inserts
    /// them after the old end, in one go: the first one locks the row of
    /// `linli_log_end` until commit (waiting while another append holds
    /// it), so appends commit in the order of their positions.
    private func insert(_ entries: [LogEntryInput], on connection: PostgresConnection) async throws -> [Int64] {
        var positions: [Int64] = []
        positions.reserveCapacity(entries.count)
        var start = 0
        while start < entries.count {
            var end = start
            var bytes = 0
            while end < entries.count, end - start < Limits.postgresStatementRowsMax,
                  end == start || bytes + entries[end].envelope.count <= Limits.postgresStatementBytesMax {
                bytes += entries[end].envelope.count
                end += 1
            }
            let slice = entries[start ..< end]
            start = end
            let count = Int64(slice.count)
            // Every value was checked by `LogEntryInput.check()`: the
            // unsigned ones fit in Int64.
            let devices = slice.map { ByteBuffer(bytes: $0.device.bytes) }
            let seqs = slice.map { Int64($0.seq) }
            let hashes = slice.map { ByteBuffer(bytes: $0.hash) }
            let prevs = slice.map { ByteBuffer(bytes: $0.prev) }
            let scopes = slice.map(\.scope.description)
            let hlcs = slice.map { Int64($0.hlc) }
            let users = slice.map(\.user)
            let schemaVersions = slice.map { Int64($0.schemaVersion) }
            let keyIDs = slice.map { ByteBuffer(bytes: $0.keyID) }
            let receivedAts = slice.map { Int64($0.receivedAtMilliseconds) }
            let envelopes = slice.map { ByteBuffer(bytes: $0.envelope) }
            let rows: [PostgresRow]
            do {
                rows = try await run("""
                    WITH taken AS (UPDATE linli_log_end SET position = position + \(count) RETURNING position - \(count) AS base)
                    INSERT INTO linli_log (position, device, seq, hash, prev, scope, hlc, "user", schema_version, key_id, received_at, envelope)
                    SELECT taken.base + e.n, e.device, e.seq, e.hash, e.prev, e.scope, e.hlc, e."user", e.schema_version, e.key_id, e.received_at, e.envelope
                    FROM taken, unnest(\(devices)::bytea[], \(seqs)::bigint[], \(hashes)::bytea[], \(prevs)::bytea[], \(scopes)::text[],
                        \(hlcs)::bigint[], \(users)::text[], \(schemaVersions)::bigint[], \(keyIDs)::bytea[], \(receivedAts)::bigint[],
                        \(envelopes)::bytea[]) WITH ORDINALITY
                        AS e(device, seq, hash, prev, scope, hlc, "user", schema_version, key_id, received_at, envelope, n)
                    RETURNING position
                    """, on: connection)
            } catch let error as PSQLError where error.serverInfo?[.constraintName] == "linli_log_device_seq" {
                throw AppendRace(description: error.serverInfo?[.detail] ?? "a (device, seq) is in the log already")
            } catch let error as PSQLError where error.serverInfo?[.constraintName] == "linli_log_hash" {
                throw LinliError(.invalidInput, "a change set of this append is in the log already under another device or seq (same hash); nothing of this append was written")
            }
            let written = try rows.map { try $0.first(Int64.self, "a new position") }
            guard written.count == slice.count, let last = written.max(), last >= count else {
                throw LinliError(.storage, "PostgreSQL at \(location) wrote \(written.count) of \(slice.count) log rows")
            }
            // WITH ORDINALITY numbers the rows in the order of the arrays.
            positions += (1 ... count).map { last - count + $0 }
            guard Set(written) == Set(positions.suffix(slice.count)) else {
                throw LinliError(.storage, "PostgreSQL at \(location) wrote log rows at positions other than those taken")
            }
        }
        return positions
    }

    private func logEntry(_ row: PostgresRow) throws -> LogEntry {
        let (position, deviceBytes, seq, hash, prev, scopeText, hlc, user, schemaVersion, keyID, receivedAt, envelope) =
            try decodeRow(row, as: (Int64, Data, Int64, Data, Data, String, Int64, String, Int64, Data, Int64, Data).self, "a log entry")
        func damaged(_ what: String) -> LinliError {
            LinliError(.damagedFile, "the log of \(location) holds at position \(position) \(what), which no change set has")
        }
        guard position > 0 else { throw damaged("a position") }
        guard let device = DeviceID(bytes: deviceBytes) else { throw damaged("a device id of \(deviceBytes.count) bytes") }
        guard let seqValue = UInt64(exactly: seq), seqValue > 0 else { throw damaged("seq \(seq)") }
        guard let scope = Scope(scopeText) else { throw damaged("the scope \"\(scopeText.prefix(Limits.scopeBytesMax))\"") }
        guard let hlcValue = UInt64(exactly: hlc) else { throw damaged("the clock \(hlc)") }
        guard let version = UInt32(exactly: schemaVersion) else { throw damaged("schema version \(schemaVersion)") }
        guard let received = UInt64(exactly: receivedAt) else { throw damaged("the arrival time \(receivedAt)") }
        return LogEntry(position: position, input: LogEntryInput(
            device: device, seq: seqValue, hash: hash, prev: prev, scope: scope, hlc: hlcValue, user: user,
            schemaVersion: version, keyID: keyID, receivedAtMilliseconds: received, envelope: envelope))
    }

    private func decodeRow<each Column: PostgresDecodable>(_ row: PostgresRow, as type: (repeat each Column).Type, _ what: String) throws -> (repeat each Column) {
        do {
            return try row.decode(type)
        } catch {
            throw LinliError(.damagedFile, "PostgreSQL answered \(what) that cannot be read: \(error)")
        }
    }
}
