import CSodium
import Foundation
import LinliCore

/// A private key at rest, sealed under a key derived from a PIN or
/// passphrase.
///
/// The passphrase is stretched with Argon2id (`crypto_pwhash`), and the
/// 32-byte Ed25519 seed is encrypted with XChaCha20-Poly1305. Everything
/// else in the file (the public key, the KDF parameters, the label) is
/// bound to the ciphertext as associated data, so changing any byte of the
/// file makes it fail to open. After decrypting, the derived public key must
/// equal the recorded one.
///
/// The file is a small JSON document, so an administrator can see what it
/// is without opening it:
///
///     {"cipher":"xchacha20poly1305-ietf","ciphertext":"…","format":"linli-sealed-key/1",
///      "kdf":{"algorithm":"argon2id13","memlimit":67108864,"opslimit":2,"salt":"…"},
///      "label":"inspector phone 3","nonce":"…","public_key":"…"}
public struct SealedKey: Codable, Sendable, Equatable {
    public static let format = "linli-sealed-key/1"

    /// How hard the passphrase is stretched.
    public enum Strength: Sendable {
        /// libsodium's interactive limits (64 MiB, 2 passes): for device PINs.
        case interactive
        /// libsodium's moderate limits (256 MiB, 3 passes): for authority keys.
        case moderate

        var limits: (ops: UInt64, mem: UInt64) {
            switch self {
            case .interactive: (UInt64(crypto_pwhash_OPSLIMIT_INTERACTIVE), UInt64(crypto_pwhash_MEMLIMIT_INTERACTIVE))
            case .moderate: (UInt64(crypto_pwhash_OPSLIMIT_MODERATE), UInt64(crypto_pwhash_MEMLIMIT_MODERATE))
            }
        }
    }

    public struct KDF: Codable, Sendable, Equatable {
        public var algorithm: String
        public var opslimit: UInt64
        public var memlimit: UInt64
        public var salt: String
    }

    public var format: String
    public var label: String
    public var publicKey: String
    public var kdf: KDF
    public var cipher: String
    public var nonce: String
    public var ciphertext: String

    enum CodingKeys: String, CodingKey {
        case format, label, kdf, cipher, nonce, ciphertext
        case publicKey = "public_key"
    }

    /// Seals `key` under `passphrase`.
    public static func seal(_ key: SigningKey, passphrase: String, label: String, strength: Strength = .interactive) throws(LinliError) -> SealedKey {
        try checkPassphrase(passphrase)
        let limits = strength.limits
        let salt = SecureRandom.bytes(Int(crypto_pwhash_SALTBYTES))
        let nonce = SecureRandom.bytes(Int(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES))
        var sealed = SealedKey(
            format: format, label: label, publicKey: key.publicKey.hex,
            kdf: KDF(algorithm: "argon2id13", opslimit: limits.ops, memlimit: limits.mem, salt: Hex.encode(salt)),
            cipher: "xchacha20poly1305-ietf", nonce: Hex.encode(nonce), ciphertext: "")
        let wrapping = try deriveKey(passphrase: passphrase, salt: salt, ops: limits.ops, mem: limits.mem)
        let associated = sealed.associatedData
        let seed = key.seed
        var ciphertext = Data(count: seed.count + Int(crypto_aead_xchacha20poly1305_ietf_ABYTES))
        var written: UInt64 = 0
        ciphertext.withUnsafeMutableBytes { out in
            seed.withUnsafeBytes { plain in
                associated.withUnsafeBytes { ad in
                    nonce.withUnsafeBytes { npub in
                        wrapping.withUnsafeBytes { k in
                            _ = crypto_aead_xchacha20poly1305_ietf_encrypt(
                                out.baseAddress!.assumingMemoryBound(to: UInt8.self), &written,
                                plain.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(plain.count),
                                ad.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(ad.count), nil,
                                npub.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                k.baseAddress!.assumingMemoryBound(to: UInt8.self))
                        }
                    }
                }
            }
        }
        sealed.ciphertext = Hex.encode(ciphertext.prefix(Int(written)))
        return sealed
    }

    /// Opens the sealed key. A wrong passphrase and an altered file are both
    /// refused; the message says which can be told apart.
    public func open(passphrase: String) throws(LinliError) -> SigningKey {
        guard format == Self.format, cipher == "xchacha20poly1305-ietf", kdf.algorithm == "argon2id13" else {
            throw LinliError(.damagedFile, "this is not a Linli sealed key file of a known format (\(format))")
        }
        guard let salt = Hex.decodeData(kdf.salt), salt.count == Int(crypto_pwhash_SALTBYTES),
              let nonce = Hex.decodeData(nonce), nonce.count == Int(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES),
              let ciphertext = Hex.decodeData(ciphertext),
              ciphertext.count == SigningKey.seedBytes + Int(crypto_aead_xchacha20poly1305_ietf_ABYTES),
              let expected = PublicKey(hex: publicKey),
              kdf.opslimit >= UInt64(crypto_pwhash_OPSLIMIT_MIN), kdf.opslimit <= UInt64(crypto_pwhash_OPSLIMIT_SENSITIVE),
              kdf.memlimit >= UInt64(crypto_pwhash_MEMLIMIT_MIN), kdf.memlimit <= UInt64(crypto_pwhash_MEMLIMIT_SENSITIVE)
        else {
            throw LinliError(.damagedFile, "the sealed key file is damaged: a field is missing or has the wrong length",
                             hint: "restore the key file from its backup, or enrol the device again")
        }
        let wrapping = try Self.deriveKey(passphrase: passphrase, salt: salt, ops: kdf.opslimit, mem: kdf.memlimit)
        let associated = associatedData
        let seed = SecretBytes(count: SigningKey.seedBytes)
        var written: UInt64 = 0
        let status = seed.withUnsafeMutableBytes { out in
            ciphertext.withUnsafeBytes { cipherBytes in
                associated.withUnsafeBytes { ad in
                    nonce.withUnsafeBytes { npub in
                        wrapping.withUnsafeBytes { k in
                            crypto_aead_xchacha20poly1305_ietf_decrypt(
                                out.baseAddress!.assumingMemoryBound(to: UInt8.self), &written, nil,
                                cipherBytes.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(cipherBytes.count),
                                ad.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(ad.count),
                                npub.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                k.baseAddress!.assumingMemoryBound(to: UInt8.self))
                        }
                    }
                }
            }
        }
        guard status == 0 else {
            throw LinliError(.wrongPassphrase, "the PIN or passphrase is wrong, or the key file was altered",
                             hint: "try again with the right PIN; if it keeps failing, restore the key file from its backup")
        }
        let key = SigningKey(seed: seed)
        guard key.publicKey == expected else {
            throw LinliError(.damagedFile, "the sealed key does not match the public key recorded in the file")
        }
        return key
    }

    public func encoded() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        return (try? encoder.encode(self)) ?? Data()
    }

    public static func decode(_ data: Data) throws(LinliError) -> SealedKey {
        do {
            return try JSONDecoder().decode(SealedKey.self, from: data)
        } catch {
            throw LinliError(.damagedFile, "the file is not a readable sealed key (\(error))",
                             hint: "check that you named the key file, not another file")
        }
    }

    /// Everything but the ciphertext and nonce, bound to the ciphertext.
    var associatedData: Data {
        Data("\(format)|\(label)|\(publicKey)|\(kdf.algorithm)|\(kdf.opslimit)|\(kdf.memlimit)|\(kdf.salt)|\(cipher)".utf8)
    }

    private static func checkPassphrase(_ passphrase: String) throws(LinliError) {
        guard passphrase.count >= 4 else {
            throw LinliError(.invalidInput, "a PIN or passphrase needs at least 4 characters")
        }
    }

    private static func deriveKey(passphrase: String, salt: Data, ops: UInt64, mem: UInt64) throws(LinliError) -> SecretBytes {
        Sodium.ensureInitialized()
        let key = SecretBytes(count: Int(crypto_aead_xchacha20poly1305_ietf_KEYBYTES))
        let utf8 = Array(passphrase.utf8)
        let status = key.withUnsafeMutableBytes { out in
            salt.withUnsafeBytes { saltBytes in
                utf8.withUnsafeBufferPointer { pass in
                    pass.withMemoryRebound(to: CChar.self) { chars in
                        crypto_pwhash(
                            out.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(out.count),
                            chars.baseAddress!, UInt64(utf8.count),
                            saltBytes.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            ops, Int(mem), crypto_pwhash_ALG_ARGON2ID13)
                    }
                }
            }
        }
        guard status == 0 else {
            throw LinliError(.storage, "deriving the key from the passphrase needs \(mem >> 20) MiB of memory, which is not available")
        }
        return key
    }
}
