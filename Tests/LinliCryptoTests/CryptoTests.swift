import Foundation
import LinliCore
import LinliCrypto
import Testing

// Tests of hashing, signatures and random bytes. Sealed key files are
// tested in SealedKeyTests.swift.

/// Bytes from hex written in the test, which must be valid.
func hexData(_ text: String) -> Data {
    guard let data = Hex.decodeData(text) else { fatalError("bad hex in a test: \(text)") }
    return data
}

/// Expects `body` to throw a `LinliError` with one of `codes`.
func expectLinliError(
    _ codes: Set<LinliError.Code>, _ comment: Comment? = nil,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) {
    let error = #expect(throws: LinliError.self, comment, sourceLocation: sourceLocation) { try body() }
    #expect(error.map { codes.contains($0.code) } == true, "got \(String(describing: error?.code))", sourceLocation: sourceLocation)
}

// MARK: - BLAKE2b-256

@Suite("BLAKE2b-256") struct Blake2bTests {
    static let abc = "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319"
    static let empty = "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"

    @Test("the hash of abc is the published value")
    func abc() {
        #expect(Hex.encode(Blake2b256.hash(Data("abc".utf8))) == Self.abc)
    }

    @Test("the hash of no bytes is the published value")
    func emptyInput() {
        #expect(Hex.encode(Blake2b256.hash(Data())) == Self.empty)
        #expect(Hex.encode(Blake2b256().finalize()) == Self.empty)
        let hasher = Blake2b256()
        hasher.update(Data())
        hasher.update([UInt8]())
        #expect(Hex.encode(hasher.finalize()) == Self.empty)
    }

    @Test("hashes have 32 bytes")
    func length() {
        #expect(Blake2b256.outputBytes == 32)
        for count in [0, 1, 127, 128, 129, 10_000] {
            #expect(Blake2b256.hash(Data(repeating: 0x5A, count: count)).count == 32)
        }
    }

    @Test("updating in pieces gives the one-shot hash")
    func incrementalEqualsOneShot() {
        let hasher = Blake2b256()
        hasher.update(Data("a".utf8))
        hasher.update([UInt8]("b".utf8))
        hasher.update(Data())
        Array("c".utf8).withUnsafeBytes { hasher.update($0) }
        #expect(Hex.encode(hasher.finalize()) == Self.abc)

        var random = SystemRandomNumberGenerator()
        let message = Data((0..<1_000).map { _ in UInt8.random(in: 0...255, using: &random) })
        let oneShot = Blake2b256.hash(message)
        for cuts in [[0], [1], [128], [999], [127, 128, 129, 256], [3, 500, 501, 900], Array(stride(from: 0, to: 1_000, by: 7))] {
            let pieces = Blake2b256()
            var start = 0
            for cut in cuts + [message.count] {
                pieces.update(message.subdata(in: start..<cut))
                start = cut
            }
            #expect(pieces.finalize() == oneShot, "cuts \(cuts)")
        }
        let bytewise = Blake2b256()
        for byte in message { bytewise.update([byte]) }
        #expect(bytewise.finalize() == oneShot)
    }

    @Test("the hash of a slice is the hash of its bytes")
    func slices() {
        let whole = Data("xxabcxx".utf8)
        #expect(Hex.encode(Blake2b256.hash(whole[2..<5])) == Self.abc)
        let hasher = Blake2b256()
        hasher.update(whole[2..<5])
        #expect(Hex.encode(hasher.finalize()) == Self.abc)
    }

    @Test("one changed bit changes the hash")
    func avalanche() {
        let base = Blake2b256.hash(Data("abc".utf8))
        #expect(Blake2b256.hash(Data("abd".utf8)) != base)
        #expect(Blake2b256.hash(Data("abc\u{0}".utf8)) != base)
        #expect(Blake2b256.hash(Data("abc".utf8)) == base)
    }
}

// MARK: - Ed25519

@Suite("Ed25519") struct Ed25519Tests {
    /// RFC 8032, section 7.1, test 1 (empty message).
    enum Vector1 {
        static let seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
        static let publicKey = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        static let signature = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    }

    /// RFC 8032, section 7.1, test 2 (one byte, 0x72).
    enum Vector2 {
        static let seed = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"
        static let publicKey = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
        static let message = "72"
        static let signature = "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
    }

    static func key(seedHex: String) -> SigningKey {
        SigningKey(seed: SecretBytes(copying: hexData(seedHex)))
    }

    @Test("RFC 8032 test 1: the seed gives the published public key and signature")
    func rfc8032Vector1() throws {
        let key = Self.key(seedHex: Vector1.seed)
        #expect(key.publicKey.hex == Vector1.publicKey)
        #expect(key.publicKey.bytes == hexData(Vector1.publicKey))
        let signature = key.sign(Data())
        #expect(signature.count == SigningKey.signatureBytes)
        #expect(Hex.encode(signature) == Vector1.signature)
        let publicKey = try #require(PublicKey(hex: Vector1.publicKey))
        #expect(publicKey.verify(signature: hexData(Vector1.signature), message: Data()))
    }

    @Test("RFC 8032 test 2: a one-byte message")
    func rfc8032Vector2() throws {
        let key = Self.key(seedHex: Vector2.seed)
        #expect(key.publicKey.hex == Vector2.publicKey)
        #expect(Hex.encode(key.sign(hexData(Vector2.message))) == Vector2.signature)
        let publicKey = try #require(PublicKey(hex: Vector2.publicKey))
        #expect(publicKey.verify(signature: hexData(Vector2.signature), message: hexData(Vector2.message)))
        #expect(!publicKey.verify(signature: hexData(Vector2.signature), message: Data()))
    }

    @Test("signing is deterministic and a key verifies its own signatures")
    func signAndVerify() {
        let key = SigningKey.generate()
        for message in [Data(), Data("hello".utf8), Data(repeating: 0xAA, count: 10_000)] {
            let signature = key.sign(message)
            #expect(signature == key.sign(message))
            #expect(key.publicKey.verify(signature: signature, message: message))
        }
    }

    @Test("a flipped bit in the message is refused")
    func flippedMessageBit() {
        let key = Self.key(seedHex: Vector1.seed)
        let message = Data("change set body".utf8)
        let signature = key.sign(message)
        #expect(key.publicKey.verify(signature: signature, message: message))
        for position in [0, 5, message.count - 1] {
            for bit in [0, 7] {
                var altered = message
                altered[position] ^= UInt8(1 << bit)
                #expect(!key.publicKey.verify(signature: signature, message: altered), "byte \(position) bit \(bit)")
            }
        }
        #expect(!key.publicKey.verify(signature: signature, message: message + Data([0])))
        #expect(!key.publicKey.verify(signature: signature, message: message.dropLast()))
        // The empty-message signature of the vector does not cover one byte.
        #expect(!key.publicKey.verify(signature: hexData(Vector1.signature), message: Data([0])))
    }

    @Test("a flipped bit anywhere in the signature is refused")
    func flippedSignatureBit() {
        let key = Self.key(seedHex: Vector1.seed)
        let signature = hexData(Vector1.signature)
        for position in 0..<signature.count {
            var altered = signature
            altered[position] ^= UInt8(1 << (position % 8))
            #expect(!key.publicKey.verify(signature: altered, message: Data()), "byte \(position)")
        }
    }

    @Test("a signature of the wrong length is refused", arguments: [0, 1, 32, 63, 65, 128])
    func wrongLengthSignature(count: Int) {
        let key = Self.key(seedHex: Vector1.seed)
        let signature = hexData(Vector1.signature)
        let resized = count <= 64 ? signature.prefix(count) : signature + Data(repeating: 0, count: count - 64)
        #expect(!key.publicKey.verify(signature: Data(resized), message: Data()))
    }

    @Test("another key's signature is refused")
    func otherKey() {
        let one = SigningKey.generate()
        let other = SigningKey.generate()
        let message = Data("hello".utf8)
        #expect(!other.publicKey.verify(signature: one.sign(message), message: message))
    }

    @Test("generated keys differ")
    func generatedKeysDiffer() {
        let keys = (0..<20).map { _ in SigningKey.generate().publicKey }
        #expect(Set(keys).count == 20)
    }

    @Test("a key made from its own seed is the same key")
    func seedRoundTrip() {
        let key = SigningKey.generate()
        let seed = key.seed
        #expect(seed.count == SigningKey.seedBytes)
        let again = SigningKey(seed: seed)
        #expect(again.publicKey == key.publicKey)
        #expect(again.sign(Data("x".utf8)) == key.sign(Data("x".utf8)))

        let vector = Self.key(seedHex: Vector1.seed)
        let seedBytes = vector.seed.withUnsafeBytes { Data($0) }
        #expect(Hex.encode(seedBytes) == Vector1.seed)
    }

    @Test("the key id is the first 8 bytes of BLAKE2b-256 of the public key")
    func keyID() throws {
        for key in [Self.key(seedHex: Vector1.seed), SigningKey.generate()] {
            let hash = Blake2b256.hash(key.publicKey.bytes)
            #expect(key.publicKey.keyID == Data(hash.prefix(8)))
            #expect(key.publicKey.keyID.count == 8)
            #expect(Array(key.publicKey.keyID) == Array(hash[0..<8]))
        }
        let vector = try #require(PublicKey(hex: Vector1.publicKey))
        #expect(vector.keyID == Data(Blake2b256.hash(hexData(Vector1.publicKey)).prefix(8)))
    }

    @Test("a public key needs exactly 32 bytes")
    func publicKeyLength() throws {
        for count in [0, 31, 33, 64] {
            #expect(PublicKey(bytes: Data(repeating: 1, count: count)) == nil)
        }
        #expect(PublicKey(hex: "zz" + String(Vector1.publicKey.dropFirst(2))) == nil)
        #expect(PublicKey(hex: String(Vector1.publicKey.dropLast())) == nil)
        let key = try #require(PublicKey(hex: Vector1.publicKey.uppercased()))
        #expect(key.hex == Vector1.publicKey)
        #expect(key.description == Vector1.publicKey)
        let fromSlice = try #require(PublicKey(bytes: (Data([0xFF]) + hexData(Vector1.publicKey)).dropFirst()))
        #expect(fromSlice == key)
        #expect(fromSlice.verify(signature: hexData(Vector1.signature), message: Data()))
    }

    @Test("a seed of the wrong length stops the program")
    func wrongSeedLengthTraps() async {
        await #expect(processExitsWith: .failure) {
            _ = SigningKey(seed: SecretBytes(copying: Data(repeating: 1, count: 31)))
        }
    }
}

// MARK: - Random bytes, comparison, secret memory

@Suite("Random bytes and constant-time comparison") struct RandomAndCompareTests {
    @Test("random bytes come in the asked count", arguments: [0, 1, 16, 24, 32, 1_000])
    func count(count: Int) {
        #expect(SecureRandom.bytes(count).count == count)
    }

    @Test("random outputs differ")
    func differ() {
        let outputs = (0..<100).map { _ in SecureRandom.bytes(16) }
        #expect(Set(outputs).count == 100)
        // A long output is not constant.
        #expect(Set(SecureRandom.bytes(1_000)).count > 100)
    }

    @Test("equal bytes compare equal")
    func equalTrue() {
        #expect(ConstantTime.equal(Data(), Data()))
        #expect(ConstantTime.equal(Data([1, 2, 3]), Data([1, 2, 3])))
        let random = SecureRandom.bytes(64)
        #expect(ConstantTime.equal(random, Data(random)))
        #expect(ConstantTime.equal(Data([9, 1, 2, 3]).dropFirst(), Data([1, 2, 3])))
    }

    @Test("bytes that differ anywhere compare unequal")
    func equalFalse() {
        let base = SecureRandom.bytes(32)
        for position in [0, 15, 31] {
            var other = base
            other[position] ^= 0x01
            #expect(!ConstantTime.equal(base, other), "byte \(position)")
        }
    }

    @Test("bytes of different lengths compare unequal")
    func differentLengths() {
        #expect(!ConstantTime.equal(Data([1, 2, 3]), Data([1, 2])))
        #expect(!ConstantTime.equal(Data([1, 2]), Data([1, 2, 3])))
        #expect(!ConstantTime.equal(Data(), Data([0])))
        #expect(!ConstantTime.equal(Data([0]), Data()))
    }

    @Test("secret bytes hold a copy of what they were given")
    func secretBytesCopy() {
        let source = Data([1, 2, 3, 4, 5])
        let secret = SecretBytes(copying: source)
        #expect(secret.count == 5)
        #expect(secret.withUnsafeBytes { Data($0) } == source)
        #expect(SecretBytes(count: 12).count == 12)
    }

    @Test("wipe zeroes the buffer and keeps its length")
    func wipeZeroes() {
        var data = Data([1, 2, 3, 4])
        wipe(&data)
        #expect(data == Data(count: 4))
        var empty = Data()
        wipe(&empty)
        #expect(empty.isEmpty)
    }
}
