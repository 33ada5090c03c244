import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting
import Testing

@Suite struct RequestSignatureTests {
    let device = Fixtures.identity(5)
    let now: UInt64 = 1_790_000_000_000
    let body = Data("{\"change_sets\": []}".utf8)

    func keyLookup(_ id: DeviceID) throws(LinliError) -> PublicKey {
        guard id == device.device else { throw LinliError(.unknownDevice, "device \(id.hex) is not enrolled") }
        return device.key.publicKey
    }

    func signed(time: UInt64? = nil) -> RequestSignature {
        RequestSignature.sign(method: "POST", path: "/v1/push", body: body, device: device.device, key: device.key, time: time ?? now)
    }

    @Test func aSignedRequestVerifiesOnceAndItsReplayIsRefused() throws {
        let verifier = RequestVerifier()
        let signature = signed()
        try verifier.verify(signature, method: "POST", path: "/v1/push", body: body, now: now + 1000, key: keyLookup)
        do {
            try verifier.verify(signature, method: "POST", path: "/v1/push", body: body, now: now + 2000, key: keyLookup)
            Issue.record("a replayed request was accepted")
        } catch {
            #expect(error.code == .replayedRequest)
        }
        // A fresh signature of the same request is not a replay.
        try verifier.verify(signed(), method: "POST", path: "/v1/push", body: body, now: now, key: keyLookup)
    }

    @Test("a changed method, path or body makes the signature fail", arguments: [
        ("GET", "/v1/push", "{\"change_sets\": []}"), ("POST", "/v1/pull", "{\"change_sets\": []}"),
        ("POST", "/v1/push?x=1", "{\"change_sets\": []}"), ("POST", "/v1/push", "{\"change_sets\": [1]}"),
    ])
    func tampered(method: String, path: String, body: String) throws {
        do {
            try RequestVerifier().verify(signed(), method: method, path: path, body: Data(body.utf8), now: now, key: keyLookup)
            Issue.record("a tampered request was accepted")
        } catch {
            #expect(error.code == .badRequestSignature)
        }
    }

    @Test("a time outside the window is refused as stale", arguments: [-6, 6])
    func stale(minutes: Int) throws {
        let time = UInt64(Int64(now) + Int64(minutes) * 60_000)
        do {
            try RequestVerifier().verify(signed(time: time), method: "POST", path: "/v1/push", body: body, now: now, key: keyLookup)
            Issue.record("a stale request was accepted")
        } catch {
            #expect(error.code == .staleRequest && error.message.contains("6 minutes"))
        }
    }

    @Test func anUnknownOrRevokedDeviceIsRefusedWithItsOwnCode() throws {
        let stranger = Fixtures.identity(6)
        let request = RequestSignature.sign(method: "GET", path: "/v1/pull", body: Data(), device: stranger.device, key: stranger.key, time: now)
        do {
            try RequestVerifier().verify(request, method: "GET", path: "/v1/pull", body: Data(), now: now, key: keyLookup)
            Issue.record("an unknown device was accepted")
        } catch {
            #expect(error.code == .unknownDevice)
        }
        do {
            try RequestVerifier().verify(signed(), method: "POST", path: "/v1/push", body: body, now: now) { (_: DeviceID) throws(LinliError) -> PublicKey in
                throw LinliError(.revoked, "device revoked")
            }
            Issue.record("a revoked device was accepted")
        } catch {
            #expect(error.code == .revoked)
        }
    }

    @Test func aRequestSignedWithAnotherKeyIsRefused() throws {
        let other = SigningKey(seed: SecretBytes(copying: Data(repeating: 0x42, count: 32)))
        let forged = RequestSignature.sign(method: "POST", path: "/v1/push", body: body, device: device.device, key: other, time: now)
        do {
            try RequestVerifier().verify(forged, method: "POST", path: "/v1/push", body: body, now: now, key: keyLookup)
            Issue.record("a forged request was accepted")
        } catch {
            #expect(error.code == .badRequestSignature && error.message.contains("current key"))
        }
    }

    @Test func headersRoundTripAndMalformedOnesAreRefused() throws {
        let signature = signed()
        let headers = Dictionary(uniqueKeysWithValues: signature.headers)
        #expect(try RequestSignature(header: { headers[$0] }) == signature)
        for name in headers.keys {
            var broken = headers
            broken[name] = "zz"
            #expect(throws: LinliError.self) { try RequestSignature(header: { broken[$0] }) }
            broken[name] = nil
            #expect(throws: LinliError.self) { try RequestSignature(header: { broken[$0] }) }
        }
    }

    @Test func theSignedMessageIsTheDocumentedBytes() {
        let message = RequestSignature.message(method: "post", path: "/v1/push", body: Data(), time: 42,
                                               nonce: String(repeating: "0", count: 32), device: device.device)
        let emptyHash = "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"
        #expect(String(decoding: message, as: UTF8.self)
                == "linli/request/v1\nPOST\n/v1/push\n\(emptyHash)\n42\n\(String(repeating: "0", count: 32))\n\(device.device.hex)")
    }
}
