// Feeds: a signed change set envelope, as a push body or a pulled page
// carries it (Linli_V1_SignedChangeSet bytes).
//
// Calls SignedChangeSet(envelope:) (decoding, canonical form, the structure
// rules of ChangeSet.validateStructure), verifies the signature against
// alice's key from Protocol/vectors/accept-first.json, checks every value
// against the community schema pack's fields and rules as a replica does
// before applying, shows each value as the clients do, and signs the
// decoded change set again: whatever decodes must encode and decode again.
import Foundation
import FuzzSupport
import LinliCore
import LinliCrypto
import LinliProtocol

let alice = Repository.publicKey("accept-first")
let schema = Repository.communitySchema
let resigner = SigningKey(seed: SecretBytes(copying: Data(repeating: 7, count: SigningKey.seedBytes)))

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let envelope = FuzzInput(data, size).data
    let signed: SignedChangeSet
    do { signed = try SignedChangeSet(envelope: envelope) } catch { return 0 }
    _ = signed.verify(with: alice)
    precondition(signed.hash == Blake2b256.hash(signed.body), "the hash names the body")

    for row in signed.changeSet.rows {
        guard let table = schema.table(row.table) else { continue }
        var values: [String: Value] = [:]
        for write in row.writes {
            guard let field = table.field(write.field) else { continue }
            _ = try? field.check(write.value, table: table.name)
            _ = FieldText.show(write.value, field: field, reveal: false)
            _ = FieldText.show(write.value, field: field, reveal: true)
            values[field.name] = write.value
        }
        _ = try? table.checkRules(values, touching: Set(values.keys), madeAt: signed.header.hlc.milliseconds)
    }

    var copy = signed.changeSet
    copy.header.keyID = resigner.publicKey.keyID
    do {
        let again = try SignedChangeSet.sign(copy, with: resigner)
        precondition(again.verify(with: resigner.publicKey), "a change set signed here verifies")
        precondition(again.header == copy.header, "the header survives encoding")
    } catch {
        preconditionFailure("a change set that decoded does not sign again: \(error)")
    }
    return 0
}
