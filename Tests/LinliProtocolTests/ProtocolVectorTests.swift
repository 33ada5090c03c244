import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting
import SwiftProtobuf
import Testing

/// The golden request and response vectors in Protocol/vectors/protocol:
/// what another client must produce and accept, byte for byte.
struct ProtocolVectorTests {
    static let folder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Protocol/vectors/protocol")

    static var vectors: [GoldenVectors.ProtocolVector] {
        let files = (try? FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)) ?? []
        return files.filter { $0.pathExtension == "json" }.sorted { $0.path < $1.path }.compactMap {
            try? JSONDecoder().decode(GoldenVectors.ProtocolVector.self, from: Data(contentsOf: $0))
        }
    }

    @Test func theCommittedVectorsAreWhatTheGeneratorMakes() throws {
        let made = try GoldenVectors.makeProtocol()
        for vector in made {
            let file = Self.folder.appendingPathComponent(vector.name + ".json")
            #expect(try Data(contentsOf: file) == GoldenVectors.encode(vector),
                    "\(vector.name).json differs: regenerate with `swift run linli-sim protocol-vectors`")
        }
        #expect(Set(Self.vectors.map(\.name)) == Set(made.map(\.name)))
    }

    @Test func eachSignedRequestVerifiesAndAnyChangedPartIsRefused() throws {
        let requests = Self.vectors.filter { $0.method != nil }
        #expect(requests.count == 3)
        for vector in requests {
            let headers = try #require(vector.headers)
            let keyHex = try #require(vector.publicKeyHex)
            let key = try #require(PublicKey(hex: keyHex))
            let body = try #require(Hex.decodeData(vector.bytesHex))
            let signature = try RequestSignature(header: { headers[$0] })
            let time = signature.time
            // The signed message is exactly PROTOCOL.md 1.2's.
            let message = RequestSignature.message(method: vector.method!, path: vector.path!, body: body, time: time,
                                                   nonce: signature.nonce, device: signature.device)
            #expect(String(decoding: message, as: UTF8.self) == vector.signedMessage)
            try RequestVerifier().verify(signature, method: vector.method!, path: vector.path!, body: body, now: time) { _ throws(LinliError) in key }
            // Another path, another body: refused.
            #expect(throws: LinliError.self) {
                try RequestVerifier().verify(signature, method: vector.method!, path: vector.path! + "x", body: body, now: time) { _ throws(LinliError) in key }
            }
            #expect(throws: LinliError.self) {
                try RequestVerifier().verify(signature, method: vector.method!, path: vector.path!, body: body + Data([0]), now: time) { _ throws(LinliError) in key }
            }
        }
    }

    @Test func eachSignedAnswerVerifiesAgainstItsRequestAndNoOther() throws {
        let answers = Self.vectors.filter { $0.answersRequest != nil }
        #expect(answers.count == 2)
        for vector in answers {
            let request = try #require(Self.vectors.first { $0.name == vector.answersRequest })
            let requestHeaders = try #require(request.headers)
            let requestSignature = try RequestSignature(header: { requestHeaders[$0] })
            let body = try #require(Hex.decodeData(vector.bytesHex))
            let bound = AnswerSignature.Request(method: request.method!, path: request.path!, body: Hex.decodeData(request.bytesHex)!,
                                                signature: requestSignature)
            let status = try #require(vector.status)
            let signature = try AnswerSignature(header: { vector.headers?[$0] })
            let server = try #require(PublicKey(hex: vector.publicKeyHex ?? ""))
            #expect(String(decoding: AnswerSignature.message(status: status, request: bound, body: body, server: signature.server), as: UTF8.self)
                    == vector.signedMessage)
            try signature.verify(status: status, request: bound, body: body) { _, _ in server }
            // Bound to that request: another nonce or another status is refused.
            var other = bound
            other.nonce = String(repeating: "0", count: 32)
            #expect(throws: LinliError.self) { try signature.verify(status: status, request: other, body: body) { _, _ in server } }
            #expect(throws: LinliError.self) { try signature.verify(status: status + 1, request: bound, body: body) { _, _ in server } }
        }
    }

    @Test func eachMessageDecodesToItsReadableForm() throws {
        for vector in Self.vectors where vector.messageType != nil {
            let bytes = try #require(Hex.decodeData(vector.bytesHex))
            let decoded: any SwiftProtobuf.Message = switch vector.messageType {
            case "linli.v1.PushRequest": try Linli_V1_PushRequest(serializedBytes: bytes)
            case "linli.v1.PushResponse": try Linli_V1_PushResponse(serializedBytes: bytes)
            case "linli.v1.PullResponse": try Linli_V1_PullResponse(serializedBytes: bytes)
            case "linli.v1.SnapshotManifest": try Linli_V1_SnapshotManifest(serializedBytes: bytes)
            case "linli.v1.HeadsResponse": try Linli_V1_HeadsResponse(serializedBytes: bytes)
            default: throw LinliError(.malformed, "unknown message type \(vector.messageType ?? "")")
            }
            #expect(try decoded.jsonString() == vector.messageJSON, "\(vector.name)")
        }
        let manifest = try #require(Self.vectors.first { $0.name == "snapshot-manifest" })
        let keyHex = try #require(manifest.publicKeyHex)
        let key = try #require(PublicKey(hex: keyHex))
        let bytes = try #require(Hex.decodeData(manifest.bytesHex))
        let signature = try #require(Hex.decodeData(manifest.signatureHex ?? ""))
        #expect(key.verify(signature: signature, message: SnapshotWire.signingMessage(bytes)))
    }
}
