import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import SwiftProtobuf

/// The golden change set vectors in `Protocol/vectors/`, made
/// reproducibly: keys come from fixed seeds, ids and clocks are fixed, and
/// Ed25519 signatures are deterministic.
public enum GoldenVectors {
    public struct Vector: Codable, Equatable, Sendable {
        public var name: String
        public var description: String
        /// The device whose key the receiver knows.
        public var deviceHex: String
        public var publicKeyHex: String
        /// Envelopes the receiver applies first; it must accept each.
        public var contextHex: [String]
        public var bytesHex: String
        public var blake2b256Hex: String
        public var signatureHex: String
        public var accept: Bool
        public var reason: String?

        enum CodingKeys: String, CodingKey {
            case name, description, accept, reason
            case deviceHex = "device_hex"
            case publicKeyHex = "public_key_hex"
            case contextHex = "context_hex"
            case bytesHex = "bytes_hex"
            case blake2b256Hex = "blake2b256_hex"
            case signatureHex = "signature_hex"
        }
    }

    static let alice = Fixtures.identity(1, user: "alice")
    static let bob = Fixtures.identity(2, user: "bob")
    static let row = RowID(high: 0x0123_4567_89AB_CDEF, low: 0x0FED_CBA9_8765_4321)
    static let baseClock: UInt64 = 1_790_000_000_000 << 16

    public static func make() throws -> [Vector] {
        let first = try Fixtures.signed(alice, seq: 1, prev: Data(), hlc: baseClock, rows: [
            RowChange(table: "person", row: row, writes: [
                FieldWrite(field: "_deleted", value: .boolean(false)),
                FieldWrite(field: "grid", value: .text("G1")),
                FieldWrite(field: "name", value: .text("张三")),
                FieldWrite(field: "phone", value: .text("13800138000")),
                FieldWrite(field: "visits", value: .integer(2)),
            ]),
        ])
        let second = try Fixtures.signed(alice, seq: 2, prev: first.hash, hlc: baseClock + (1 << 16), rows: [
            RowChange(table: "person", row: row, writes: [
                FieldWrite(field: "phone", value: .text("13900139000"), replaces: [Dot(device: alice.device, seq: 1, index: 3)]),
            ]),
        ])
        var vectors = [
            vector("accept-first", "The first change set of a device: creates a person in grid G1.", first, context: [], accept: true),
            vector("accept-second", "The device's second change set, linked to the first, edits the phone and replaces the first value.",
                   second, context: [first], accept: true),
        ]

        // One byte of the body changed in transit: the name 张三 becomes 张丁.
        var tamperedBody = first.body
        let nameBytes = Data("张三".utf8)
        if let range = tamperedBody.range(of: nameBytes) { tamperedBody[range.upperBound - 1] ^= 0x01 }
        vectors.append(try rawVector(
            "refuse-tampered-byte", "The first change set with one byte of its body changed after signing.",
            body: tamperedBody, signature: first.signature, context: [], reason: .badSignature))

        // Signed with bob's key while naming alice's device and key.
        let forgedHeader = ChangeSetHeader(
            device: alice.device, keyID: alice.key.publicKey.keyID, seq: 1, prev: Data(), hlc: HLCTimestamp(rawValue: baseClock),
            user: "alice", schemaVersion: 1, scope: .grid("G1"))
        let forgedBody = try ChangeSetWire.message(from: ChangeSet(header: forgedHeader, rows: first.changeSet.rows)).serializedBytes() as Data
        let forgedSignature = bob.key.sign(SignedChangeSet.signingMessage(hash: Blake2b256.hash(forgedBody)))
        vectors.append(try rawVector(
            "refuse-wrong-key", "Alice's first change set signed with another device's key.",
            body: forgedBody, signature: forgedSignature, context: [], reason: .badSignature))

        let unlinked = try Fixtures.signed(alice, seq: 2, prev: Data(repeating: 0xAB, count: 32), hlc: baseClock + (1 << 16),
                                           rows: second.changeSet.rows)
        vectors.append(vector("refuse-broken-chain", "Change set 2 names a previous hash that is not change set 1's.",
                              unlinked, context: [first], accept: false, reason: .brokenChain))

        let clone = try Fixtures.signed(alice, seq: 1, prev: Data(), hlc: baseClock + 5, rows: [
            RowChange(table: "person", row: row, writes: [
                FieldWrite(field: "_deleted", value: .boolean(false)),
                FieldWrite(field: "grid", value: .text("G1")),
                FieldWrite(field: "name", value: .text("李四")),
            ]),
        ])
        vectors.append(vector("refuse-fork", "A second, different change set 1 from the same device: its history forked.",
                              clone, context: [first], accept: false, reason: .fork))

        let stranger = try Fixtures.signed(bob, seq: 1, prev: Data(), hlc: baseClock, rows: first.changeSet.rows)
        vectors.append(vector("refuse-unknown-key", "A change set from a device whose key the receiver does not know.",
                              stranger, context: [], accept: false, reason: .unknownKey))

        // A valid envelope with an extra field appended: not canonical.
        var extended = first.envelope
        extended.append(contentsOf: [0x1A, 0x01, 0x00])
        vectors.append(Vector(
            name: "refuse-extra-envelope-field", description: "The first change set's envelope with an unknown field 3 appended.",
            deviceHex: alice.device.hex, publicKeyHex: alice.key.publicKey.hex, contextHex: [], bytesHex: Hex.encode(extended),
            blake2b256Hex: Hex.encode(first.hash), signatureHex: Hex.encode(first.signature), accept: false,
            reason: LinliError.Code.malformed.rawValue))
        return vectors
    }

    static func vector(_ name: String, _ description: String, _ signed: SignedChangeSet, context: [SignedChangeSet],
                       accept: Bool, reason: LinliError.Code? = nil) -> Vector {
        Vector(name: name, description: description, deviceHex: alice.device.hex, publicKeyHex: alice.key.publicKey.hex,
               contextHex: context.map { Hex.encode($0.envelope) }, bytesHex: Hex.encode(signed.envelope),
               blake2b256Hex: Hex.encode(signed.hash), signatureHex: Hex.encode(signed.signature), accept: accept, reason: reason?.rawValue)
    }

    static func rawVector(_ name: String, _ description: String, body: Data, signature: Data, context: [SignedChangeSet],
                          reason: LinliError.Code) throws -> Vector {
        var wire = Linli_V1_SignedChangeSet()
        wire.body = body
        wire.signature = signature
        let envelope: Data = try wire.serializedBytes()
        return Vector(name: name, description: description, deviceHex: alice.device.hex, publicKeyHex: alice.key.publicKey.hex,
                      contextHex: context.map { Hex.encode($0.envelope) }, bytesHex: Hex.encode(envelope),
                      blake2b256Hex: Hex.encode(Blake2b256.hash(body)), signatureHex: Hex.encode(signature), accept: false,
                      reason: reason.rawValue)
    }

    /// The file text of a vector: sorted keys, pretty printed, newline at the end.
    public static func encode(_ vector: Vector) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try encoder.encode(vector) + Data("\n".utf8)
    }
}
