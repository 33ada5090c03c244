import Foundation
import GRDB
import LinliCore
import LinliCrypto
import LinliProtocol

/// Where a replica is in a stream it pulls: the last position it has
/// applied, under a name (one per server, say).
public struct SyncCursor: Sendable, Equatable {
    public let name: String
    public let position: Int64

    public init(name: String, position: Int64) {
        self.name = name
        self.position = position
    }
}

extension ReplicaStore {
    static func store(_ cursor: SyncCursor, _ db: Database) throws {
        try db.execute(
            sql: "INSERT INTO linli_meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            arguments: ["cursor:" + cursor.name, cursor.position])
    }

    /// The last position applied from the stream `name`; 0 before any.
    public func cursor(_ name: String) throws -> Int64 {
        try run { try writer.read { db in try Int64.fetchOne(db, sql: "SELECT value FROM linli_meta WHERE key = ?", arguments: ["cursor:" + name]) ?? 0 } }
    }

    /// This device's own change sets that `peer` has not acknowledged yet,
    /// in chain order: what the next push sends.
    public func outbox(device: DeviceID, peer: String = "server", limit: Int = Limits.changeSetsPerBatchMax) throws -> [SignedChangeSet] {
        try run {
            try writer.read { db in
                try Data.fetchAll(db, sql: """
                    SELECT l.envelope FROM linli_log l JOIN linli_device d ON d.n = l.device_n
                    WHERE d.device = ? AND l.seq > ? ORDER BY l.seq LIMIT ?
                    """, arguments: [device.data, try Self.acknowledged(db, device: device, peer: peer), limit])
                    .map { try SignedChangeSet(envelope: $0) }
            }
        }
    }

    /// How many change sets the outbox holds, without reading them.
    public func outboxCount(device: DeviceID, peer: String = "server") throws -> Int {
        try run {
            try writer.read { db in
                try Int.fetchOne(db, sql: """
                    SELECT count(*) FROM linli_log l JOIN linli_device d ON d.n = l.device_n WHERE d.device = ? AND l.seq > ?
                    """, arguments: [device.data, try Self.acknowledged(db, device: device, peer: peer)]) ?? 0
            }
        }
    }

    private static func acknowledged(_ db: Database, device: DeviceID, peer: String) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT value FROM linli_meta WHERE key = ?", arguments: ["ack:\(peer):\(device.hex)"]) ?? 0
    }

    /// Records that `peer` holds this device's change sets up to `seq`.
    /// Acknowledgements only move forward.
    public func acknowledge(device: DeviceID, through seq: UInt64, peer: String = "server") throws {
        try run {
            try writer.write { db in
                try db.execute(sql: """
                    INSERT INTO linli_meta (key, value) VALUES (?, ?)
                    ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)
                    """, arguments: ["ack:\(peer):\(device.hex)", Int64(seq)])
            }
        }
    }

    /// Moves `peer`'s acknowledgement of this device back to `seq`: the
    /// peer's heads show it lost what it had acknowledged (a server
    /// restored from an older backup), so the next push sends the rest
    /// again. Pushes are idempotent, so sending too much is harmless.
    public func rewindAcknowledgement(device: DeviceID, to seq: UInt64, peer: String = "server") throws {
        try run {
            try writer.write { db in
                try db.execute(sql: """
                    INSERT INTO linli_meta (key, value) VALUES (?, ?)
                    ON CONFLICT(key) DO UPDATE SET value = min(value, excluded.value)
                    """, arguments: ["ack:\(peer):\(device.hex)", Int64(clamping: seq)])
            }
        }
    }

    /// How far `peer` has acknowledged this device's change sets.
    public func acknowledged(device: DeviceID, peer: String = "server") throws -> UInt64 {
        try run { try writer.read { db in UInt64(try Self.acknowledged(db, device: device, peer: peer)) } }
    }

    /// Moves the cursor `name` back to `position` when it is beyond it
    /// (a server restored from an older backup numbers its log anew).
    public func rewindCursor(_ name: String, to position: Int64) throws {
        try run {
            try writer.write { db in
                try db.execute(sql: "UPDATE linli_meta SET value = min(value, ?) WHERE key = ?", arguments: [position, "cursor:" + name])
            }
        }
    }

    /// Whether this replica knows any key certified with the role `server`.
    public func knowsAServerKey() throws -> Bool {
        try run { try writer.read { db in try Bool.fetchOne(db, sql: "SELECT 1 FROM linli_device_key WHERE role = 'server' LIMIT 1") ?? false } }
    }

    /// The public key with `keyID` of `device`, when this replica knows
    /// it as a server's (certified with the role `server`) and the device
    /// is not revoked: what a device checks a signed answer against.
    public func serverKey(device: DeviceID, keyID: Data) throws -> PublicKey? {
        try run {
            try writer.read { db in
                let revoked = try Bool.fetchOne(db, sql: "SELECT 1 FROM linli_revocation WHERE device = ?", arguments: [device.data]) ?? false
                if revoked { return nil }
                let bytes = try Data.fetchOne(db, sql: """
                    SELECT public_key FROM linli_device_key WHERE device = ? AND key_id = ? AND role = 'server'
                    ORDER BY valid_from_seq DESC LIMIT 1
                    """, arguments: [device.data, keyID])
                return bytes.flatMap { PublicKey(bytes: $0) }
            }
        }
    }

    /// Records that `peer` refused this device's change set `seq`, and why.
    /// The change set stays in the log and in the device's chain.
    public func recordRefusal(peer: String, seq: UInt64, code: String, message: String) throws {
        try run {
            try writer.write { db in
                try db.execute(sql: """
                    INSERT INTO linli_peer_refusal (peer, seq, code, message, refused_at) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT(peer, seq) DO UPDATE SET code = excluded.code, message = excluded.message
                    """, arguments: [peer, Int64(seq), code, message, Int64(clock())])
            }
        }
    }

    /// What `peer` refused of this device's change sets, oldest first.
    public func refusals(peer: String) throws -> [PeerRefusal] {
        try run {
            try writer.read { db in
                try Row.fetchAll(db, sql: "SELECT seq, code, message, refused_at FROM linli_peer_refusal WHERE peer = ? ORDER BY seq",
                                 arguments: [peer]).map {
                    PeerRefusal(seq: UInt64($0["seq"] as Int64), code: $0["code"], message: $0["message"], refusedAt: UInt64($0["refused_at"] as Int64))
                }
            }
        }
    }

    /// Meta values a client keeps beside its replica (the time of its last
    /// sync, say), under `client:` keys.
    public func clientValue(_ key: String) throws -> String? {
        try run { try writer.read { db in try String.fetchOne(db, sql: "SELECT value FROM linli_meta WHERE key = ?", arguments: ["client:" + key]) } }
    }

    public func setClientValue(_ key: String, _ value: String) throws {
        try run {
            try writer.write { db in
                try db.execute(sql: "INSERT INTO linli_meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                               arguments: ["client:" + key, value])
            }
        }
    }
}

/// One of this device's change sets that a peer refused, and why.
public struct PeerRefusal: Sendable, Equatable, Codable {
    public let seq: UInt64
    public let code: String
    public let message: String
    public let refusedAt: UInt64
}
