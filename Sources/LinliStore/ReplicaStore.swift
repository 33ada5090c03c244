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
    /// The domain schema plus the built-in trust tables (``TrustSchema``).
    public let schema: Schema
    /// The authority's device id, when the replica is configured with a
    /// trust root.
    public let authorityDevice: DeviceID?
    /// The trust root this replica was configured with.
    public let authorityRoot: PublicKey?
    let writer: any DatabaseWriter
    /// Milliseconds since 1970; injectable so tests control time.
    let clock: @Sendable () -> UInt64

    public static let systemClock: @Sendable () -> UInt64 = { UInt64(Date().timeIntervalSince1970 * 1000) }

    /// Opens (or creates) the replica at `path` in WAL mode, or an in-memory
    /// replica when `path` is nil. `authority` is the trust root: the public
    /// key every replica of a deployment is configured with. Without one,
    /// keys must be registered by hand (tests, tools).
    public init(path: String?, schema domainSchema: Schema, authority: PublicKey? = nil,
                clock: @escaping @Sendable () -> UInt64 = ReplicaStore.systemClock) throws {
        try domainSchema.validate()
        let schema = TrustSchema.adding(to: domainSchema)
        let authorityDevice = authority.map { Authority.deviceID(root: $0) }
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            // WAL with synchronous=NORMAL: a commit is durable against a
            // process crash; a power cut may lose the newest commits, never
            // corrupt the file. The server acknowledges only after commit.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
            try db.execute(sql: ReplicaStore.tuningPragmas)
            db.add(function: ReplicaStore.normalisedFunction)
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
                if let authority, let authorityDevice {
                    try Self.insertKey(db, device: authorityDevice, key: authority, validFromSeq: 1, role: .authority, grids: [])
                }
                return changed && hasState
            }
        } catch let error as LinliError {
            throw error
        } catch {
            throw LinliError(.storage, "cannot open the replica at \(path ?? ":memory:"): \(error)",
                             hint: "check that the folder exists and is writable, and that no other program holds the file")
        }
        self.schema = schema
        self.authorityDevice = authorityDevice
        self.authorityRoot = authority
        self.clock = clock
        if viewsChanged { try rebuild() }
    }

    /// Page cache and memory-mapped I/O for a replica. The benchmark gives
    /// plain SQLite the same settings, so ratios compare engines, not caches.
    public static let tuningPragmas = "PRAGMA cache_size = -\(Limits.sqliteCacheKibibytesMax); PRAGMA mmap_size = \(Limits.sqliteMmapBytesMax); PRAGMA temp_store = MEMORY"

    /// The GRDB writer, for queries the store does not offer.
    /// `linli_normalised(format, value)` in SQL: a text value in its
    /// field format's one form (``FieldFormat/normalised(_:)``), anything
    /// else as it is; a null or unknown format leaves the value alone. Rules
    /// across records compare with it, so an older device's …x equals …X.
    static let normalisedFunction = DatabaseFunction("linli_normalised", argumentCount: 2, pure: true) { arguments in
        guard let text = String.fromDatabaseValue(arguments[1]) else { return arguments[1] }
        guard let format = String.fromDatabaseValue(arguments[0]).flatMap(FieldFormat.init(rawValue:)) else { return text }
        return format.normalised(text)
    }

    public var database: any DatabaseWriter { writer }

    // MARK: Keys

    /// Records that `device` signs with `publicKey` from `validFromSeq` on,
    /// in `role`. Certificates from the authority feed this in a deployment;
    /// tests and tools may call it directly.
    public func registerDeviceKey(device: DeviceID, publicKey: PublicKey, validFromSeq: UInt64 = 1,
                                  role: Role = .staff, grids: Set<String> = []) throws {
        try run {
            try writer.write { db in
                try Self.insertKey(db, device: device, key: publicKey, validFromSeq: validFromSeq, role: role, grids: grids)
            }
        }
    }

    static func insertKey(_ db: Database, device: DeviceID, key: PublicKey, validFromSeq: UInt64, role: Role, grids: Set<String>) throws {
        try db.execute(
            sql: """
                INSERT INTO linli_device_key (device, valid_from_seq, key_id, public_key, role, grids)
                VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT(device, valid_from_seq) DO UPDATE SET key_id = excluded.key_id,
                    public_key = excluded.public_key, role = excluded.role, grids = excluded.grids
                """,
            arguments: [device.data, Int64(validFromSeq), key.keyID, key.bytes, role.rawValue, grids.sorted().joined(separator: ",")])
    }

    /// One key of a device, with what its certificate grants.
    struct KeyEntry: Sendable {
        let from: UInt64
        let key: PublicKey
        let role: Role
        let grids: Set<String>
    }

    /// What a replica knows of a device: its keys, and the last sequence
    /// number a revocation leaves valid.
    struct DeviceTrust: Sendable {
        var keys: [KeyEntry] = []
        var lastValidSeq: UInt64?
    }

    static func loadTrust(_ db: Database, devices: some Sequence<DeviceID>) throws -> [DeviceID: DeviceTrust] {
        var result: [DeviceID: DeviceTrust] = [:]
        for device in Set(devices) {
            var trust = DeviceTrust()
            for row in try Row.fetchAll(
                db, sql: "SELECT valid_from_seq, public_key, role, grids FROM linli_device_key WHERE device = ?", arguments: [device.data]) {
                guard let key = PublicKey(bytes: row["public_key"]), let role = Role(rawValue: row["role"]) else { continue }
                let grids = (row["grids"] as String).split(separator: ",").map(String.init)
                trust.keys.append(KeyEntry(from: UInt64(row["valid_from_seq"] as Int64), key: key, role: role, grids: Set(grids)))
            }
            trust.lastValidSeq = try Int64.fetchOne(
                db, sql: "SELECT last_valid_seq FROM linli_revocation WHERE device = ?", arguments: [device.data]).map { UInt64($0) }
            result[device] = trust
        }
        return result
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
