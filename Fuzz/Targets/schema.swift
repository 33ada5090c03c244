// Feeds: a schema pack, as JSON (Protocol/schema/community-v1.json is one),
// as linli-server, the clients and linli-admin read it.
//
// Calls JSONDecoder's decoding of Schema (with its own decoders of
// fields, scope rules and cross-field rules) and Schema.validate(); for a
// valid pack, checkUpgrade from and to the community pack, and a round
// trip through JSONEncoder, after which the pack must still be valid.
import Foundation
import FuzzSupport
import LinliCore

let community = Repository.communitySchema

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = FuzzInput(data, size).data
    guard let schema = try? JSONDecoder().decode(Schema.self, from: bytes) else { return 0 }
    do { try schema.validate() } catch { return 0 }
    _ = try? schema.checkUpgrade(from: community)
    _ = try? community.checkUpgrade(from: schema)
    do {
        let again = try JSONDecoder().decode(Schema.self, from: JSONEncoder().encode(schema))
        try again.validate()
    } catch {
        preconditionFailure("a valid schema pack does not survive encoding: \(error)")
    }
    return 0
}
