import Foundation
import LinliCore
import LinliCrypto

/// What a new device hands the administrator: its id and public key,
/// signed with that key (proof it holds the private key). For a key
/// rotation, also signed by the device's current key.
///
/// A small JSON file; `text` gives one line for a QR code.
public struct EnrolmentRequest: Codable, Sendable, Equatable {
    public static let format = "linli-enrolment-request/1"
    public var format: String
    public var device: String
    public var publicKey: String
    public var label: String
    /// Signature by the new key over ``signingMessage``.
    public var signature: String
    /// For a rotation: the current key, and its signature over the same message.
    public var previousPublicKey: String?
    public var previousSignature: String?
    /// For a rotation made on the device: the first of its change sets the
    /// new key signs (the device's next one when it made the request; it
    /// signs with the new key from then on).
    public var fromSeq: UInt64?

    enum CodingKeys: String, CodingKey {
        case format, device, label, signature
        case publicKey = "public_key"
        case previousPublicKey = "previous_public_key"
        case previousSignature = "previous_signature"
        case fromSeq = "from_seq"
    }

    /// The bytes both keys sign (PROTOCOL.md 8.1); `from_seq`, when
    /// present, is one more line.
    var signingMessage: Data {
        Data(("linli/enrolment-request/v1\n\(device)\n\(publicKey)\n\(label)\n\(previousPublicKey ?? "")" + (fromSeq.map { "\n\($0)" } ?? "")).utf8)
    }

    /// A request for a new device, or (with `previous`) for a new key of
    /// an enrolled one, signing from `fromSeq` on.
    public static func make(device: DeviceID, key: SigningKey, label: String, previous: SigningKey? = nil,
                            fromSeq: UInt64? = nil) -> EnrolmentRequest {
        var request = EnrolmentRequest(
            format: format, device: device.hex, publicKey: key.publicKey.hex, label: label, signature: "",
            previousPublicKey: previous?.publicKey.hex, previousSignature: nil, fromSeq: previous == nil ? nil : fromSeq)
        request.signature = Hex.encode(key.sign(request.signingMessage))
        if let previous { request.previousSignature = Hex.encode(previous.sign(request.signingMessage)) }
        return request
    }

    /// Checks form and signatures; returns the device id and key.
    public func verified() throws(LinliError) -> (device: DeviceID, key: PublicKey) {
        guard format == Self.format else {
            throw LinliError(.malformed, "this is not a Linli enrolment request (format \(format))")
        }
        guard let deviceID = DeviceID(hex: device), let key = PublicKey(hex: publicKey),
              let signatureBytes = Hex.decodeData(signature), label.utf8.count <= 200 else {
            throw LinliError(.malformed, "the enrolment request is damaged: a device id, key or signature has the wrong form")
        }
        guard key.verify(signature: signatureBytes, message: signingMessage) else {
            throw LinliError(.badSignature, "the enrolment request is not signed by the key it names; make a new request on the device")
        }
        if let previousPublicKey {
            guard let previous = PublicKey(hex: previousPublicKey), let previousSignatureBytes = previousSignature.flatMap(Hex.decodeData),
                  previous.verify(signature: previousSignatureBytes, message: signingMessage) else {
                throw LinliError(.badSignature, "the key rotation request is not signed by the device's current key")
            }
        }
        return (deviceID, key)
    }

    public func encoded() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        return (try? encoder.encode(self)) ?? Data()
    }

    /// Reads a request from its file, or from the one line of text that
    /// `text` makes for a QR code (a scanner's output, surrounding blanks
    /// and line breaks allowed).
    public static func decode(_ data: Data) throws(LinliError) -> EnrolmentRequest {
        guard data.count <= Limits.enrolmentRequestBytesMax else {
            throw LinliError(.overLimit, "the enrolment request has \(data.count) bytes; enrolmentRequestBytesMax is \(Limits.enrolmentRequestBytesMax)")
        }
        var json = data
        let trimmed = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if !trimmed.hasPrefix("{"), let decoded = Data(base64Encoded: trimmed) { json = decoded }
        do { return try JSONDecoder().decode(EnrolmentRequest.self, from: json) } catch {
            throw LinliError(.malformed, "the file is neither an enrolment request nor the line of text `linli-admin device request --text` prints",
                             hint: "give the file the device wrote, or paste its one line into a file as it is")
        }
    }

    /// One line of text for a QR code: base64 of the JSON.
    public var text: String { encoded().base64EncodedString() }
}

/// What the administrator hands back: the certificate and the trust records
/// it rests on, the authority key and the server's address. Everything a
/// device needs to verify change sets offline from its first day.
public struct EnrolmentBundle: Codable, Sendable, Equatable {
    public static let format = "linli-enrolment-bundle/1"
    public var format: String
    public var authorityPublicKey: String
    public var device: String
    public var role: String
    public var grids: [String]
    public var server: String
    /// The authority's change sets (certificates, revocations, rotations) in order, hex.
    public var trustRecords: [String]

    enum CodingKeys: String, CodingKey {
        case format, device, role, grids, server
        case authorityPublicKey = "authority_public_key"
        case trustRecords = "trust_records"
    }

    public init(authorityPublicKey: PublicKey, device: DeviceID, role: Role, grids: [String], server: String, trustRecords: [Data]) {
        format = Self.format
        self.authorityPublicKey = authorityPublicKey.hex
        self.device = device.hex
        self.role = role.rawValue
        self.grids = grids
        self.server = server
        self.trustRecords = trustRecords.map { Hex.encode($0) }
    }

    public func encoded() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return (try? encoder.encode(self)) ?? Data()
    }

    public static func decode(_ data: Data) throws(LinliError) -> EnrolmentBundle {
        let bundle: EnrolmentBundle
        do { bundle = try JSONDecoder().decode(EnrolmentBundle.self, from: data) } catch {
            throw LinliError(.malformed, "the file is not a readable enrolment bundle (\(error))")
        }
        guard bundle.format == format, PublicKey(hex: bundle.authorityPublicKey) != nil, DeviceID(hex: bundle.device) != nil,
              Role(rawValue: bundle.role) != nil, bundle.trustRecords.allSatisfy({ Hex.decodeData($0) != nil }) else {
            throw LinliError(.malformed, "the enrolment bundle is damaged or of an unknown format")
        }
        return bundle
    }
}
