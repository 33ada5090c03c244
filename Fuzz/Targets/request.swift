// Feeds: the headers of a signed sync request and the request itself
// (PROTOCOL.md 1.2), as lines: Linli-Device, Linli-Key, Linli-Time,
// Linli-Nonce, Linli-Signature, the method, the path, the server's clock
// (ms since 1970; empty: the vectors' time), then the body bytes. A line
// of one NUL byte is a header that is not sent.
//
// Calls RequestSignature(header:) and RequestVerifier.verify against
// alice's key from Protocol/vectors/protocol/push-request.json (any other
// device is unknown). A request that verifies once must be refused as a
// replay the second time.
import Foundation
import FuzzSupport
import LinliCore
import LinliCrypto
import LinliProtocol

let alice = Repository.publicKey("protocol/push-request")
let aliceDevice = DeviceID(hex: Repository.vector("protocol/push-request")["headers"].flatMap { ($0 as? [String: String])?["Linli-Device"] } ?? "")!
let vectorTime: UInt64 = 1_790_000_000_000

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let (lines, body) = FuzzInput(data, size).fields(8)
    let headers = [RequestSignature.Header.device, RequestSignature.Header.key, RequestSignature.Header.time,
                   RequestSignature.Header.nonce, RequestSignature.Header.signature]
    let signature: RequestSignature
    do {
        signature = try RequestSignature { name in headers.firstIndex(of: name).flatMap { lines[$0] } }
    } catch {
        precondition(error.code == .badRequestSignature, "a header that does not parse is bad_request_signature")
        return 0
    }
    precondition(signature.headers.count == 5)
    let method = lines[5] ?? "GET"
    let path = lines[6] ?? "/"
    let now = lines[7].flatMap { UInt64($0) } ?? vectorTime

    let verifier = RequestVerifier(noncesPerDeviceMax: 2, noncesMax: 3)
    let key: (DeviceID) throws(LinliError) -> PublicKey = { device throws(LinliError) in
        guard device == aliceDevice else { throw LinliError(.unknownDevice, "device \(device.hex) is not enrolled") }
        return alice
    }
    do {
        try verifier.verify(signature, method: method, path: path, body: body, now: now, key: key)
    } catch {
        return 0
    }
    do {
        try verifier.verify(signature, method: method, path: path, body: body, now: now, key: key)
        preconditionFailure("a request was accepted twice")
    } catch {
        precondition(error.code == .replayedRequest, "the second copy is a replay, not \(error.code)")
    }
    return 0
}
