import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting
import SwiftProtobuf
import Testing

/// Reads every vector in `Protocol/vectors/` and checks that this
/// implementation decides as the vector says.
@Suite struct GoldenVectorTests {
    static let folder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Protocol/vectors")

    static var files: [URL] {
        ((try? FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)) ?? [])
            .filter { $0.pathExtension == "json" }.sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    @Test func theVectorFolderHoldsEveryKindOfCase() throws {
        let vectors = try Self.files.map { try JSONDecoder().decode(GoldenVectors.Vector.self, from: Data(contentsOf: $0)) }
        #expect(vectors.count >= 8)
        #expect(vectors.contains { $0.accept })
        let reasons = Set(vectors.compactMap(\.reason))
        #expect(reasons.isSuperset(of: ["bad_signature", "broken_chain", "fork", "unknown_key", "malformed"]))
    }

    @Test("a replica decides each vector as it says", arguments: files)
    func vectorIsDecidedAsStated(file: URL) throws {
        let vector = try JSONDecoder().decode(GoldenVectors.Vector.self, from: Data(contentsOf: file))
        let device = try #require(DeviceID(hex: vector.deviceHex))
        let key = try #require(PublicKey(hex: vector.publicKeyHex))
        let store = try ReplicaStore(path: nil, schema: Fixtures.schema)
        try store.registerDeviceKey(device: device, publicKey: key)
        let context = try vector.contextHex.map { try #require(Hex.decodeData($0)) }
        #expect(try store.apply(context).allSatisfy { $0.status == .applied }, "\(vector.name): context refused")

        let bytes = try #require(Hex.decodeData(vector.bytesHex))
        // The stated hash and signature are those of the bytes.
        if let wire = try? Linli_V1_SignedChangeSet(serializedBytes: bytes) {
            #expect(Hex.encode(Blake2b256.hash(wire.body)) == vector.blake2b256Hex, "\(vector.name): hash")
            #expect(Hex.encode(wire.signature) == vector.signatureHex, "\(vector.name): signature")
            let verifies = key.verify(signature: wire.signature, message: SignedChangeSet.signingMessage(hash: Blake2b256.hash(wire.body)))
            if vector.accept { #expect(verifies, "\(vector.name): signature does not verify") }
        }
        let outcome = try #require(try store.apply([bytes]).first)
        if vector.accept {
            #expect(outcome.status == .applied, "\(vector.name): \(outcome)")
        } else {
            #expect(outcome.error?.code.rawValue == vector.reason, "\(vector.name): \(outcome)")
            #expect(try store.quarantined().last?.envelope == bytes, "\(vector.name): refused bytes were not kept")
        }
    }

    @Test func theCommittedVectorsAreWhatTheGeneratorMakes() throws {
        for vector in try GoldenVectors.make() {
            let file = Self.folder.appendingPathComponent(vector.name + ".json")
            #expect(try Data(contentsOf: file) == GoldenVectors.encode(vector),
                    "\(vector.name).json differs: regenerate with `swift run linli-sim vectors --out Protocol/vectors`")
        }
    }

    @Test func signingContextIsTheDocumentedBytes() {
        #expect(SignedChangeSet.signingContext == Data("linli/changeset/v1\n".utf8))
        #expect(SignedChangeSet.signingContext.count == 19)
    }
}
