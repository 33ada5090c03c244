import Foundation
import LinliCore
import LinliCrypto

/// The server's signature on an answer (PROTOCOL.md 1.4).
///
/// A change set is signed end to end by its author, but the rest of an
/// answer (a pull page's cursor, a push's results, the heads, the status)
/// is the server's word. A flipped byte in it can make a device skip
/// change sets for good or drop its own unsent ones, so the server signs
/// every answer to a signed request with its own key (certified with the
/// role `server`), bound to the request it answers and to its own body:
///
///     "linli/answer/v1\n" STATUS "\n" METHOD "\n" PATH "\n" DEVICE "\n"
///     NONCE "\n" REQUEST-BODY-HASH "\n" ANSWER-BODY-HASH "\n" SERVER
///
/// STATUS is the HTTP status code in decimal; METHOD, PATH, DEVICE and
/// NONCE are the request's as it signed them (PROTOCOL.md 1.2);
/// REQUEST-BODY-HASH and ANSWER-BODY-HASH are the lowercase hex
/// BLAKE2b-256 of the request's body and of the answer's body (after any
/// `Content-Encoding` is undone); SERVER is the server's device id in 32
/// lowercase hex digits. The values travel in the `Linli-Answer-Device`,
/// `Linli-Answer-Key` and `Linli-Answer-Signature` headers.
public struct AnswerSignature: Sendable, Equatable {
    public static let context = "linli/answer/v1\n"

    public enum Header {
        public static let device = "Linli-Answer-Device"
        public static let key = "Linli-Answer-Key"
        public static let signature = "Linli-Answer-Signature"
    }

    /// What an answer is bound to: the request it answers.
    public struct Request: Sendable, Equatable {
        public var method: String
        public var path: String
        public var device: DeviceID
        public var nonce: String
        public var bodyHash: Data

        public init(method: String, path: String, device: DeviceID, nonce: String, bodyHash: Data) {
            self.method = method
            self.path = path
            self.device = device
            self.nonce = nonce
            self.bodyHash = bodyHash
        }

        public init(method: String, path: String, body: Data, signature: RequestSignature) {
            self.init(method: method, path: path, device: signature.device, nonce: signature.nonce, bodyHash: Blake2b256.hash(body))
        }
    }

    public var server: DeviceID
    public var keyID: Data
    public var signature: Data

    public init(server: DeviceID, keyID: Data, signature: Data) {
        self.server = server
        self.keyID = keyID
        self.signature = signature
    }

    public static func message(status: Int, request: Request, body: Data, server: DeviceID) -> Data {
        Data(("\(context)\(status)\n\(request.method.uppercased())\n\(request.path)\n\(request.device.hex)\n\(request.nonce)\n"
              + "\(Hex.encode(request.bodyHash))\n\(Hex.encode(Blake2b256.hash(body)))\n\(server.hex)").utf8)
    }

    public static func sign(status: Int, request: Request, body: Data, server: DeviceID, key: SigningKey) -> AnswerSignature {
        AnswerSignature(server: server, keyID: key.publicKey.keyID,
                        signature: key.sign(message(status: status, request: request, body: body, server: server)))
    }

    public var headers: [(String, String)] {
        [(Header.device, server.hex), (Header.key, Hex.encode(keyID)), (Header.signature, Hex.encode(signature))]
    }

    /// Reads the answer's signature headers. An answer without them, or
    /// with them in the wrong form, is refused `bad_answer_signature`.
    public init(header: (String) -> String?) throws(LinliError) {
        guard let deviceText = header(Header.device), let keyText = header(Header.key), let signatureText = header(Header.signature) else {
            throw LinliError(.badAnswerSignature, "the server's answer is not signed (no Linli-Answer-Signature)",
                             hint: "nothing is lost; the request is sent again")
        }
        guard deviceText.utf8.count == 32, let server = DeviceID(hex: deviceText), server.hex == deviceText,
              keyText.utf8.count == 16, let keyID = Hex.decodeData(keyText), keyID.count == 8,
              signatureText.utf8.count == 128, let signature = Hex.decodeData(signatureText), signature.count == 64 else {
            throw LinliError(.badAnswerSignature, "the server's answer carries a damaged signature header",
                             hint: "nothing is lost; the request is sent again")
        }
        self.init(server: server, keyID: keyID, signature: signature)
    }

    /// Checks the signature over `status`, `request` and `body`; `key`
    /// finds the public key of a server device by key id (nil: unknown).
    public func verify(status: Int, request: Request, body: Data, key: (DeviceID, Data) throws -> PublicKey?) throws {
        guard let publicKey = try key(server, keyID) else {
            throw LinliError(.badAnswerSignature,
                             "the answer is signed by key \(Hex.encode(keyID)) of device \(server.hex), which this device does not know as a server's",
                             hint: "nothing is lost; sync again, and if it repeats ask the administrator whether the server was enrolled with the role server")
        }
        guard publicKey.verify(signature: signature, message: Self.message(status: status, request: request, body: body, server: server)) else {
            throw LinliError(.badAnswerSignature, "the server's answer does not match its signature: it was damaged or changed on the way",
                             hint: "nothing is lost; the request is sent again")
        }
    }
}
