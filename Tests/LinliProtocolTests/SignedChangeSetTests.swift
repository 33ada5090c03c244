import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting
import Testing

@Suite struct SignedChangeSetTests {
    let alice = Fixtures.identity(1)

    func sample(seq: UInt64 = 1, prev: Data = Data()) throws -> SignedChangeSet {
        try Fixtures.signed(alice, seq: seq, prev: prev, hlc: 42 << 16, rows: [
            RowChange(table: "person", row: RowID(high: 1, low: 2), writes: [
                FieldWrite(field: "name", value: .text("张三")),
                FieldWrite(field: "visits", value: .integer(-3)),
                FieldWrite(field: "hours", value: .real(1.5)),
                FieldWrite(field: "care", value: .boolean(true)),
                FieldWrite(field: "house", value: .bytes(Data(repeating: 9, count: 16))),
                FieldWrite(field: "phone", value: .null, replaces: [Dot(device: Fixtures.identity(2).device, seq: 7, index: 1)]),
            ]),
        ])
    }

    @Test func decodingTheEnvelopeGivesBackWhatWasSigned() throws {
        let signed = try sample()
        let decoded = try SignedChangeSet(envelope: signed.envelope)
        #expect(decoded.changeSet == signed.changeSet)
        #expect(decoded.body == signed.body && decoded.hash == Blake2b256.hash(signed.body))
        #expect(decoded.verify(with: alice.key.publicKey))
        #expect(!decoded.verify(with: Fixtures.identity(2).key.publicKey))
    }

    @Test func signingIsDeterministic() throws {
        #expect(try sample().envelope == sample().envelope)
    }

    @Test func aKeyThatDoesNotMatchTheHeaderIsRefusedWhenSigning() throws {
        let header = ChangeSetHeader(device: alice.device, keyID: Data(repeating: 0, count: 8), seq: 1, prev: Data(),
                                     hlc: HLCTimestamp(rawValue: 1), user: "x", schemaVersion: 1, scope: .public)
        let changeSet = ChangeSet(header: header, rows: [RowChange(table: "notice", row: RowID.random(), writes: [FieldWrite(field: "title", value: .text("t"))])])
        #expect(throws: LinliError.self) { try SignedChangeSet.sign(changeSet, with: alice.key) }
    }

    @Test func anEnvelopeWithAShortSignatureOrOversizeIsRefused() throws {
        #expect(throws: LinliError.self) { try SignedChangeSet(envelope: Data([0x0A, 0x00, 0x12, 0x01, 0x00])) }
        do {
            _ = try SignedChangeSet(envelope: Data(count: Limits.changeSetBytesMax + 1))
            Issue.record("an oversize envelope was decoded")
        } catch {
            #expect(error.code == .overLimit && error.message.contains("changeSetBytesMax"))
        }
    }
}
