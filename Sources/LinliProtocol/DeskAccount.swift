import Foundation
import LinliCore
import LinliCrypto

/// A staff member's account for the web desk (`/desk` on the server): the
/// device the staff member signs resolutions as, the password's Argon2id
/// hash, and the device's signing key sealed under the same password. The
/// server keeps the file; it can check a password but cannot sign as
/// anyone until that person logs in, and forgets the key at logout.
///
/// `linli-admin desk add` writes it; every account is also a device with a
/// staff certificate in the system scope, so its resolutions verify on
/// every replica like any change set.
public struct DeskAccount: Codable, Sendable, Equatable {
    public static let format = "linli-desk-account/1"

    public var format: String
    /// The name shown on the page and written into each change set.
    public var user: String
    public var device: String
    public var passwordHash: String
    public var sealedKey: SealedKey

    enum CodingKeys: String, CodingKey {
        case format, user, device
        case passwordHash = "password_hash"
        case sealedKey = "sealed_key"
    }

    /// A new account: a fresh device and key, the key sealed under `password`.
    public static func make(user: String, password: String) throws(LinliError) -> (account: DeskAccount, key: SigningKey) {
        let trimmed = user.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.utf8.count <= Limits.userBytesMax else {
            throw LinliError(.invalidInput, "a staff user name needs 1 to \(Limits.userBytesMax) bytes")
        }
        let key = SigningKey.generate()
        let device = DeviceID.random()
        let account = DeskAccount(
            format: format, user: trimmed, device: device.hex, passwordHash: try PasswordHash.hash(password),
            sealedKey: try SealedKey.seal(key, passphrase: password, label: "desk \(trimmed)"))
        return (account, key)
    }

    public var deviceID: DeviceID? { DeviceID(hex: device) }

    /// The identity to sign as, when `password` is this account's: the hash
    /// is checked first (constant time), then the key unsealed.
    public func unlock(password: String) throws(LinliError) -> (device: DeviceID, key: SigningKey) {
        guard PasswordHash.verify(password, against: passwordHash) else {
            throw LinliError(.wrongPassphrase, "the user name or the password is wrong")
        }
        guard let device = deviceID else { throw LinliError(.damagedFile, "the desk account of \(user) names no device") }
        return (device, try sealedKey.open(passphrase: password))
    }
}

/// The accounts file: a JSON array of ``DeskAccount``, one per staff member.
public enum DeskAccounts {
    public static func read(_ path: String) throws -> [DeskAccount] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LinliError(.storage, "cannot read the desk accounts file \(path)")
        }
        do {
            let accounts = try JSONDecoder().decode([DeskAccount].self, from: data)
            for account in accounts where account.format != DeskAccount.format {
                throw LinliError(.damagedFile, "the desk account of \(account.user) has format \(account.format), not \(DeskAccount.format)")
            }
            return accounts
        } catch let error as LinliError {
            throw error
        } catch {
            throw LinliError(.damagedFile, "the desk accounts file \(path) is not readable JSON: \(error)")
        }
    }

    public static func encoded(_ accounts: [DeskAccount]) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(accounts)
    }
}
