import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore

/// Reproducible devices, schemas and change sets for tests, the simulator
/// and the benchmark.
public enum Fixtures {
    /// A small community schema: enough to exercise every field type and
    /// every scope rule.
    public static let schema = Schema(name: "fixtures", version: 1, tables: [
        TableSchema("person", label: "人员", scope: .gridField("grid"), fields: [
            FieldSchema("grid", .text, label: "网格", required: true),
            FieldSchema("name", .text, label: "姓名", personal: true, required: true),
            FieldSchema("phone", .text, label: "联系电话", personal: true),
            FieldSchema("birth_date", .date, label: "出生日期"),
            FieldSchema("care", .boolean, label: "重点关爱"),
            FieldSchema("hours", .real, label: "服务时长"),
            FieldSchema("visits", .integer, label: "走访次数"),
            FieldSchema("house", .reference, label: "房屋", references: "house"),
        ]),
        TableSchema("house", label: "房屋", scope: .gridField("grid"), fields: [
            FieldSchema("grid", .text, label: "网格", required: true),
            FieldSchema("address", .text, label: "地址", required: true),
            FieldSchema("use", .text, label: "用途", choices: ["owner", "rented", "vacant", "commercial"]),
        ]),
        TableSchema("notice", label: "通知", scope: .public, fields: [
            FieldSchema("title", .text, label: "标题", required: true),
        ]),
        TableSchema("signup", label: "志愿者报名", scope: .kiosk, fields: [
            FieldSchema("name", .text, label: "姓名", personal: true, required: true),
        ]),
    ])

    /// A device whose key and id follow from `seed`, so runs repeat.
    public static func identity(_ seed: UInt8, user: String? = nil) -> DeviceIdentity {
        let seedBytes = SecretBytes(copying: Data(repeating: seed, count: 32))
        let key = SigningKey(seed: seedBytes)
        let device = DeviceID(high: 0x4C49_4E4C_4900_0000 | UInt64(seed), low: UInt64(seed) &* 0x9E37_79B9_7F4A_7C15)
        return DeviceIdentity(device: device, key: key, user: user ?? "user\(seed)")
    }

    /// A store with the fixture schema and every given device's key known.
    public static func store(path: String? = nil, schema: Schema = Fixtures.schema, knowing identities: [DeviceIdentity],
                             clock: @escaping @Sendable () -> UInt64 = ReplicaStore.systemClock) throws -> ReplicaStore {
        let store = try ReplicaStore(path: path, schema: schema, clock: clock)
        for identity in identities {
            try store.registerDeviceKey(device: identity.device, publicKey: identity.key.publicKey)
        }
        return store
    }

    /// A change set signed by `identity` at `seq`, linked to `prev`.
    public static func signed(
        _ identity: DeviceIdentity, seq: UInt64, prev: Data, hlc: UInt64, scope: Scope = .grid("G1"),
        rows: [RowChange], schemaVersion: UInt32 = 1
    ) throws -> SignedChangeSet {
        let header = ChangeSetHeader(
            device: identity.device, keyID: identity.key.publicKey.keyID, seq: seq, prev: prev,
            hlc: HLCTimestamp(rawValue: hlc), user: identity.user, schemaVersion: schemaVersion, scope: scope)
        return try SignedChangeSet.sign(ChangeSet(header: header, rows: rows), with: identity.key)
    }

    /// A temporary folder removed when the returned object is released.
    public final class TemporaryDirectory: @unchecked Sendable {
        public let url: URL
        public init(in parent: URL = FileManager.default.temporaryDirectory) {
            url = parent.appendingPathComponent("linli-\(UUID().uuidString)")
            try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        }
        public func path(_ name: String) -> String { url.appendingPathComponent(name).path }
        deinit { try? FileManager.default.removeItem(at: url) }
    }
}

/// A small deterministic generator (SplitMix64), so every random run
/// repeats from its seed.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Fixtures {
    /// The signing identity of test servers: every answer is signed
    /// (PROTOCOL.md 1.4), so every server has one, certified as `server`.
    public static let server = identity(0xEE, user: "同步服务器")

    /// Writes `identity`'s key sealed with a passphrase into `folder` and
    /// returns the `linli-server serve` settings that use it: `device`,
    /// `key` and `key_passphrase_file`.
    public static func serverKeySettings(_ identity: DeviceIdentity = server, in folder: String) throws -> [String: String] {
        let keyPath = (folder as NSString).appendingPathComponent("server.key")
        let passphrasePath = (folder as NSString).appendingPathComponent("server.passphrase")
        if !FileManager.default.fileExists(atPath: keyPath) {
            try SealedKeyFile.write(try SealedKey.seal(identity.key, passphrase: "server passphrase", label: "server", strength: .interactive), to: keyPath)
            try Data("server passphrase\n".utf8).write(to: URL(fileURLWithPath: passphrasePath))
        }
        return ["device": identity.device.hex, "key": keyPath, "key_passphrase_file": passphrasePath]
    }

    /// The same settings as `serve` options.
    public static func serverKeyArguments(_ identity: DeviceIdentity = server, in folder: String) throws -> [String] {
        let settings = try serverKeySettings(identity, in: folder)
        return ["--device", settings["device"]!, "--key", settings["key"]!, "--key-passphrase-file", settings["key_passphrase_file"]!]
    }
}
