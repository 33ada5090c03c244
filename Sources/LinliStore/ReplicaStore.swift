import Foundation
import GRDB
import LinliCore
import LinliCrypto
import LinliProtocol

/// A replica: the log of signed change sets, the field state derived from
/// it, and one view table per declared table, in one SQLite database.
///
/// For example:
///
///     let store = try ReplicaStore(path: "replica.sqlite", schema: schema)
///     try store.registerDeviceKey(device: other, publicKey: key, validFromSeq: 1)
///     let outcomes = try store.apply([envelope])
///     let changeSets = try store.write(as: me) { tx in
///         let id = try tx.create("person", ["grid": .text("G1"), "name": .text("张三")])
///         try tx.update("person", id, ["phone": .text("13800138000")])
///     }
///
/// Every method is safe to call from any thread; writes are serialized by
/// the underlying `DatabaseWriter`.
public final class ReplicaStore: Sendable {
    public let schema: Schema
    let writer: any DatabaseWriter
    /// Milliseconds since 1970; injectable so tests control time.
    let clock: @Sendable () -> UInt64

    public static let systemClock: @Sendable () -> UInt64 = { UInt64(Date().timeIntervalSince1970 * 1000) }

    /// Opens (or creates) the replica at `path` in WAL mode, or an in-memory
    /// replica when `path` is nil.
    public init(path: String?, schema: Schema, clock: @escaping @Sendable () -> UInt64 = ReplicaStore.systemClock) throws {
        try schema.validate()
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            // WAL with synchronous=NORMAL: a commit is durable against a
            // process crash; a power cut may lose the newest commits, never
            // corrupt the file. The server acknowledges only after commit.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
            try db.execute(sql: ReplicaStore.tuningPragmas)
        }
        configuration.busyMode = .timeout(10)
        let viewsChanged: Bool
        do {
            if let path {
                writer = try DatabasePool(path: path, configuration: configuration)
            } else {
                writer = try DatabaseQueue(configuration: configuration)
            }
            try StoreSchema.migrator().migrate(writer)
            viewsChanged = try writer.write { db in
                var changed = false
                for table in schema.tables where try StoreSchema.ensureView(db, table) { changed = true }
                // A new table or field may have values kept from newer
                // change sets; they show once the views are derived again.
                let hasState = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM linli_row_state)") ?? false
                return changed && hasState
            }
        } catch let error as LinliError {
            throw error
        } catch {
            throw LinliError(.storage, "cannot open the replica at \(path ?? ":memory:"): \(error)",
                             hint: "check that the folder exists and is writable, and that no other program holds the file")
        }
        self.schema = schema
        self.clock = clock
        if viewsChanged { try rebuild() }
    }

    /// Page cache and memory-mapped I/O for a replica. The benchmark gives
    /// plain SQLite the same settings, so ratios compare engines, not caches.
    public static let tuningPragmas = "PRAGMA cache_size = -\(Limits.sqliteCacheKibibytesMax); PRAGMA mmap_size = \(Limits.sqliteMmapBytesMax); PRAGMA temp_store = MEMORY"

    /// The GRDB writer, for queries the store does not offer.
    public var database: any DatabaseWriter { writer }

    // MARK: Keys

    /// Records that `device` signs with `publicKey` from `validFromSeq` on,
    /// up to `validUntilSeq` when given. Trust records feed this in a full
    /// deployment; tests and tools may call it directly.
    public func registerDeviceKey(device: DeviceID, publicKey: PublicKey, validFromSeq: UInt64 = 1, validUntilSeq: UInt64? = nil) throws {
        try run {
            try writer.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO linli_device_key (device, valid_from_seq, valid_until_seq, key_id, public_key)
                        VALUES (?, ?, ?, ?, ?)
                        ON CONFLICT(device, valid_from_seq) DO UPDATE SET valid_until_seq = excluded.valid_until_seq,
                            key_id = excluded.key_id, public_key = excluded.public_key
                        """,
                    arguments: [device.data, Int64(validFromSeq), validUntilSeq.map { Int64($0) }, publicKey.keyID, publicKey.bytes])
            }
        }
    }

    struct KeyEntry: Sendable {
        let from: UInt64
        let until: UInt64?
        let key: PublicKey
    }

    static func loadKeys(_ db: Database, devices: some Sequence<DeviceID>) throws -> [DeviceID: [KeyEntry]] {
        var keys: [DeviceID: [KeyEntry]] = [:]
        for device in Set(devices) {
            let rows = try Row.fetchAll(
                db, sql: "SELECT valid_from_seq, valid_until_seq, public_key FROM linli_device_key WHERE device = ?",
                arguments: [device.data])
            keys[device] = rows.compactMap { row in
                PublicKey(bytes: row["public_key"]).map {
                    KeyEntry(from: UInt64(row["valid_from_seq"] as Int64), until: (row["valid_until_seq"] as Int64?).map(UInt64.init), key: $0)
                }
            }
        }
        return keys
    }

    // MARK: Helpers

    /// Runs `body`, turning GRDB's errors into `LinliError`s.
    func run<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as LinliError {
            throw error
        } catch {
            throw LinliError(.storage, "the replica database failed: \(error)")
        }
    }
}

extension ReplicaStore {
    /// Copies the WAL into the main database file and truncates the WAL.
    public func checkpoint() throws {
        try run { _ = try writer.writeWithoutTransaction { db in try db.checkpoint(.truncate) } }
    }
}
