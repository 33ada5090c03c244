import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting
import Testing

/// Reads every vector in `Protocol/vectors/refusals/` and checks that a
/// receiver decides it as the vector says, with the head where it says, and
/// that the files are what the generator makes (`TRUST.md` 7).
@Suite struct RefusalVectorTests {
    static let folder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Protocol/vectors/refusals")

    static var files: [URL] {
        ((try? FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)) ?? [])
            .filter { $0.pathExtension == "json" }.sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    static func load(_ file: URL) throws -> GoldenVectors.RefusalVector {
        try JSONDecoder().decode(GoldenVectors.RefusalVector.self, from: Data(contentsOf: file))
    }

    static func bytes(_ hex: String) throws -> Data {
        guard let data = Hex.decodeData(hex) else { throw LinliError(.malformed, "a vector holds hex that does not decode: \(hex.prefix(16))…") }
        return data
    }

    @Test func everyRefusalOfTheOrderOfChecksHasAVector() throws {
        let vectors = try Self.files.map(Self.load)
        let reasons = Set(vectors.compactMap(\.reason))
        #expect(reasons.isSuperset(of: ["malformed", "revoked", "unknown_key", "bad_signature", "device_quarantined", "fork",
                                        "broken_chain", "out_of_scope", "not_permitted", "clock_ahead", "schema_violation"]))
        #expect(Set(vectors.map(\.outcome)) == ["applied", "duplicate", "held", "refused"])
        // TRUST.md 7: steps 1 to 6 leave the head, 7 to 11 move it.
        let chained: Set<String> = ["out_of_scope", "not_permitted", "clock_ahead", "schema_violation"]
        for vector in vectors where vector.outcome == "refused" {
            let early = vector.name == "out-of-scope-behind-a-gap"
            #expect(vector.headMoves == (chained.contains(vector.reason ?? "") && !early), "\(vector.name): head_moves disagrees with TRUST.md 7")
        }
    }

    @Test("a receiver decides each refusal vector as it says, and its head is where it says", arguments: files)
    func vectorIsDecidedAsStated(file: URL) throws {
        let vector = try Self.load(file)
        #expect(file.deletingPathExtension().lastPathComponent == vector.name)
        let root = try #require(PublicKey(hex: vector.authorityPublicKeyHex))
        let clock = vector.receiverClockMs
        let receiver = try ReplicaStore(path: nil, schema: Fixtures.schema, authority: root, clock: { clock })
        let policy: ApplyPolicy = vector.policy == "gatekeeper" ? .gatekeeper : .replica
        _ = try receiver.apply(try vector.contextHex.map(Self.bytes), policy: policy)
        let bytes = try #require(Hex.decodeData(vector.bytesHex))
        let outcome = try #require(try receiver.apply([bytes], policy: policy).first)
        #expect(GoldenVectors.outcomeName(outcome.status) == vector.outcome, "\(vector.name): \(outcome)")
        #expect(outcome.error?.code.rawValue == vector.reason, "\(vector.name): \(outcome)")
        if vector.outcome == "refused" {
            #expect(try receiver.quarantined().contains { $0.envelope == bytes }, "\(vector.name): the refused bytes were not kept")
        }
        let device = try #require(DeviceID(hex: vector.deviceHex))
        let head = try receiver.chainHeads()[device]
        #expect(head?.seq == vector.headAfter?.seq, "\(vector.name): head seq")
        #expect(head.map { Hex.encode($0.hash) } == vector.headAfter?.hashHex, "\(vector.name): head hash")
        if let nextHex = vector.nextHex {
            let next = try #require(try receiver.apply([try Self.bytes(nextHex)], policy: policy).first)
            #expect(GoldenVectors.outcomeName(next.status) == vector.nextOutcome, "\(vector.name): the next change set: \(next)")
            let after = try receiver.chainHeads()[device]
            if let expected = vector.headAfterNext {
                #expect(after?.seq == expected.seq && after.map { Hex.encode($0.hash) } == expected.hashHex, "\(vector.name): head after the next")
            } else if vector.nextOutcome == "applied" {
                #expect(after.map { Hex.encode($0.hash) } == Hex.encode(try SignedChangeSet(envelope: try Self.bytes(nextHex)).hash),
                        "\(vector.name): the next change set is the head")
            }
        }
    }

    @Test func theCommittedRefusalVectorsAreWhatTheGeneratorMakes() throws {
        let vectors = try GoldenVectors.makeRefusals()
        #expect(Set(vectors.map(\.name)).count == vectors.count, "vector names must be unique")
        for vector in vectors {
            let file = Self.folder.appendingPathComponent(vector.name + ".json")
            #expect(try Data(contentsOf: file) == GoldenVectors.encode(vector),
                    "\(vector.name).json differs: regenerate with `swift run linli-sim refusal-vectors --out Protocol/vectors/refusals`")
        }
        #expect(Set(Self.files.map { $0.deletingPathExtension().lastPathComponent }) == Set(vectors.map(\.name)),
                "Protocol/vectors/refusals holds files the generator does not make")
    }
}
