import Foundation
import LinliCore
import LinliCrypto
import SwiftProtobuf

/// A change set as it travels and is stored: the exact signed bytes, with
/// the decoded content beside them.
///
/// `envelope` is what is stored and sent. `body` is the part that is hashed
/// and signed; `hash` (BLAKE2b-256 of `body`) names the change set and is
/// what the next change set of the same device links to. Decoding never
/// re-encodes: signatures are checked over `body` exactly as received.
public struct SignedChangeSet: Sendable, Hashable {
    public let envelope: Data
    public let body: Data
    public let signature: Data
    public let hash: Data
    public let changeSet: ChangeSet

    public var header: ChangeSetHeader { changeSet.header }

    /// The context string prefixed to the hash before signing, so that a
    /// change set signature can never be mistaken for any other signature a
    /// Linli key makes (sync requests, certificates).
    public static let signingContext = Data("linli/changeset/v1\n".utf8)

    /// The exact message the Ed25519 signature covers: the context string
    /// followed by the 32-byte BLAKE2b-256 of the body.
    public static func signingMessage(hash: Data) -> Data { signingContext + hash }

    /// Decodes an envelope as received. Throws `malformed` or `overLimit`
    /// with a message naming what is wrong; the signature is not checked
    /// here (the verifier needs the key, which the store knows).
    public init(envelope: Data) throws(LinliError) {
        guard envelope.count <= Limits.changeSetBytesMax else {
            throw LinliError(.overLimit, "the change set has \(envelope.count) bytes; changeSetBytesMax is \(Limits.changeSetBytesMax)")
        }
        let wire: Linli_V1_SignedChangeSet
        do {
            wire = try Linli_V1_SignedChangeSet(serializedBytes: envelope)
        } catch {
            throw LinliError(.malformed, "the change set envelope cannot be decoded: \(error)")
        }
        // One change set has exactly one stored form: an envelope that
        // carries unknown fields or a non-canonical encoding is refused, so
        // no byte of what is stored can change without a refusal.
        guard wire.unknownFields.data.isEmpty, (try? wire.serializedBytes()) == envelope else {
            throw LinliError(.malformed, "the change set envelope is not in canonical form (extra or reordered fields)")
        }
        guard wire.signature.count == SigningKey.signatureBytes else {
            throw LinliError(.malformed, "the signature has \(wire.signature.count) bytes; an Ed25519 signature has 64")
        }
        let body = wire.body
        let decoded: Linli_V1_ChangeSet
        do {
            decoded = try Linli_V1_ChangeSet(serializedBytes: body)
        } catch {
            throw LinliError(.malformed, "the change set body cannot be decoded: \(error)")
        }
        self.envelope = envelope
        self.body = body
        self.signature = wire.signature
        self.hash = Blake2b256.hash(body)
        self.changeSet = try ChangeSetWire.model(from: decoded)
        try changeSet.validateStructure()
    }

    /// Signs a change set: encodes its body once, hashes it and signs the
    /// hash. The result's bytes are final; nothing re-encodes them.
    public static func sign(_ changeSet: ChangeSet, with key: SigningKey) throws(LinliError) -> SignedChangeSet {
        guard changeSet.header.keyID == key.publicKey.keyID else {
            throw LinliError(.invalidInput, "the change set names key \(Hex.encode(changeSet.header.keyID)), but is being signed with key \(Hex.encode(key.publicKey.keyID))")
        }
        try changeSet.validateStructure()
        let body: Data
        do {
            body = try ChangeSetWire.message(from: changeSet).serializedBytes()
        } catch {
            throw LinliError(.malformed, "the change set cannot be encoded: \(error)")
        }
        let hash = Blake2b256.hash(body)
        let signature = key.sign(signingMessage(hash: hash))
        var wire = Linli_V1_SignedChangeSet()
        wire.body = body
        wire.signature = signature
        let envelope: Data
        do { envelope = try wire.serializedBytes() } catch {
            throw LinliError(.malformed, "the envelope cannot be encoded: \(error)")
        }
        return try SignedChangeSet(envelope: envelope)
    }

    /// Whether the signature is valid for `key`.
    public func verify(with key: PublicKey) -> Bool {
        key.verify(signature: signature, message: Self.signingMessage(hash: hash))
    }
}

/// Conversion between the generated protobuf types and the core model.
public enum ChangeSetWire {
    static func model(from wire: Linli_V1_ChangeSet) throws(LinliError) -> ChangeSet {
        // The format first: a later format may lay out everything else anew.
        guard wire.format == ChangeSetHeader.currentFormat else {
            throw LinliError(
                .unsupportedFormat,
                "change set format \(wire.format) is not understood (this replica reads format \(ChangeSetHeader.currentFormat))",
                hint: "update this replica's software")
        }
        guard wire.scope.utf8.count <= Limits.scopeBytesMax else {
            throw LinliError(.overLimit, "the scope has \(wire.scope.utf8.count) bytes; scopeBytesMax is \(Limits.scopeBytesMax)")
        }
        guard let device = DeviceID(bytes: wire.device) else {
            throw LinliError(.malformed, "the device id must be 16 bytes, not \(wire.device.count)")
        }
        guard let scope = Scope(wire.scope) else {
            throw LinliError(.malformed, "\"\(wire.scope.prefix(Limits.scopeBytesMax))\" is not a scope (grid:<name>, public, kiosk:<device> or system)")
        }
        let header = ChangeSetHeader(
            format: wire.format, device: device, keyID: wire.keyID, seq: wire.seq, prev: wire.prev,
            hlc: HLCTimestamp(rawValue: wire.hlc), user: wire.user, schemaVersion: wire.schemaVersion, scope: scope)
        var rows = [RowChange]()
        rows.reserveCapacity(wire.rows.count)
        for wireRow in wire.rows {
            guard let row = RowID(bytes: wireRow.row) else {
                throw LinliError(.malformed, "a row id in table \(wireRow.table.prefix(Limits.nameBytesMax)) must be 16 bytes, not \(wireRow.row.count)")
            }
            var writes = [FieldWrite]()
            writes.reserveCapacity(wireRow.writes.count)
            for wireWrite in wireRow.writes {
                var replaces = [Dot]()
                replaces.reserveCapacity(wireWrite.replaces.count)
                for wireDot in wireWrite.replaces {
                    guard let dotDevice = DeviceID(bytes: wireDot.device) else {
                        throw LinliError(.malformed, "a replaced dot's device id must be 16 bytes")
                    }
                    replaces.append(Dot(device: dotDevice, seq: wireDot.seq, index: wireDot.index))
                }
                writes.append(FieldWrite(field: wireWrite.field, value: value(from: wireWrite), replaces: replaces))
            }
            rows.append(RowChange(table: wireRow.table, row: row, writes: writes))
        }
        return ChangeSet(header: header, rows: rows)
    }

    static func value(from write: Linli_V1_FieldWrite) -> Value {
        guard write.hasValue, let kind = write.value.kind else { return .null }
        switch kind {
        case .integer(let value): return .integer(value)
        case .real(let value): return .real(value)
        case .text(let value): return .text(value)
        case .bytes(let value): return .bytes(value)
        case .boolean(let value): return .boolean(value)
        }
    }

    public static func message(from changeSet: ChangeSet) -> Linli_V1_ChangeSet {
        var wire = Linli_V1_ChangeSet()
        let header = changeSet.header
        wire.format = header.format
        wire.device = header.device.data
        wire.keyID = header.keyID
        wire.seq = header.seq
        wire.prev = header.prev
        wire.hlc = header.hlc.rawValue
        wire.user = header.user
        wire.schemaVersion = header.schemaVersion
        wire.scope = header.scope.description
        wire.rows = changeSet.rows.map { row in
            var wireRow = Linli_V1_RowChange()
            wireRow.table = row.table
            wireRow.row = row.row.data
            wireRow.writes = row.writes.map { write in
                var wireWrite = Linli_V1_FieldWrite()
                wireWrite.field = write.field
                switch write.value {
                case .null: break
                case .integer(let value): wireWrite.value.integer = value
                case .real(let value): wireWrite.value.real = value
                case .text(let value): wireWrite.value.text = value
                case .bytes(let value): wireWrite.value.bytes = value
                case .boolean(let value): wireWrite.value.boolean = value
                }
                wireWrite.replaces = write.replaces.map { dot in
                    var wireDot = Linli_V1_Dot()
                    wireDot.device = dot.device.data
                    wireDot.seq = dot.seq
                    wireDot.index = dot.index
                    return wireDot
                }
                return wireWrite
            }
            return wireRow
        }
        return wire
    }
}
