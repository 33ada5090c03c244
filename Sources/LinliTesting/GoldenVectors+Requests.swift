import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import SwiftProtobuf

// MARK: Request and response vectors (PROTOCOL.md)

extension GoldenVectors {
    /// A signed request exactly as a device sends it, or a message exactly
    /// as the server answers it. Made reproducibly; a client in another
    /// language checks that it builds the same bytes and signatures.
    public struct ProtocolVector: Codable, Equatable, Sendable {
        public var name: String
        public var description: String
        /// For a request: its method, path (with query) and headers.
        public var method: String?
        public var path: String?
        public var headers: [String: String]?
        /// The signed message of PROTOCOL.md 1.2, as text (requests only).
        public var signedMessage: String?
        /// The signer's public key (hex): the device for requests, the
        /// server for a snapshot manifest.
        public var publicKeyHex: String?
        /// The body (request) or message (answer) bytes, hex.
        public var bytesHex: String
        /// The protobuf message type in `linli.proto`, and its fields in
        /// protobuf's JSON mapping, for reading.
        public var messageType: String?
        public var messageJSON: String?
        /// For a snapshot manifest: the server's signature over
        /// "linli/snapshot/v1\n" followed by the manifest bytes.
        public var signatureHex: String?
        /// For a signed answer (PROTOCOL.md 1.4): the name of the request
        /// vector it answers, and its HTTP status.
        public var answersRequest: String?
        public var status: Int?

        enum CodingKeys: String, CodingKey {
            case name, description, method, path, headers, status
            case answersRequest = "answers_request"
            case signedMessage = "signed_message"
            case publicKeyHex = "public_key_hex"
            case bytesHex = "bytes_hex"
            case messageType = "message_type"
            case messageJSON = "message_json"
            case signatureHex = "signature_hex"
        }
    }

    static let requestTime: UInt64 = 1_790_000_000_000
    static let serverKey = Fixtures.identity(9, user: "server")

    public static func makeProtocol() throws -> [ProtocolVector] {
        let changeSets = try make()
        let first = try SignedChangeSet(envelope: Hex.decodeData(changeSets.first { $0.name == "accept-first" }!.bytesHex)!)
        var vectors: [ProtocolVector] = []

        var push = Linli_V1_PushRequest()
        push.changeSets = [first.envelope]
        vectors.append(try request(
            "push-request", "alice pushes her first change set (Protocol/vectors/accept-first.json).",
            method: "POST", path: "/v1/push", body: push.serializedBytes(), nonce: "00112233445566778899aabbccddeeff", message: push))
        vectors.append(try request(
            "pull-request", "alice asks for the change sets after position 0, at most 1,000.",
            method: "GET", path: "/v1/pull?after=0&limit=1000", body: Data(), nonce: "ffeeddccbbaa99887766554433221100", message: nil))
        vectors.append(try request(
            "status-request", "alice asks for her refused change sets and the conflicts in her scopes.",
            method: "GET", path: "/v1/status", body: Data(), nonce: "0f0e0d0c0b0a09080706050403020100", message: nil))

        var accepted = Linli_V1_PushResult()
        accepted.hash = first.hash
        accepted.seq = 1
        accepted.status = "accepted"
        var refused = Linli_V1_PushResult()
        refused.hash = Blake2b256.hash(Data("another change set".utf8))
        refused.seq = 2
        refused.status = "refused"
        refused.code = LinliError.Code.outOfScope.rawValue
        refused.message = "grid G2 is not one of this inspector's grids"
        var pushResponse = Linli_V1_PushResponse()
        pushResponse.results = [accepted, refused]
        vectors.append(try message("push-response", "The answer to a push of two change sets: the first accepted, the second refused and kept.",
                                   pushResponse))

        var pulled = Linli_V1_PulledChangeSet()
        pulled.position = 7
        pulled.envelope = first.envelope
        pulled.scopedPredecessor = 0
        var pullResponse = Linli_V1_PullResponse()
        pullResponse.changeSets = [pulled]
        pullResponse.cursor = 7
        pullResponse.more = false
        vectors.append(try message("pull-response", "A page of one change set at position 7, for an inspector: its device has no earlier change set in the inspector's scopes; nothing more waits.",
                                   pullResponse))

        var manifest = Linli_V1_SnapshotManifest()
        manifest.format = 1
        manifest.serverDevice = serverKey.device.data
        manifest.cursor = 7
        manifest.scopes = ["grid:G1", "public", "system"]
        manifest.takenAtMs = requestTime
        manifest.fileHash = Blake2b256.hash(Data("the snapshot file's bytes".utf8))
        manifest.fileBytes = 25
        var snapshot = try message("snapshot-manifest", "The signed manifest of a snapshot of an inspector's scopes (headers Linli-Snapshot-Manifest and Linli-Snapshot-Signature, base64).",
                                   manifest)
        let manifestBytes: Data = try manifest.serializedBytes()
        snapshot.publicKeyHex = serverKey.key.publicKey.hex
        snapshot.signatureHex = Hex.encode(serverKey.key.sign(SnapshotWire.signingMessage(manifestBytes)))
        vectors.append(snapshot)

        // Signed answers (PROTOCOL.md 1.4), bound to the requests above.
        let pullBytes: Data = try pullResponse.serializedBytes()
        vectors.append(answer("answer-pull", "The server's signed answer to pull-request: the page of pull-response, status 200.",
                              to: vectors.first { $0.name == "pull-request" }!, status: 200, body: pullBytes, type: "linli.v1.PullResponse",
                              json: try pullResponse.jsonString()))
        let (status, error) = (401, Data(#"{"code":"stale_request","hint":"set the device's clock, then sync again","message":"the request's time is 61 minutes from the server's; at most 5 minutes are accepted"}"#.utf8))
        vectors.append(answer("answer-error", "The server's signed answer refusing status-request as stale: errors are signed too.",
                              to: vectors.first { $0.name == "status-request" }!, status: status, body: error, type: nil, json: nil))
        var head = Linli_V1_Head()
        head.device = alice.device.data
        head.seq = 1
        head.hash = first.hash
        var heads = Linli_V1_HeadsResponse()
        heads.heads = [head]
        heads.logEnd = 7
        heads.takenAtMs = requestTime
        vectors.append(try message("heads-response", "The heads an inspector is told (PROTOCOL.md 2.6): alice's newest change set in its scopes is seq 1; the log ends at 7.",
                                   heads))
        return vectors
    }

    /// The server's signature on an answer to the request vector `request`.
    static func answer(_ name: String, _ description: String, to request: ProtocolVector, status: Int, body: Data, type: String?,
                       json: String?) -> ProtocolVector {
        let headers = request.headers!
        let bound = AnswerSignature.Request(method: request.method!, path: request.path!, device: alice.device, nonce: headers["Linli-Nonce"]!,
                                            bodyHash: Blake2b256.hash(Hex.decodeData(request.bytesHex)!))
        let signature = AnswerSignature.sign(status: status, request: bound, body: body, server: serverKey.device, key: serverKey.key)
        let message = AnswerSignature.message(status: status, request: bound, body: body, server: serverKey.device)
        var vector = ProtocolVector(name: name, description: description, method: nil, path: nil,
                                    headers: Dictionary(uniqueKeysWithValues: signature.headers),
                                    signedMessage: String(decoding: message, as: UTF8.self), publicKeyHex: serverKey.key.publicKey.hex,
                                    bytesHex: Hex.encode(body), messageType: type, messageJSON: json, signatureHex: nil)
        vector.answersRequest = request.name
        vector.status = status
        return vector
    }

    static func request(_ name: String, _ description: String, method: String, path: String, body: Data, nonce: String,
                        message: (any SwiftProtobuf.Message)?) throws -> ProtocolVector {
        let signature = RequestSignature.sign(method: method, path: path, body: body, device: alice.device, key: alice.key, time: requestTime, nonce: nonce)
        let signed = RequestSignature.message(method: method, path: path, body: body, time: requestTime, nonce: nonce, device: alice.device)
        return ProtocolVector(
            name: name, description: description, method: method, path: path,
            headers: Dictionary(uniqueKeysWithValues: signature.headers), signedMessage: String(decoding: signed, as: UTF8.self),
            publicKeyHex: alice.key.publicKey.hex, bytesHex: Hex.encode(body),
            messageType: message.map { "linli.v1." + type(of: $0).protoMessageName.split(separator: ".").last! },
            messageJSON: try message?.jsonString(), signatureHex: nil)
    }

    static func message(_ name: String, _ description: String, _ message: some SwiftProtobuf.Message) throws -> ProtocolVector {
        ProtocolVector(name: name, description: description, method: nil, path: nil, headers: nil, signedMessage: nil, publicKeyHex: nil,
                       bytesHex: Hex.encode(try message.serializedBytes() as Data),
                       messageType: "linli.v1." + type(of: message).protoMessageName.split(separator: ".").last!,
                       messageJSON: try message.jsonString(), signatureHex: nil)
    }
}
