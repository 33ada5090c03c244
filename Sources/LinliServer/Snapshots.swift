import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import Metrics
import SwiftProtobuf

/// The server's signing identity: the key it signs bootstrap snapshots
/// with, certified by the authority with the role `server`.
public struct ServerIdentity: Sendable {
    public let device: DeviceID
    public let key: SigningKey

    public init(device: DeviceID, key: SigningKey) {
        self.device = device
        self.key = key
    }
}

/// A signed snapshot ready to send.
struct Snapshot: Sendable {
    let path: String
    let manifest: Data
    let signature: Data
    let cursor: Int64
    let bytes: Int64
    let madeAt: Date
}

/// Makes bootstrap snapshots and keeps the newest per set of scopes for
/// ``Limits/snapshotAgeSecondsMax``, so a hundred kiosks bootstrapping the
/// same night cost one copy of the store, not a hundred. A device pulls
/// whatever is newer than the snapshot's cursor.
final class SnapshotCache: @unchecked Sendable {
    private let storage: any SyncStorage
    private let identity: ServerIdentity
    private let folder: String
    private let lock = NSLock()
    private var newest: [String: Snapshot] = [:]
    private var replaced: [String: String] = [:]
    private let clock: @Sendable () -> UInt64

    init(storage: any SyncStorage, identity: ServerIdentity, folder: String, clock: @escaping @Sendable () -> UInt64) {
        self.storage = storage
        self.identity = identity
        self.folder = folder
        self.clock = clock
    }

    /// The snapshot for `scopes` (nil: every scope), made now if none is
    /// fresh. One snapshot is made at a time.
    func snapshot(for scopes: Set<Scope>?) throws -> Snapshot {
        let names = scopes.map { $0.map(\.description).sorted() } ?? []
        let key = scopes == nil ? "*" : names.joined(separator: ",")
        lock.lock()
        defer { lock.unlock() }
        if let cached = newest[key], Date().timeIntervalSince(cached.madeAt) < Double(Limits.snapshotAgeSecondsMax),
           FileManager.default.fileExists(atPath: cached.path) {
            return cached
        }
        // The server's own certificate must be known, or no device could
        // check the signature.
        let access: DeviceAccess
        do { access = try storage.access(identity.device) } catch let error as LinliError {
            throw LinliError(.unavailable, "the server's own certificate is not usable: \(error.message)",
                             hint: "the administrator enrols the server (role server) and syncs the trust records to it")
        }
        guard access.role == .server, access.key == identity.key.publicKey else {
            throw LinliError(.unavailable, "the server's key is not the one its certificate names, or the certificate is not for a server",
                             hint: "check the server's key file and its enrolment")
        }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = (folder as NSString).appendingPathComponent("snapshot-\(UUID().uuidString.lowercased()).sqlite")
        let started = Date()
        let cursor = try storage.writeSnapshot(scopes: scopes, to: path)
        guard let (hash, size) = try Blake2b256.hash(fileAt: path) else { throw LinliError(.storage, "cannot read the snapshot just written at \(path)") }
        var manifest = Linli_V1_SnapshotManifest()
        manifest.format = 1
        manifest.serverDevice = identity.device.data
        manifest.cursor = UInt64(cursor)
        manifest.scopes = names
        manifest.takenAtMs = clock()
        manifest.fileHash = hash
        manifest.fileBytes = UInt64(size)
        let manifestBytes: Data = try manifest.serializedBytes()
        let snapshot = Snapshot(path: path, manifest: manifestBytes, signature: identity.key.sign(SnapshotWire.signingMessage(manifestBytes)),
                                cursor: cursor, bytes: size, madeAt: Date())
        Timer(label: "linli_snapshot_seconds").recordNanoseconds(Int64(Date().timeIntervalSince(started) * 1e9))
        // Keep the one being replaced a while (a download may be reading
        // it); remove the one before it.
        if let older = replaced[key] { try? FileManager.default.removeItem(atPath: older) }
        if let previous = newest[key] { replaced[key] = previous.path }
        newest[key] = snapshot
        return snapshot
    }
}
