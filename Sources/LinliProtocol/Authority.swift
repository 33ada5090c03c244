import Foundation
import LinliCore
import LinliCrypto

/// The trust authority's identity and the statements only it makes.
public enum Authority {
    /// The authority's device id: the first 16 bytes of
    /// BLAKE2b-256("linli/authority/v1\n" || root public key). It stays the
    /// same when the authority key rotates, so its chain goes on.
    public static func deviceID(root: PublicKey) -> DeviceID {
        DeviceID(bytes: Blake2b256.hash(Data("linli/authority/v1\n".utf8) + root.bytes).prefix(16))!
    }

    /// What the new key signs when the authority key rotates:
    /// "linli/authority-rotation/v1\n" || authority device id (16) ||
    /// previous public key (32) || new public key (32) || valid-from sequence
    /// number (8, big-endian). The change set carrying it is signed by the
    /// previous key, so a rotation is signed by both.
    public static func rotationMessage(authority: DeviceID, previous: PublicKey, next: PublicKey, validFromSeq: UInt64) -> Data {
        var message = Data("linli/authority-rotation/v1\n".utf8)
        message += authority.data
        message += previous.bytes
        message += next.bytes
        withUnsafeBytes(of: validFromSeq.bigEndian) { message.append(contentsOf: $0) }
        return message
    }
}
