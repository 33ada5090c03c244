import Foundation
import GRDB
import LinliCore
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
                let acknowledged = try Int64.fetchOne(db, sql: "SELECT value FROM linli_meta WHERE key = ?",
                                                      arguments: ["ack:\(peer):\(device.hex)"]) ?? 0
                return try Data.fetchAll(db, sql: """
                    SELECT l.envelope FROM linli_log l JOIN linli_device d ON d.n = l.device_n
                    WHERE d.device = ? AND l.seq > ? ORDER BY l.seq LIMIT ?
                    """, arguments: [device.data, acknowledged, limit]).map { try SignedChangeSet(envelope: $0) }
            }
        }
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
}
