import CSodium
import LinliCore
import Foundation

/// An Ed25519 public key: 32 bytes.
public struct PublicKey: Hashable, Sendable, CustomStringConvertible {
    public static let byteCount = 32
    public let bytes: Data

    public init?(bytes: Data) {
        guard bytes.count == Self.byteCount else { return nil }
        self.bytes = Data(bytes)
    }

    public init?(hex: String) {
        guard let raw = Hex.decodeData(hex) else { return nil }
        self.init(bytes: raw)
    }

    /// First 8 bytes of BLAKE2b-256 of the key: names the key in change set
    /// headers without repeating it.
    public var keyID: Data { Blake2b256.hash(bytes).prefix(8) }

    public var hex: String { Hex.encode(bytes) }
    public var description: String { hex }

    /// Whether `signature` is a valid Ed25519 signature of `message` by this key.
    public func verify(signature: Data, message: Data) -> Bool {
        guard signature.count == Int(crypto_sign_BYTES) else { return false }
        Sodium.ensureInitialized()
        return signature.withUnsafeBytes { sig in
            message.withUnsafeBytes { msg in
                bytes.withUnsafeBytes { key in
                    crypto_sign_verify_detached(
                        sig.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        msg.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafePointer(bitPattern: 1)!,
                        UInt64(message.count),
                        key.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 0
                }
            }
        }
    }
}

/// An Ed25519 signing key. The secret stays in guarded memory and is wiped
/// when the key is released.
public struct SigningKey: Sendable {
    public static let seedBytes = 32
    public static let signatureBytes = 64

    public let publicKey: PublicKey
    /// libsodium's 64-byte secret key (seed followed by public key).
    let secret: SecretBytes

    /// A new random key pair.
    public static func generate() -> SigningKey {
        Sodium.ensureInitialized()
        let secret = SecretBytes(count: Int(crypto_sign_SECRETKEYBYTES))
        var publicBytes = Data(count: PublicKey.byteCount)
        publicBytes.withUnsafeMutableBytes { pub in
            secret.withUnsafeMutableBytes { sec in
                _ = crypto_sign_keypair(
                    pub.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    sec.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        return SigningKey(publicKey: PublicKey(bytes: publicBytes)!, secret: secret)
    }

    /// The key pair derived from a 32-byte seed. Used to reopen a sealed key
    /// and to make reproducible test vectors.
    public init(seed: SecretBytes) {
        precondition(seed.count == Self.seedBytes, "an Ed25519 seed has 32 bytes")
        Sodium.ensureInitialized()
        let secret = SecretBytes(count: Int(crypto_sign_SECRETKEYBYTES))
        var publicBytes = Data(count: PublicKey.byteCount)
        publicBytes.withUnsafeMutableBytes { pub in
            secret.withUnsafeMutableBytes { sec in
                seed.withUnsafeBytes { seedBytes in
                    _ = crypto_sign_seed_keypair(
                        pub.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        sec.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        seedBytes.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        }
        self.init(publicKey: PublicKey(bytes: publicBytes)!, secret: secret)
    }

    private init(publicKey: PublicKey, secret: SecretBytes) {
        self.publicKey = publicKey
        self.secret = secret
    }

    /// The 32-byte seed, in guarded memory: what a sealed key file protects.
    public var seed: SecretBytes {
        let seed = SecretBytes(count: Self.seedBytes)
        seed.withUnsafeMutableBytes { out in
            secret.withUnsafeBytes { sec in out.copyMemory(from: UnsafeRawBufferPointer(rebasing: sec.prefix(Self.seedBytes))) }
        }
        return seed
    }

    /// A detached Ed25519 signature of `message`.
    public func sign(_ message: Data) -> Data {
        var signature = Data(count: Self.signatureBytes)
        signature.withUnsafeMutableBytes { sig in
            message.withUnsafeBytes { msg in
                secret.withUnsafeBytes { sec in
                    _ = crypto_sign_detached(
                        sig.baseAddress!.assumingMemoryBound(to: UInt8.self), nil,
                        msg.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafePointer(bitPattern: 1)!,
                        UInt64(message.count),
                        sec.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        }
        return signature
    }
}

extension Hex {
    public static func decodeData(_ text: String) -> Data? { decode(text).map { Data($0) } }
}
