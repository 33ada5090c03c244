import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting
import SwiftProtobuf
import Testing

/// Reads every vector in `Protocol/vectors/trust/` and checks that a replica
/// configured with the vector's trust root decides as the vector says
/// (`Protocol/TRUST.md`).
@Suite struct TrustVectorTests {
    static let folder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Protocol/vectors/trust")

    static var files: [URL] {
        ((try? FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)) ?? [])
            .filter { $0.pathExtension == "json" }.sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    static func load(_ file: URL) throws -> GoldenVectors.TrustVector {
        try JSONDecoder().decode(GoldenVectors.TrustVector.self, from: Data(contentsOf: file))
    }

    @Test func theTrustFolderHoldsEveryKindOfCase() throws {
        let vectors = try Self.files.map(Self.load)
        #expect(vectors.count >= 8)
        #expect(vectors.contains { $0.accept })
        let reasons = Set(vectors.compactMap(\.reason))
        #expect(reasons.isSuperset(of: ["bad_signature", "not_permitted", "revoked", "unknown_key", "out_of_scope", "schema_violation"]))
        for vector in vectors { #expect(vector.accept == (vector.reason == nil), "\(vector.name): accept and reason disagree") }
    }

    @Test("a replica with the trust root decides each trust vector as it says", arguments: files)
    func vectorIsDecidedAsStated(file: URL) throws {
        let vector = try Self.load(file)
        #expect(file.deletingPathExtension().lastPathComponent == vector.name)
        let root = try #require(PublicKey(hex: vector.authorityPublicKeyHex))
        #expect(Authority.deviceID(root: root).hex == vector.authorityDeviceHex, "\(vector.name): authority device id")
        let store = try ReplicaStore(path: nil, schema: Fixtures.schema, authority: root)
        let context = try vector.contextHex.map { try #require(Hex.decodeData($0)) }
        let contextOutcomes = try store.apply(context)
        #expect(contextOutcomes.allSatisfy { $0.status == .applied }, "\(vector.name): context refused: \(contextOutcomes)")

        let bytes = try #require(Hex.decodeData(vector.bytesHex))
        // The stated hash and signature are those of the bytes.
        let wire = try Linli_V1_SignedChangeSet(serializedBytes: bytes)
        #expect(Hex.encode(Blake2b256.hash(wire.body)) == vector.blake2b256Hex, "\(vector.name): hash")
        #expect(Hex.encode(wire.signature) == vector.signatureHex, "\(vector.name): signature")
        if let messageHex = vector.rotationMessageHex {
            // The stated rotation message is the documented layout.
            let message = try #require(Hex.decodeData(messageHex))
            let prefix = Data("linli/authority-rotation/v1\n".utf8)
            #expect(message.count == prefix.count + 16 + 32 + 32 + 8)
            #expect(message.prefix(prefix.count) == prefix)
            #expect(Hex.encode(message.dropFirst(prefix.count).prefix(16)) == vector.authorityDeviceHex)
            #expect(Hex.encode(message.dropFirst(prefix.count + 16).prefix(32)) == vector.authorityPublicKeyHex)
        }

        let outcome = try #require(try store.apply([bytes]).first)
        if vector.accept {
            #expect(outcome.status == .applied, "\(vector.name): \(outcome)")
        } else {
            #expect(outcome.error?.code.rawValue == vector.reason, "\(vector.name): \(outcome)")
            #expect(try store.quarantined().last?.envelope == bytes, "\(vector.name): refused bytes were not kept")
        }
    }

    @Test func theCommittedTrustVectorsAreWhatTheGeneratorMakes() throws {
        let vectors = try GoldenVectors.makeTrust()
        #expect(Set(vectors.map(\.name)).count == vectors.count, "vector names must be unique")
        for vector in vectors {
            let file = Self.folder.appendingPathComponent(vector.name + ".json")
            #expect(try Data(contentsOf: file) == GoldenVectors.encode(vector),
                    "\(vector.name).json differs: regenerate with `swift run linli-sim trust-vectors --out Protocol/vectors/trust`")
        }
        #expect(Set(Self.files.map { $0.deletingPathExtension().lastPathComponent }) == Set(vectors.map(\.name)),
                "Protocol/vectors/trust holds files the generator does not make")
    }

    @Test func theGeneratorRepeatsItself() throws {
        #expect(try GoldenVectors.makeTrust() == GoldenVectors.makeTrust())
    }

    @Test func theChangeSetVectorTestsReadOnlyTheTopFolder() {
        // The trust vectors live in a subfolder; the change set vector tests
        // must not pick them up.
        #expect(!GoldenVectorTests.files.isEmpty)
        #expect(GoldenVectorTests.files.allSatisfy { $0.deletingLastPathComponent().lastPathComponent == "vectors" })
    }

    @Test func authorityIdentityIsTheDocumentedBytes() throws {
        let root = try #require(PublicKey(hex: String(repeating: "ab", count: 32)))
        let expected = Blake2b256.hash(Data("linli/authority/v1\n".utf8) + root.bytes).prefix(16)
        #expect(Authority.deviceID(root: root).data == expected)
        #expect(Data("linli/authority/v1\n".utf8).count == 19)
        let next = try #require(PublicKey(hex: String(repeating: "cd", count: 32)))
        let message = Authority.rotationMessage(authority: Authority.deviceID(root: root), previous: root, next: next, validFromSeq: 0x0102)
        #expect(message.count == 116)
        #expect(message.suffix(8) == Data([0, 0, 0, 0, 0, 0, 0x01, 0x02]))
    }
}
