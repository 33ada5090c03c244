import Foundation
import LinliCore
import LinliCrypto
import Testing

/// Sealed key files. Each seal or open with a plausible passphrase runs
/// Argon2id at interactive strength (about 0.2 s and 64 MiB), so one sealed
/// file is shared and the suite runs serially; the suite makes 12 such calls.
@Suite("Sealed key", .serialized) struct SealedKeyTests {
    /// Exactly 4 characters: the shortest passphrase accepted.
    static let passphrase = "2468"
    static let label = "inspector phone 3"
    static let key = Ed25519Tests.key(seedHex: Ed25519Tests.Vector1.seed)
    static let sealedResult = Result { try SealedKey.seal(key, passphrase: passphrase, label: label) }

    static func sealed() throws -> SealedKey { try sealedResult.get() }

    /// `text` with the hex digit at `offset` replaced by another hex digit.
    static func changingDigit(_ text: String, at offset: Int = 0) -> String {
        var characters = Array(text)
        characters[offset] = characters[offset] == "0" ? "1" : "0"
        return String(characters)
    }

    @Test("a sealed file records its format, parameters and public key, and hides the seed")
    func sealedShape() throws {
        let sealed = try Self.sealed()
        #expect(sealed.format == "linli-sealed-key/1")
        #expect(sealed.label == Self.label)
        #expect(sealed.publicKey == Ed25519Tests.Vector1.publicKey)
        #expect(sealed.cipher == "xchacha20poly1305-ietf")
        #expect(sealed.kdf.algorithm == "argon2id13")
        #expect(sealed.kdf.opslimit == 2)
        #expect(sealed.kdf.memlimit == 64 << 20)
        #expect(Hex.decodeData(sealed.kdf.salt)?.count == 16)
        #expect(Hex.decodeData(sealed.nonce)?.count == 24)
        #expect(Hex.decodeData(sealed.ciphertext)?.count == 32 + 16)
        #expect(!sealed.ciphertext.contains(Ed25519Tests.Vector1.seed))
        #expect(!String(decoding: sealed.encoded(), as: UTF8.self).contains(Ed25519Tests.Vector1.seed))
    }

    @Test("opening with the right passphrase gives the same key")
    func openRight() throws {
        let opened = try Self.sealed().open(passphrase: Self.passphrase)
        #expect(opened.publicKey == Self.key.publicKey)
        #expect(opened.publicKey.hex == Ed25519Tests.Vector1.publicKey)
        let message = Data("change set".utf8)
        #expect(opened.sign(message) == Self.key.sign(message))
        #expect(Hex.encode(opened.sign(Data())) == Ed25519Tests.Vector1.signature)
        #expect(opened.seed.withUnsafeBytes { Data($0) } == hexData(Ed25519Tests.Vector1.seed))
    }

    @Test("a wrong passphrase is refused as wrong")
    func openWrong() throws {
        let sealed = try Self.sealed()
        let error = #expect(throws: LinliError.self) { try sealed.open(passphrase: "2469") }
        #expect(error?.code == .wrongPassphrase)
        #expect(error?.hint != nil)
    }

    @Test("a passphrase shorter than 4 characters is refused", arguments: ["", "1", "12", "123", "abc"])
    func shortPassphrase(passphrase: String) {
        expectLinliError([.invalidInput]) { _ = try SealedKey.seal(Self.key, passphrase: passphrase, label: "x") }
    }

    @Test(
        "a passphrase of fewer than 4 characters is refused even when its UTF-8 form is longer",)
    func shortWidePassphrase() {
        expectLinliError([.invalidInput]) { _ = try SealedKey.seal(Self.key, passphrase: "密码", label: "x") }
    }

    enum Tamper: String, CaseIterable, Sendable {
        case label, publicKey, salt, opslimit, memlimit, nonce, ciphertext

        func apply(to sealed: SealedKey) -> SealedKey {
            var altered = sealed
            switch self {
            case .label: altered.label = "inspector phone 4"
            case .publicKey: altered.publicKey = SealedKeyTests.changingDigit(sealed.publicKey, at: 10)
            case .salt: altered.kdf.salt = SealedKeyTests.changingDigit(sealed.kdf.salt, at: 5)
            case .opslimit: altered.kdf.opslimit = sealed.kdf.opslimit + 1
            case .memlimit: altered.kdf.memlimit = sealed.kdf.memlimit / 2
            case .nonce: altered.nonce = SealedKeyTests.changingDigit(sealed.nonce, at: 47)
            case .ciphertext: altered.ciphertext = SealedKeyTests.changingDigit(sealed.ciphertext, at: 20)
            }
            return altered
        }
    }

    @Test("changing any bound field of the file makes it fail to open", arguments: Tamper.allCases)
    func tampered(tamper: Tamper) throws {
        let sealed = try Self.sealed()
        let altered = tamper.apply(to: sealed)
        #expect(altered != sealed)
        expectLinliError([.wrongPassphrase, .damagedFile], "changed \(tamper)") {
            _ = try altered.open(passphrase: Self.passphrase)
        }
    }

    @Test("a file with a wrong format, an unknown algorithm or a field of the wrong size is damaged")
    func damagedFields() throws {
        let sealed = try Self.sealed()
        var cases: [(String, SealedKey)] = []
        func add(_ name: String, _ change: (inout SealedKey) -> Void) {
            var altered = sealed
            change(&altered)
            cases.append((name, altered))
        }
        add("format") { $0.format = "linli-sealed-key/2" }
        add("cipher") { $0.cipher = "aes256gcm" }
        add("algorithm") { $0.kdf.algorithm = "scrypt" }
        add("short salt") { $0.kdf.salt = String($0.kdf.salt.dropLast(2)) }
        add("odd salt") { $0.kdf.salt = String($0.kdf.salt.dropLast()) }
        add("non-hex nonce") { $0.nonce = "zz" + $0.nonce.dropFirst(2) }
        add("short nonce") { $0.nonce = String($0.nonce.dropLast(2)) }
        add("short ciphertext") { $0.ciphertext = String($0.ciphertext.dropLast(2)) }
        add("long ciphertext") { $0.ciphertext += "00" }
        add("empty ciphertext") { $0.ciphertext = "" }
        add("short public key") { $0.publicKey = String($0.publicKey.dropLast(2)) }
        add("non-hex public key") { $0.publicKey = "xx" + $0.publicKey.dropFirst(2) }
        add("opslimit 0") { $0.kdf.opslimit = 0 }
        add("huge opslimit") { $0.kdf.opslimit = .max }
        add("memlimit 0") { $0.kdf.memlimit = 0 }
        add("huge memlimit") { $0.kdf.memlimit = .max }
        for (name, altered) in cases {
            expectLinliError([.damagedFile], "\(name)") { _ = try altered.open(passphrase: Self.passphrase) }
        }
    }

    @Test("encoding and decoding a file gives the same file, which still opens")
    func encodedRoundTrip() throws {
        let sealed = try Self.sealed()
        let data = sealed.encoded()
        let json = String(decoding: data, as: UTF8.self)
        #expect(json.contains("\"public_key\""))
        #expect(json.contains("linli-sealed-key"))
        #expect(json.contains("\"salt\""))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(Set(object.keys) == ["format", "label", "public_key", "kdf", "cipher", "nonce", "ciphertext"])

        let decoded = try SealedKey.decode(data)
        #expect(decoded == sealed)
        #expect(decoded.encoded() == data)
        #expect(try decoded.open(passphrase: Self.passphrase).publicKey == Self.key.publicKey)
    }

    @Test("decoding something that is not a sealed key file is refused as damaged", arguments: [
        "", "garbage", "{}", "[]", "null", #"{"format":"linli-sealed-key/1"}"#,
        #"{"format":"linli-sealed-key/1","label":"x","public_key":"00","kdf":{"algorithm":"argon2id13","opslimit":"two","memlimit":1,"salt":"00"},"cipher":"c","nonce":"00","ciphertext":"00"}"#,
    ])
    func decodeGarbage(text: String) {
        expectLinliError([.damagedFile]) { _ = try SealedKey.decode(Data(text.utf8)) }
    }

    @Test("decoding random bytes is refused as damaged")
    func decodeRandomBytes() {
        expectLinliError([.damagedFile]) { _ = try SealedKey.decode(SecureRandom.bytes(200)) }
        expectLinliError([.damagedFile]) { _ = try SealedKey.decode(try Self.sealed().encoded().dropLast(3)) }
    }

    @Test("sealing the same key twice uses a new salt and nonce")
    func freshSaltAndNonce() throws {
        let first = try Self.sealed()
        let second = try SealedKey.seal(Self.key, passphrase: Self.passphrase, label: Self.label)
        #expect(second.publicKey == first.publicKey)
        #expect(second.kdf.salt != first.kdf.salt)
        #expect(second.nonce != first.nonce)
        #expect(second.ciphertext != first.ciphertext)
        #expect(second != first)
    }
}
