import Foundation
import LinliCore
import LinliCrypto
import Synchronization

/// A sync request signed by the device that sends it, in the manner of
/// RFC 9421 (HTTP Message Signatures) with one fixed set of covered
/// components.
///
/// The device signs, with its current Ed25519 key:
///
///     "linli/request/v1\n" METHOD "\n" PATH "\n" BODY-HASH "\n" TIME "\n" NONCE "\n" DEVICE
///
/// where METHOD is upper case, PATH is the request target with its query,
/// BODY-HASH is the lowercase hex BLAKE2b-256 of the body bytes as sent
/// (of no bytes for an empty body), TIME is milliseconds since 1970 in
/// decimal, NONCE is 32 lowercase hex digits of fresh randomness and DEVICE
/// the device id in 32 lowercase hex digits. The values travel in the
/// `Linli-Device`, `Linli-Key`, `Linli-Time`, `Linli-Nonce` and
/// `Linli-Signature` (hex) headers.
public struct RequestSignature: Sendable, Equatable {
    public static let context = "linli/request/v1\n"

    public var device: DeviceID
    public var keyID: Data
    public var time: UInt64
    public var nonce: String
    public var signature: Data

    /// The header names, in the order they are listed in the protocol.
    public enum Header {
        public static let device = "Linli-Device"
        public static let key = "Linli-Key"
        public static let time = "Linli-Time"
        public static let nonce = "Linli-Nonce"
        public static let signature = "Linli-Signature"
    }

    public static func message(method: String, path: String, body: Data, time: UInt64, nonce: String, device: DeviceID) -> Data {
        let bodyHash = Hex.encode(Blake2b256.hash(body))
        return Data("\(context)\(method.uppercased())\n\(path)\n\(bodyHash)\n\(time)\n\(nonce)\n\(device.hex)".utf8)
    }

    /// Signs a request as `device` at `time` with a fresh nonce.
    public static func sign(method: String, path: String, body: Data, device: DeviceID, key: SigningKey, time: UInt64) -> RequestSignature {
        sign(method: method, path: path, body: body, device: device, key: key, time: time, nonce: Hex.encode(SecureRandom.bytes(16)))
    }

    /// Signs with a given nonce: for golden vectors only; a device never
    /// reuses a nonce.
    public static func sign(method: String, path: String, body: Data, device: DeviceID, key: SigningKey, time: UInt64, nonce: String) -> RequestSignature {
        let signature = key.sign(message(method: method, path: path, body: body, time: time, nonce: nonce, device: device))
        return RequestSignature(device: device, keyID: key.publicKey.keyID, time: time, nonce: nonce, signature: signature)
    }

    public var headers: [(String, String)] {
        [(Header.device, device.hex), (Header.key, Hex.encode(keyID)), (Header.time, String(time)),
         (Header.nonce, nonce), (Header.signature, Hex.encode(signature))]
    }

    /// Reads the signature headers; `header` looks a header up by name.
    public init(header: (String) -> String?) throws(LinliError) {
        guard let deviceText = header(Header.device), let keyText = header(Header.key), let timeText = header(Header.time),
              let nonce = header(Header.nonce), let signatureText = header(Header.signature) else {
            throw LinliError(.badRequestSignature, "the request is not signed: the headers Linli-Device, Linli-Key, Linli-Time, Linli-Nonce and Linli-Signature are all required")
        }
        guard let device = DeviceID(hex: deviceText), device.hex == deviceText else {
            throw LinliError(.badRequestSignature, "Linli-Device must be 32 lowercase hex digits")
        }
        guard let keyID = Hex.decodeData(keyText), keyID.count == 8 else {
            throw LinliError(.badRequestSignature, "Linli-Key must be 16 hex digits")
        }
        guard let time = UInt64(timeText) else { throw LinliError(.badRequestSignature, "Linli-Time must be milliseconds since 1970") }
        guard nonce.utf8.count == 32, Hex.decode(nonce) != nil, nonce == nonce.lowercased() else {
            throw LinliError(.badRequestSignature, "Linli-Nonce must be 32 lowercase hex digits")
        }
        guard let signature = Hex.decodeData(signatureText), signature.count == 64 else {
            throw LinliError(.badRequestSignature, "Linli-Signature must be 128 hex digits")
        }
        self.init(device: device, keyID: keyID, time: time, nonce: nonce, signature: signature)
    }

    public init(device: DeviceID, keyID: Data, time: UInt64, nonce: String, signature: Data) {
        self.device = device
        self.keyID = keyID
        self.time = time
        self.nonce = nonce
        self.signature = signature
    }
}

/// Checks signed requests: the time window, the signature against the
/// device's key, and that no nonce is used twice within the window.
///
/// The key lookup is the caller's (the server's trust state): it returns
/// the device's current key, or throws `unknown_device` or `revoked`.
public final class RequestVerifier: Sendable {
    private let seen = Mutex(NonceWindow())
    private let noncesPerDeviceMax: Int
    private let noncesMax: Int

    struct NonceWindow {
        var expiry: [String: UInt64] = [:]
        var order: [(nonce: String, device: DeviceID, expires: UInt64)] = []
        var head = 0
        /// Nonces remembered per device, so one device cannot fill the window for all.
        var perDevice: [DeviceID: Int] = [:]
    }

    /// The bounds default to ``Limits/requestNoncesPerDeviceMax`` and
    /// ``Limits/requestNoncesMax``; tests give smaller ones.
    public init(noncesPerDeviceMax: Int = Limits.requestNoncesPerDeviceMax, noncesMax: Int = Limits.requestNoncesMax) {
        self.noncesPerDeviceMax = noncesPerDeviceMax
        self.noncesMax = noncesMax
    }

    /// What can be judged before the body is read: the request's time is
    /// within the window and it names the key `key` gives for its device,
    /// which it returns. The signature itself covers the body, so
    /// ``verify`` checks it after (and makes these checks first).
    @discardableResult
    public func precheck(_ signature: RequestSignature, now: UInt64, key: (DeviceID) throws(LinliError) -> PublicKey) throws(LinliError) -> PublicKey {
        let skew = Limits.requestClockSkewMillisecondsMax
        // Every value here may be anything a UInt64 holds: the bounds
        // saturate instead of overflowing.
        guard signature.time >= now.subtractingSaturated(skew), signature.time <= now.addingSaturated(skew) else {
            let minutes = (signature.time > now ? signature.time - now : now - signature.time) / 60_000
            throw LinliError(.staleRequest, "the request's time is \(minutes) minutes from the server's; at most \(skew / 60_000) minutes are accepted",
                             hint: "set the device's clock, then sync again")
        }
        let publicKey = try key(signature.device)
        guard publicKey.keyID == signature.keyID else {
            throw LinliError(.badRequestSignature, "the request names key \(Hex.encode(signature.keyID)), but the device's current key is \(Hex.encode(publicKey.keyID))")
        }
        return publicKey
    }

    /// Verifies a request and records its nonce. Throws a `LinliError` with
    /// the code the protocol documents for each refusal.
    public func verify(
        _ signature: RequestSignature, method: String, path: String, body: Data, now: UInt64,
        key: (DeviceID) throws(LinliError) -> PublicKey
    ) throws(LinliError) {
        let skew = Limits.requestClockSkewMillisecondsMax
        let publicKey = try precheck(signature, now: now, key: key)
        let message = RequestSignature.message(method: method, path: path, body: body, time: signature.time, nonce: signature.nonce, device: signature.device)
        guard publicKey.verify(signature: signature.signature, message: message) else {
            throw LinliError(.badRequestSignature, "the request's signature does not match its method, path, body, time and nonce")
        }
        enum Seen { case fresh, replayed, deviceFull, full }
        let perDeviceMax = noncesPerDeviceMax
        let allMax = noncesMax
        let outcome = seen.withLock { window -> Seen in
            // Forget nonces whose requests are outside the window anyway.
            while window.head < window.order.count, window.order[window.head].expires < now {
                let expired = window.order[window.head]
                if window.expiry.removeValue(forKey: expired.nonce) != nil {
                    let left = (window.perDevice[expired.device] ?? 1) - 1
                    window.perDevice[expired.device] = left > 0 ? left : nil
                }
                window.head += 1
            }
            if window.head > 4096, window.head * 2 > window.order.count {
                window.order.removeFirst(window.head)
                window.head = 0
            }
            let key = signature.device.hex + signature.nonce
            guard window.expiry[key] == nil else { return .replayed }
            let held = window.perDevice[signature.device] ?? 0
            guard held < perDeviceMax else { return .deviceFull }
            guard window.expiry.count < allMax else { return .full }
            // time <= now + skew here, so this cannot overflow; saturate anyway.
            let expires = signature.time.addingSaturated(skew)
            window.expiry[key] = expires
            window.order.append((key, signature.device, expires))
            window.perDevice[signature.device] = held + 1
            return .fresh
        }
        switch outcome {
        case .fresh: return
        case .replayed:
            throw LinliError(.replayedRequest, "this request was already received (its nonce was used): a replay is refused",
                             hint: "sign each request anew")
        case .deviceFull:
            throw LinliError(.overLimit, "this device sent more than requestNoncesPerDeviceMax (\(perDeviceMax)) requests within \(2 * skew / 60_000) minutes; the server takes no more of its requests until older ones expire",
                             hint: "try again in a few minutes")
        case .full:
            throw LinliError(.overLimit, "the server holds requestNoncesMax (\(allMax)) recent nonces and cannot take another now",
                             hint: "try again in a few minutes")
        }
    }
}
