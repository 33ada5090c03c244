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
    /// A vector file's bytes: sorted keys, pretty, a final newline, so the
    /// files are reproducible and diff well. For every kind of vector.
    public static func encode(_ vector: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try encoder.encode(vector) + Data("\n".utf8)
    }
}

// MARK: Trust vectors

/// The golden trust vectors in `Protocol/vectors/trust/` (see
/// `Protocol/TRUST.md`): certificates, revocations and rotations, each
/// decided by a replica configured with a fixed trust root. Reproducible
/// like the change set vectors: fixed seeds, row ids and clocks.
extension GoldenVectors {
    public struct TrustVector: Codable, Equatable, Sendable {
        public var name: String
        public var description: String
        /// The trust root every replica is configured with.
        public var authorityPublicKeyHex: String
        /// The authority's device id, derived from the root (TRUST.md 2.2).
        public var authorityDeviceHex: String
        /// Envelopes the receiver applies first; it must accept each.
        public var contextHex: [String]
        public var bytesHex: String
        public var blake2b256Hex: String
        public var signatureHex: String
        /// For vectors carrying an authority key rotation: the exact bytes
        /// the rotation statement's signature covers (whoever signed it).
        public var rotationMessageHex: String?
        public var accept: Bool
        public var reason: String?

        enum CodingKeys: String, CodingKey {
            case name, description, accept, reason
            case authorityPublicKeyHex = "authority_public_key_hex"
            case authorityDeviceHex = "authority_device_hex"
            case contextHex = "context_hex"
            case bytesHex = "bytes_hex"
            case blake2b256Hex = "blake2b256_hex"
            case signatureHex = "signature_hex"
            case rotationMessageHex = "rotation_message_hex"
        }
    }

    static func seededKey(_ byte: UInt8) -> SigningKey {
        SigningKey(seed: SecretBytes(copying: Data(repeating: byte, count: 32)))
    }

    /// The trust root of the vectors, and the authority acting with it.
    static let rootKey = seededKey(0x70)
    static let authority = DeviceIdentity(device: Authority.deviceID(root: rootKey.publicKey), key: rootKey, user: "admin")
    /// The authority's next key (rotation) and a key that is nobody's.
    static let nextAuthorityKey = seededKey(0x71)
    static let strangerKey = seededKey(0x72)
    /// An inspector of grid G1, a staff device, and the inspector's second key.
    static let inspector = Fixtures.identity(11, user: "inspector")
    static let staff = Fixtures.identity(12, user: "staff")
    static let inspectorRenewed = DeviceIdentity(device: inspector.device, key: seededKey(0x7A), user: "inspector")

    /// Fixed row ids: trust record `n`, and the person the inspector records.
    static func trustRow(_ n: UInt64) -> RowID { RowID(high: 0x7379_735F_7472_7573, low: n) }
    static let personRow = RowID(high: 0x7065_7273_6F6E_0000, low: 1)

    /// Fixed clocks: the k-th tick after the base.
    static func tick(_ k: UInt64) -> UInt64 { baseClock + (k << 16) }

    /// A trust record row as `LocalTransaction.create` lays it out:
    /// `_deleted` first, then the fields in name order.
    static func record(_ table: String, _ row: RowID, _ values: [String: Value]) -> RowChange {
        RowChange(table: table, row: row, writes: [FieldWrite(field: "_deleted", value: .boolean(false))]
            + values.sorted { $0.key < $1.key }.map { FieldWrite(field: $0.key, value: $0.value) })
    }

    static func certificate(_ row: RowID, device: DeviceID, key: PublicKey, role: Role, grids: [String] = [],
                            validFromSeq: UInt64 = 1, label: String) -> RowChange {
        record(TrustSchema.certificate, row, [
            "device": .bytes(device.data), "public_key": .bytes(key.bytes), "role": .text(role.rawValue),
            "grids": .text(grids.sorted().joined(separator: ",")), "valid_from_seq": .integer(Int64(validFromSeq)),
            "label": .text(label),
        ])
    }

    static func revocation(_ row: RowID, device: DeviceID, lastValidSeq: UInt64, reason: String) -> RowChange {
        record(TrustSchema.revocation, row, [
            "device": .bytes(device.data), "last_valid_seq": .integer(Int64(lastValidSeq)), "reason": .text(reason),
        ])
    }

    /// A rotation of the authority key from the root to `next`, its
    /// statement signed by `statementSigner`.
    static func rotation(_ row: RowID, next: PublicKey, validFromSeq: UInt64, statementSigner: SigningKey) -> (row: RowChange, message: Data) {
        let message = Authority.rotationMessage(authority: authority.device, previous: rootKey.publicKey, next: next,
                                                validFromSeq: validFromSeq)
        return (record(TrustSchema.authorityKey, row, [
            "public_key": .bytes(next.bytes), "valid_from_seq": .integer(Int64(validFromSeq)),
            "new_key_signature": .bytes(statementSigner.sign(message)),
        ]), message)
    }

    /// An authority change set in the system scope.
    static func system(_ identity: DeviceIdentity, seq: UInt64, prev: Data, _ rows: [RowChange]) throws -> SignedChangeSet {
        try Fixtures.signed(identity, seq: seq, prev: prev, hlc: tick(seq), scope: .system, rows: rows)
    }

    /// The inspector's change set `seq`: creates the person at 1, renames it after.
    static func inspectorChange(_ identity: DeviceIdentity, seq: UInt64, prev: Data, grid: String = "G1") throws -> SignedChangeSet {
        let writes: [FieldWrite] = seq == 1
            ? [FieldWrite(field: "_deleted", value: .boolean(false)), FieldWrite(field: "grid", value: .text(grid)),
               FieldWrite(field: "name", value: .text("张三"))]
            : [FieldWrite(field: "name", value: .text("张三 \(seq)"))]
        return try Fixtures.signed(identity, seq: seq, prev: prev, hlc: tick(100 + seq), scope: .grid(grid), rows: [
            RowChange(table: "person", row: personRow, writes: writes),
        ])
    }

    static func trustVector(_ name: String, _ description: String, _ signed: SignedChangeSet, context: [SignedChangeSet],
                            accept: Bool, reason: LinliError.Code? = nil, rotationMessage: Data? = nil) -> TrustVector {
        TrustVector(
            name: name, description: description, authorityPublicKeyHex: rootKey.publicKey.hex, authorityDeviceHex: authority.device.hex,
            contextHex: context.map { Hex.encode($0.envelope) }, bytesHex: Hex.encode(signed.envelope),
            blake2b256Hex: Hex.encode(signed.hash), signatureHex: Hex.encode(signed.signature),
            rotationMessageHex: rotationMessage.map(Hex.encode), accept: accept, reason: reason?.rawValue)
    }

    public static func makeTrust() throws -> [TrustVector] {
        var vectors: [TrustVector] = []

        // Certificates.
        let certifyInspector = try system(authority, seq: 1, prev: Data(), [
            certificate(trustRow(1), device: inspector.device, key: inspector.key.publicKey, role: .inspector, grids: ["G1"],
                        label: "inspector phone 1"),
        ])
        vectors.append(trustVector(
            "accept-certificate",
            "The authority's first change set, signed with the root key: certifies an inspector of grid G1 from seq 1.",
            certifyInspector, context: [], accept: true))
        let inspector1 = try inspectorChange(inspector, seq: 1, prev: Data())
        vectors.append(trustVector(
            "accept-certified-change-set",
            "The inspector's first change set in grid G1, verified with the key its certificate names.",
            inspector1, context: [certifyInspector], accept: true))
        vectors.append(trustVector(
            "refuse-uncertified-device",
            "The inspector's first change set on a replica that has no certificate for the device.",
            inspector1, context: [], accept: false, reason: .unknownKey))
        vectors.append(trustVector(
            "refuse-inspector-outside-its-grids",
            "A change set of the G1 inspector in grid G2, which its certificate does not name.",
            try inspectorChange(inspector, seq: 1, prev: Data(), grid: "G2"), context: [certifyInspector],
            accept: false, reason: .outOfScope))
        vectors.append(trustVector(
            "refuse-certificate-changed",
            "The authority's second change set writes the role of the certificate row of its first: trust records are create-only.",
            try system(authority, seq: 2, prev: certifyInspector.hash, [
                RowChange(table: TrustSchema.certificate, row: trustRow(1), writes: [FieldWrite(field: "role", value: .text("staff"))]),
            ]), context: [certifyInspector], accept: false, reason: .schemaViolation))
        vectors.append(trustVector(
            "refuse-certificate-for-authority-role",
            "A certificate that would make a device the authority.",
            try system(authority, seq: 1, prev: Data(), [
                certificate(trustRow(2), device: staff.device, key: staff.key.publicKey, role: .authority, label: "second authority"),
            ]), context: [], accept: false, reason: .schemaViolation))

        // Only the authority writes the system scope, and it writes nothing else.
        let certifyStaff = try system(authority, seq: 1, prev: Data(), [
            certificate(trustRow(3), device: staff.device, key: staff.key.publicKey, role: .staff, label: "street office desk"),
        ])
        vectors.append(trustVector(
            "refuse-certificate-from-non-authority",
            "A certified staff device issues a certificate (for the inspector) in the system scope.",
            try system(staff, seq: 1, prev: Data(), [
                certificate(trustRow(4), device: inspector.device, key: inspector.key.publicKey, role: .inspector, grids: ["G1"],
                            label: "self-made"),
            ]), context: [certifyStaff], accept: false, reason: .notPermitted))
        vectors.append(trustVector(
            "refuse-authority-writing-records",
            "The authority writes a notice in the public scope: it writes only trust records.",
            try Fixtures.signed(authority, seq: 1, prev: Data(), hlc: tick(1), scope: .public, rows: [
                RowChange(table: "notice", row: trustRow(5), writes: [
                    FieldWrite(field: "_deleted", value: .boolean(false)), FieldWrite(field: "title", value: .text("通知")),
                ]),
            ]), context: [], accept: false, reason: .notPermitted))

        // Revocations.
        let revokeAfter1 = try system(authority, seq: 2, prev: certifyInspector.hash, [
            revocation(trustRow(6), device: inspector.device, lastValidSeq: 1, reason: "phone reported lost"),
        ])
        vectors.append(trustVector(
            "refuse-after-revocation",
            "The inspector's change set 2 after a revocation that keeps its change sets up to 1.",
            try inspectorChange(inspector, seq: 2, prev: inspector1.hash), context: [certifyInspector, revokeAfter1, inspector1],
            accept: false, reason: .revoked))
        let revokeAll = try system(authority, seq: 2, prev: certifyInspector.hash, [
            revocation(trustRow(7), device: inspector.device, lastValidSeq: 0, reason: "enrolled by mistake"),
        ])
        vectors.append(trustVector(
            "refuse-revoked-from-the-start",
            "The inspector's change set 1 after a revocation with last_valid_seq 0, which revokes its whole history.",
            inspector1, context: [certifyInspector, revokeAll], accept: false, reason: .revoked))

        // A device key rotated at seq 3: a second certificate for the same device.
        let renewInspector = try system(authority, seq: 2, prev: certifyInspector.hash, [
            certificate(trustRow(8), device: inspector.device, key: inspectorRenewed.key.publicKey, role: .inspector, grids: ["G1"],
                        validFromSeq: 3, label: "inspector phone 1, new key"),
        ])
        let inspector2 = try inspectorChange(inspector, seq: 2, prev: inspector1.hash)
        let rotatedContext = [certifyInspector, renewInspector, inspector1, inspector2]
        vectors.append(trustVector(
            "accept-device-key-after-rotation",
            "The inspector's change set 3, signed with the key its second certificate makes valid from seq 3; the chain goes on.",
            try inspectorChange(inspectorRenewed, seq: 3, prev: inspector2.hash), context: rotatedContext, accept: true))
        vectors.append(trustVector(
            "refuse-old-device-key-after-rotation",
            "The inspector's change set 3 signed with its first key, which is valid for seqs 1 and 2 only.",
            try inspectorChange(inspector, seq: 3, prev: inspector2.hash), context: rotatedContext, accept: false, reason: .badSignature))

        // Rotations of the authority key: the change set signed by the
        // previous key, the statement by the new one.
        let (rotationRow, rotationMessage) = rotation(trustRow(9), next: nextAuthorityKey.publicKey, validFromSeq: 2,
                                                      statementSigner: nextAuthorityKey)
        let rotate = try system(authority, seq: 1, prev: Data(), [rotationRow])
        vectors.append(trustVector(
            "accept-authority-rotation",
            "The authority's change set 1, signed with the root key, makes the next key valid from seq 2; the statement is signed by the next key.",
            rotate, context: [], accept: true, rotationMessage: rotationMessage))
        let (strangerRow, strangerMessage) = rotation(trustRow(9), next: nextAuthorityKey.publicKey, validFromSeq: 2,
                                                      statementSigner: strangerKey)
        vectors.append(trustVector(
            "refuse-rotation-statement-signed-by-another-key",
            "A rotation whose statement is signed by a key other than the new one: only the previous key signed.",
            try system(authority, seq: 1, prev: Data(), [strangerRow]), context: [], accept: false, reason: .badSignature,
            rotationMessage: strangerMessage))
        let (twiceRow, twiceMessage) = rotation(trustRow(9), next: rootKey.publicKey, validFromSeq: 2, statementSigner: rootKey)
        vectors.append(trustVector(
            "refuse-rotation-to-the-same-key",
            "A rotation naming the current root key as the new key: one key named twice counts once.",
            try system(authority, seq: 1, prev: Data(), [twiceRow]), context: [], accept: false, reason: .badSignature,
            rotationMessage: twiceMessage))
        vectors.append(trustVector(
            "refuse-rotation-signed-by-new-key-only",
            "A rotation whose carrying change set is signed by the new key instead of the root key: that key is not yet the authority's, so the change set waits as signed by an unknown key.",
            try system(DeviceIdentity(device: authority.device, key: nextAuthorityKey, user: "admin"), seq: 1, prev: Data(), [rotationRow]),
            context: [], accept: false, reason: .unknownKey, rotationMessage: rotationMessage))
        let (earlyRow, earlyMessage) = rotation(trustRow(9), next: nextAuthorityKey.publicKey, validFromSeq: 1,
                                                statementSigner: nextAuthorityKey)
        vectors.append(trustVector(
            "refuse-rotation-not-later",
            "A rotation in change set 1 that makes the new key valid from seq 1: it must be valid from a later change set.",
            try system(authority, seq: 1, prev: Data(), [earlyRow]), context: [], accept: false, reason: .schemaViolation,
            rotationMessage: earlyMessage))
        let rotated = DeviceIdentity(device: authority.device, key: nextAuthorityKey, user: "admin")
        vectors.append(trustVector(
            "accept-certificate-after-authority-rotation",
            "The authority's change set 2, signed with the key the rotation made valid from seq 2.",
            try system(rotated, seq: 2, prev: rotate.hash, [
                certificate(trustRow(10), device: staff.device, key: staff.key.publicKey, role: .staff, label: "street office desk"),
            ]), context: [rotate], accept: true))
        vectors.append(trustVector(
            "refuse-root-key-after-authority-rotation",
            "The authority's change set 2 signed with the root key after the rotation made the next key valid from seq 2.",
            try system(authority, seq: 2, prev: rotate.hash, [
                certificate(trustRow(10), device: staff.device, key: staff.key.publicKey, role: .staff, label: "street office desk"),
            ]), context: [rotate], accept: false, reason: .badSignature))
        return vectors
    }

    /// The file text of a trust vector: sorted keys, pretty printed, newline at the end.
}
